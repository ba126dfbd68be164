// What every backend's learner shares besides the trainer: the checks of evaluate() and set_state().
#include "rl2/core/check.hpp"
#include "rl2/train/learner.hpp"

namespace rl2 {

void check_eval_request(const EnvConfig& trained, const EnvConfig& env, int64_t instances) {
  RL2_REQUIRE(instances >= 1, "--instances must be at least 1 (got " + std::to_string(instances) + ")");
  env.validate();
  RL2_REQUIRE(env.kind == trained.kind && env.obs_size() == trained.obs_size() &&
                  env.num_actions() == trained.num_actions(),
              "cannot evaluate a policy trained on " + trained.describe() + " on " + env.describe() +
                  " (a different input or action set)");
}

void check_state_fits(const TrainState& current, const TrainState& s) {
  const auto fits = [](const AdamState& a, size_t n) { return (a.m.empty() || a.m.size() == n) && a.m.size() == a.v.size(); };
  RL2_REQUIRE(s.policy.size() == current.policy.size() && s.baseline.size() == current.baseline.size() &&
                  fits(s.baseline_adam, current.baseline.size()) && fits(s.policy_adam, current.policy.size()),
              "the checkpoint's network sizes do not match this configuration (--hidden, --env and its sizes)");
}

}  // namespace rl2
