// Backend choice and machine facts: --device resolution, host memory, build information.
// The CUDA probe itself lives in src/core/device_cuda.cpp; a CPU-only build reports "not built".
#include "rl2/core/device.hpp"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "rl2/core/check.hpp"
#include "rl2_build_config.hpp"

namespace rl2 {

#if !defined(RL2_WITH_CUDA)
const CudaProbe& cuda_probe() {
  static const CudaProbe probe = [] {
    CudaProbe p;
    p.reason = "this rl2-cuda was built without the CUDA backend (no nvcc at build time)";
    return p;
  }();
  return probe;
}
#endif

Device resolve_device(const std::string& flag, std::string* note) {
  const CudaProbe& probe = cuda_probe();
  if (flag == "cpu") {
    if (note) *note = "device: cpu (as asked)";
    return Device::kCpu;
  }
  if (flag == "cuda") {
    RL2_REQUIRE(probe.usable, "--device cuda: no usable GPU: " + probe.reason);
    if (note) *note = "device: cuda (" + probe.name + ")";
    return Device::kCuda;
  }
  RL2_REQUIRE(flag == "auto", "unknown --device '" + flag + "' (expected auto, cpu or cuda)");
  if (probe.usable) {
    if (note) *note = "device: cuda (" + probe.name + "), chosen by --device auto";
    return Device::kCuda;
  }
  if (note) *note = "device: cpu, chosen by --device auto (" + probe.reason + ")";
  return Device::kCpu;
}

std::string device_name(Device d) { return d == Device::kCuda ? "cuda" : "cpu"; }

int64_t host_available_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024;
  }
  return -1;
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 5) {
    bytes /= 1024.0;
    ++u;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

BuildInfo build_info() {
  BuildInfo b;
  b.version = RL2_VERSION;
  b.compiler = RL2_COMPILER;
  b.build_type = RL2_BUILD_TYPE;
#if defined(RL2_WITH_CUDA)
  b.with_cuda = true;
#else
  b.with_cuda = false;
#endif
  b.cuda_version = RL2_CUDA_VERSION;
  b.cuda_archs = RL2_CUDA_ARCHS;
  b.cudnn_version = RL2_CUDNN_VERSION;
#if defined(_OPENMP)
  b.with_openmp = true;
#else
  b.with_openmp = false;
#endif
  return b;
}

void require_cuda_library_majors(const std::vector<CudaLibraryVersion>& libs) {
  for (const CudaLibraryVersion& l : libs) {
    if (l.runtime_major != l.built_major)
      throw Error(l.name + " " + l.runtime + " was loaded at run time, but this rl2-cuda was built with " + l.name +
                  " " + l.built + ": a different major version; put a " + l.name + " " +
                  std::to_string(l.built_major) + ".x first on LD_LIBRARY_PATH");
  }
}

}  // namespace rl2
