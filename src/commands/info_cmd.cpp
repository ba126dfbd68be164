// `rl2-cuda info`: version, build flags, CUDA/cuDNN found at build time, devices found at run time, and the
// cuBLAS and cuDNN the dynamic loader found. A cuBLAS or cuDNN whose major version differs from the build's
// is refused in one line (exit 1): a lent GPU's first check (tools/gpu_session.sh, docs/gpu.md).
#include <omp.h>

#include <iostream>

#include "commands/common.hpp"

namespace rl2 {

int run_info(const GlobalFlags& g) {
  const BuildInfo b = build_info();
#if defined(RL2_WITH_CUDA)
  const std::vector<CudaLibraryVersion> libs = cuda_library_versions();
  require_cuda_library_majors(libs);
#else
  const std::vector<CudaLibraryVersion> libs;
#endif
  const CudaProbe& p = cuda_probe();
  nlohmann::json j;
  j["version"] = b.version;
  j["build"] = {{"compiler", b.compiler},       {"type", b.build_type},        {"cuda_backend", b.with_cuda},
                {"cuda_toolkit", b.cuda_version}, {"cuda_architectures", b.cuda_archs}, {"cudnn", b.cudnn_version},
                {"openmp", b.with_openmp}};
  j["libraries"] = nlohmann::json::object();
  for (const CudaLibraryVersion& l : libs) j["libraries"][l.name] = {{"built", l.built}, {"runtime", l.runtime}};
  j["cpu_threads"] = omp_get_max_threads();
  j["host_memory_available"] = host_available_bytes();
  j["cuda"] = {{"usable", p.usable}, {"devices", p.device_count}};
  if (p.usable) {
    j["cuda"]["name"] = p.name;
    j["cuda"]["compute_capability"] = std::to_string(p.sm_major) + "." + std::to_string(p.sm_minor);
    j["cuda"]["memory_total"] = p.total_bytes;
    j["cuda"]["memory_free"] = p.free_bytes;
    j["cuda"]["driver"] = p.driver_version;
  } else {
    j["cuda"]["reason"] = p.reason;
  }
  std::string note;
  j["device_auto"] = device_name(resolve_device("auto", &note));
  if (g.json()) {
    std::cout << j.dump() << "\n";
    return 0;
  }
  std::cout << "rl2-cuda " << b.version << " (" << b.build_type << ", " << b.compiler << ")\n"
            << "  CUDA backend:  " << (b.with_cuda ? "built, CUDA " + b.cuda_version + ", sm " + b.cuda_archs : "not built")
            << "\n"
            << "  cuDNN headers: " << b.cudnn_version << "\n";
  for (const CudaLibraryVersion& l : libs) {
    std::cout << "  " << l.name << ":" << std::string(14 - l.name.size(), ' ') << l.runtime << " loaded (built with "
              << l.built << ")\n";
  }
  std::cout << "  CPU threads:   " << omp_get_max_threads() << (b.with_openmp ? " (OpenMP)" : "") << "\n"
            << "  host memory:   " << format_bytes(static_cast<double>(host_available_bytes())) << " available\n";
  if (p.usable) {
    std::cout << "  GPU:           " << p.name << " (sm " << p.sm_major << p.sm_minor << ", "
              << format_bytes(static_cast<double>(p.free_bytes)) << " free of "
              << format_bytes(static_cast<double>(p.total_bytes)) << ")\n";
  } else {
    std::cout << "  GPU:           none usable: " << p.reason << "\n";
  }
  std::cout << "  " << note << "\n";
  return 0;
}

}  // namespace rl2
