// TrainConfig (include/rl2/train/learner.hpp): derived sizes, network shapes and value checks. Backend-neutral,
// so each backend can size its own memory check from it.
#include <algorithm>
#include <cmath>

#include "rl2/core/check.hpp"
#include "rl2/train/learner.hpp"

namespace rl2 {

int64_t TrainConfig::trials_per_iter() const { return std::max<int64_t>(1, steps_per_iter / env.trial_length()); }

InputLayout TrainConfig::input_layout() const {
  return InputLayout{static_cast<int32_t>(env.obs_size()), env.num_actions()};
}

namespace {

// The maze's image goes through the conv encoder (encoder.hpp); its extra inputs are onehot(a), r, d.
NetShape net_shape(const TrainConfig& c, int32_t out) {
  NetShape s;
  s.encoder = c.env.kind == EnvKind::kMaze;
  if (s.encoder) {
    s.enc.channels = 3;
    s.enc.height = Maze::kHeight;
    s.enc.width = Maze::kWidth;
    s.enc.extra_in = c.env.num_actions() + 2;
  }
  s.gru = GruShape{s.encoder ? s.enc.out() : c.input_layout().size(), c.hidden, out};
  return s;
}

}  // namespace

NetShape TrainConfig::policy_shape() const { return net_shape(*this, env.num_actions()); }
NetShape TrainConfig::baseline_shape() const { return net_shape(*this, 1); }

void TrainConfig::validate() const {
  env.validate();
  RL2_REQUIRE(algo == "trpo" || algo == "ppo", "unknown --algo '" + algo + "' (expected trpo or ppo)");
  RL2_REQUIRE(ppo.clip > 0.0 && ppo.clip < 1.0, "--ppo-clip must be in (0, 1)");
  RL2_REQUIRE(ppo.epochs >= 1 && ppo.epochs <= 1000, "--ppo-epochs must be in [1, 1000]");
  RL2_REQUIRE(ppo.minibatches >= 1, "--ppo-minibatches must be at least 1");
  RL2_REQUIRE(ppo.lr > 0.0 && std::isfinite(ppo.lr), "--ppo-lr must be a positive number");
  RL2_REQUIRE(ppo.target_kl > 0.0 && std::isfinite(ppo.target_kl), "--ppo-target-kl must be a positive number");
  RL2_REQUIRE(hidden >= 1 && hidden <= 4096, "--hidden must be in [1, 4096] (got " + std::to_string(hidden) + ")");
  RL2_REQUIRE(iterations >= 0, "--iterations must be 0 or more (got " + std::to_string(iterations) + ")");
  RL2_REQUIRE(steps_per_iter >= 1, "--steps-per-iter must be at least 1 (got " + std::to_string(steps_per_iter) + ")");
  RL2_REQUIRE(trpo.max_kl > 0.0 && std::isfinite(trpo.max_kl), "--max-kl must be a positive number");
  RL2_REQUIRE(gamma > 0.0 && gamma <= 1.0, "--gamma must be in (0, 1]");
  RL2_REQUIRE(entropy_coef >= 0.0 && std::isfinite(entropy_coef), "--entropy-coef must be 0 or more");
  RL2_REQUIRE(gae_lambda >= 0.0 && gae_lambda <= 1.0, "--gae-lambda must be in [0, 1]");
  RL2_REQUIRE(trpo.cg_damping >= 0.0 && std::isfinite(trpo.cg_damping), "--cg-damping must be 0 or more");
  RL2_REQUIRE(trpo.fvp_subsample > 0.0 && trpo.fvp_subsample <= 1.0, "--fvp-subsample must be in (0, 1]");
  RL2_REQUIRE(trpo.cg_iterations >= 1 && trpo.cg_iterations <= 1000, "--cg-iters must be in [1, 1000]");
  RL2_REQUIRE(baseline_epochs >= 0 && baseline_minibatches >= 1, "--baseline-epochs must be 0 or more and --baseline-minibatches at least 1");
}

}  // namespace rl2
