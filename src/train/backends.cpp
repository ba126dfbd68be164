// The backend of a device, and the environment batches and learners made on one: the only place that
// names both backends (include/rl2/train/backend.hpp).
#include "rl2/core/check.hpp"
#include "rl2/core/device.hpp"
#include "rl2/env/batch.hpp"
#include "rl2/train/backend.hpp"
#include "rl2/train/learner.hpp"
#if defined(RL2_WITH_CUDA)
#include "cuda/backend_cuda.hpp"
#endif

namespace rl2 {

std::unique_ptr<Backend> make_backend(Device device) {
  if (device == Device::kCpu) return make_cpu_backend();
#if defined(RL2_WITH_CUDA)
  return make_cuda_backend();
#else
  throw InputError("this build has no CUDA backend (no nvcc at build time); use --device cpu");
#endif
}

std::unique_ptr<EnvBatch> make_env_batch(Device device, const EnvConfig& cfg, int64_t trials) {
  if (device == Device::kCuda) {
    RL2_REQUIRE(cuda_probe().usable, "no usable GPU: " + cuda_probe().reason);
    check_batch_fits(device, cfg, trials);  // before the backend's handles take their memory
  }
  return make_env_batch(make_backend(device), cfg, trials);
}

std::unique_ptr<EnvBatch> make_cpu_env_batch(const EnvConfig& cfg, int64_t trials) {
  return make_env_batch(Device::kCpu, cfg, trials);
}

std::unique_ptr<Learner> make_learner(Device device, const TrainConfig& cfg, Comm& comm) {
  cfg.validate();
  if (device == Device::kCuda) RL2_REQUIRE(cuda_probe().usable, "no usable GPU: " + cuda_probe().reason);
  std::unique_ptr<Backend> be = make_backend(device);
  be->check_fits(cfg);
  return make_learner(std::move(be), cfg, comm);
}

std::unique_ptr<Learner> make_cpu_learner(const TrainConfig& cfg) { return make_learner(Device::kCpu, cfg); }

}  // namespace rl2
