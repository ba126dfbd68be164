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

std::unique_ptr<Learner> make_cpu_learner(const TrainConfig& cfg) {
  cfg.validate();
  // Host memory of one iteration: inputs, per-step data and four network caches (GRU: 5 [T, N, H] arrays;
  // the maze's encoder adds ~18 KB per step, encoder.hpp).
  const double tn = static_cast<double>(cfg.env.trial_length()) * static_cast<double>(cfg.trials_per_iter());
  const double bytes = 4.0 * tn *
                       (cfg.input_layout().size() + 9 + 4 * cfg.env.num_actions() +
                        4.0 * static_cast<double>(cfg.policy_shape().cache_floats_per_step()));
  const int64_t avail = host_available_bytes();
  RL2_REQUIRE(avail <= 0 || bytes <= 0.9 * static_cast<double>(avail),
              "--steps-per-iter " + std::to_string(cfg.steps_per_iter) + " with --hidden " + std::to_string(cfg.hidden) +
                  " needs " + format_bytes(bytes) + " of memory per iteration; " +
                  format_bytes(static_cast<double>(avail)) + " is available");
  return make_learner(make_cpu_backend(), cfg);
}

#if defined(RL2_WITH_CUDA)
namespace {
std::unique_ptr<Learner> make_cuda_learner(const TrainConfig& cfg) {
  cfg.validate();
  check_cuda_learner_fits(cfg);
  return make_learner(make_cuda_backend(), cfg);
}
}  // namespace
#endif

std::unique_ptr<Learner> make_learner(Device device, const TrainConfig& cfg) {
  if (device == Device::kCpu) return make_cpu_learner(cfg);
#if defined(RL2_WITH_CUDA)
  return make_cuda_learner(cfg);
#else
  throw InputError("this build has no CUDA backend (no nvcc at build time); use --device cpu");
#endif
}

}  // namespace rl2
