// TrainConfig validation and derived sizes; the Learner factory.
#include <algorithm>
#include <cmath>

#include "rl2/core/check.hpp"
#include "rl2/train/learner.hpp"

namespace rl2 {

int64_t TrainConfig::trials_per_iter() const { return std::max<int64_t>(1, steps_per_iter / env.trial_length()); }

InputLayout TrainConfig::input_layout() const {
  return InputLayout{static_cast<int32_t>(env.obs_size()), env.num_actions()};
}

void TrainConfig::validate() const {
  env.validate();
  RL2_REQUIRE(algo == "trpo", "unknown --algo '" + algo + "' (expected trpo; ppo comes later)");
  RL2_REQUIRE(hidden >= 1 && hidden <= 4096, "--hidden must be in [1, 4096] (got " + std::to_string(hidden) + ")");
  RL2_REQUIRE(iterations >= 0, "--iterations must be 0 or more (got " + std::to_string(iterations) + ")");
  RL2_REQUIRE(steps_per_iter >= 1, "--steps-per-iter must be at least 1 (got " + std::to_string(steps_per_iter) + ")");
  RL2_REQUIRE(trpo.max_kl > 0.0 && std::isfinite(trpo.max_kl), "--max-kl must be a positive number");
  RL2_REQUIRE(gamma > 0.0 && gamma <= 1.0, "--gamma must be in (0, 1]");
  RL2_REQUIRE(gae_lambda >= 0.0 && gae_lambda <= 1.0, "--gae-lambda must be in [0, 1]");
  RL2_REQUIRE(trpo.cg_damping >= 0.0 && std::isfinite(trpo.cg_damping), "--cg-damping must be 0 or more");
  RL2_REQUIRE(trpo.cg_iterations >= 1 && trpo.cg_iterations <= 1000, "--cg-iters must be in [1, 1000]");
  RL2_REQUIRE(baseline_epochs >= 0 && baseline_minibatches >= 1, "baseline epochs must be >= 0 and minibatches >= 1");
  // Host memory of one iteration: inputs, per-step data and four GRU caches of 5 [T, N, H] arrays.
  const double tn = static_cast<double>(env.trial_length()) * static_cast<double>(trials_per_iter());
  const double bytes = 4.0 * tn * (input_layout().size() + 8 + 4 * env.num_actions() + 4 * 5.0 * hidden);
  const int64_t avail = host_available_bytes();
  RL2_REQUIRE(avail <= 0 || bytes <= 0.9 * static_cast<double>(avail),
              "--steps-per-iter " + std::to_string(steps_per_iter) + " with --hidden " + std::to_string(hidden) +
                  " needs " + format_bytes(bytes) + " of memory per iteration; " +
                  format_bytes(static_cast<double>(avail)) + " is available");
}

std::unique_ptr<Learner> make_learner(Device device, const TrainConfig& cfg) {
  RL2_REQUIRE(device == Device::kCpu,
              "training on the CUDA backend is not built yet (it lands with the CUDA-backend issue); use --device cpu");
  return make_cpu_learner(cfg);
}

}  // namespace rl2
