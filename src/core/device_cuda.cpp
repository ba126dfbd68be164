// The CUDA probe: asks the runtime once whether a driver and a device are there, and never throws.
// No CUDA call happens before the first cuda_probe() (never during static initialisation). Also the
// versions of the CUDA libraries the build links, as built and as loaded (`rl2-cuda info`).
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstdlib>
#include <mutex>

#include "rl2/core/device.hpp"

namespace rl2 {
namespace {

// This process's rank among the ranks an MPI launcher started on this node (0 without one).
int local_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"}) {
    const char* v = std::getenv(name);
    if (v != nullptr && *v >= '0' && *v <= '9') return std::atoi(v);
  }
  return 0;
}

}  // namespace

const CudaProbe& cuda_probe() {
  static CudaProbe probe;
  static std::once_flag once;
  std::call_once(once, [] {
    probe.built = true;
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
      // Without any NVIDIA driver the runtime reports an "insufficient" driver; say what it means.
      probe.reason = err == cudaErrorInsufficientDriver
                         ? "no NVIDIA driver new enough for CUDA " + std::to_string(CUDART_VERSION / 1000) +
                               " (or none installed)"
                     : err == cudaErrorNoDevice ? std::string("no CUDA device found")
                                                : std::string("CUDA unavailable (") + cudaGetErrorName(err) + ")";
      cudaGetLastError();
      return;
    }
    if (count == 0) {
      probe.reason = "no CUDA device found";
      return;
    }
    // One GPU per rank: a launcher's local rank picks the device (docs/scaling.md); one process uses 0.
    const int dev = local_rank() % count;
    probe.device = dev;
    cudaDeviceProp prop{};
    err = cudaGetDeviceProperties(&prop, dev);
    if (err == cudaSuccess) err = cudaSetDevice(dev);
    size_t free_b = 0, total_b = 0;
    if (err == cudaSuccess) err = cudaMemGetInfo(&free_b, &total_b);
    if (err != cudaSuccess) {
      probe.reason = "CUDA device " + std::to_string(dev) + " did not answer (" + cudaGetErrorName(err) + ")";
      cudaGetLastError();
      return;
    }
    cudaDriverGetVersion(&probe.driver_version);
    probe.usable = true;
    probe.device_count = count;
    probe.name = prop.name;
    probe.sm_major = prop.major;
    probe.sm_minor = prop.minor;
    probe.total_bytes = static_cast<int64_t>(total_b);
    probe.free_bytes = static_cast<int64_t>(free_b);
  });
  return probe;
}

namespace {

std::string dotted(int major, int minor, int patch) {
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

}  // namespace

std::vector<CudaLibraryVersion> cuda_library_versions() {
  std::vector<CudaLibraryVersion> libs;
  CudaLibraryVersion blas{"cuBLAS", dotted(CUBLAS_VER_MAJOR, CUBLAS_VER_MINOR, CUBLAS_VER_PATCH), "unknown",
                          CUBLAS_VER_MAJOR, -1};
  int major = 0, minor = 0, patch = 0;
  if (cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS) {
    blas.runtime = dotted(major, minor, patch);
    blas.runtime_major = major;
  }
  libs.push_back(blas);
  // cuDNN 9 encodes its version as major * 10000 + minor * 100 + patch, as CUDNN_VERSION does.
  const size_t v = cudnnGetVersion();
  const int dnn_major = static_cast<int>(v / 10000);
  libs.push_back({"cuDNN", dotted(CUDNN_MAJOR, CUDNN_MINOR, CUDNN_PATCHLEVEL),
                  dotted(dnn_major, static_cast<int>(v / 100 % 100), static_cast<int>(v % 100)), CUDNN_MAJOR,
                  dnn_major});
  return libs;
}

}  // namespace rl2
