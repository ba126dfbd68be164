// The CUDA probe: asks the runtime once whether a driver and a device are there, and never throws.
// No CUDA call happens before the first cuda_probe() (never during static initialisation).
#include <cuda_runtime.h>

#include <mutex>

#include "rl2/core/device.hpp"

namespace rl2 {

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
    cudaDeviceProp prop{};
    err = cudaGetDeviceProperties(&prop, 0);
    if (err == cudaSuccess) err = cudaSetDevice(0);
    size_t free_b = 0, total_b = 0;
    if (err == cudaSuccess) err = cudaMemGetInfo(&free_b, &total_b);
    if (err != cudaSuccess) {
      probe.reason = std::string("CUDA device 0 did not answer (") + cudaGetErrorName(err) + ")";
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

}  // namespace rl2
