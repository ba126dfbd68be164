// Which backend runs the work, and what the machine offers. CUDA is optional at build time
// (RL2_WITH_CUDA) and at run time: the probe never throws when there is no driver or no device,
// it reports why in one line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rl2 {

enum class Device { kCpu, kCuda };

struct CudaProbe {
  bool built = false;      // compiled with the CUDA backend
  bool usable = false;     // a device answered
  int device_count = 0;
  int device = 0;          // the device this process uses: its node-local MPI rank modulo device_count
  std::string name;        // name of that device
  int sm_major = 0, sm_minor = 0;
  int64_t total_bytes = 0;
  int64_t free_bytes = 0;
  int driver_version = 0;  // CUDA driver API version, e.g. 13000
  std::string reason;      // why not usable, one line
};

// Probes CUDA once per process (cached); cheap after the first call.
const CudaProbe& cuda_probe();

// A CUDA library the build links (cuBLAS; cuDNN where the build has it): the version of the headers it was
// built with and the version of the shared library the dynamic loader found at run time ("13.1.0").
struct CudaLibraryVersion {
  std::string name;  // "cuBLAS" or "cuDNN"
  std::string built, runtime;
  int built_major = 0, runtime_major = 0;
};

// Only in builds with the CUDA backend (RL2_WITH_CUDA; src/core/device_cuda.cpp). Asks the loaded libraries
// (cublasGetProperty, cudnnGetVersion: no device, no handle needed); never call it during static
// initialisation. The libraries are linked, so a process that runs has them loaded.
std::vector<CudaLibraryVersion> cuda_library_versions();
// Throws rl2::Error, one line naming the library and both versions, when a library's major version at run
// time differs from the build's (a different ABI: its calls cannot be trusted). Host logic, in every build
// (src/core/device.cpp), so CPU CI runs it.
void require_cuda_library_majors(const std::vector<CudaLibraryVersion>& libs);

// "auto" | "cpu" | "cuda" -> Device. auto picks CUDA when usable. "cuda" without a usable GPU throws
// InputError naming the reason. `note` receives the one line that says which backend was chosen.
Device resolve_device(const std::string& flag, std::string* note = nullptr);
std::string device_name(Device d);

// Bytes of host memory the OS reports available (MemAvailable), or -1 if unknown.
int64_t host_available_bytes();
// Human-readable size, e.g. "3.2 GiB".
std::string format_bytes(double bytes);

// Build facts for `rl2-cuda info`.
struct BuildInfo {
  std::string version;
  std::string compiler;
  std::string build_type;
  bool with_cuda;
  std::string cuda_version;   // toolkit at build time
  std::string cuda_archs;
  std::string cudnn_version;  // header found at build time, or "not found"
  bool with_openmp;
};
BuildInfo build_info();

}  // namespace rl2
