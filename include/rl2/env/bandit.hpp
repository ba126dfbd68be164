// Bernoulli multi-armed bandit task distribution (DESIGN.md section 2, paper Table 1).
//
// Task: p_i ~ U[0,1] for each of k arms. An episode is one pull (horizon 1); reward ~ Bernoulli(p_a).
// A trial is `episodes` pulls of one task. Pure functions over plain data, shared by the CPU loop and
// the CUDA kernel (env_ops.hpp's ops, kernels/step_ops.cu); every random number comes from rl2::philox_bits.
#pragma once

#include <cstdint>

#include "rl2/core/hd.hpp"
#include "rl2/core/rng.hpp"
#include "rl2/env/step.hpp"

namespace rl2 {

struct BanditParams {
  int32_t arms = 5;
  int32_t episodes = 10;
};

struct Bandit {
  using Params = BanditParams;
  struct State {
    int32_t t;  // pulls taken so far in this trial
  };

  // Floats of task data per trial: the arm means p[0..arms).
  RL2_HD static int64_t task_size(const Params& p) { return p.arms; }
  RL2_HD static int64_t obs_size(const Params&) { return 0; }
  RL2_HD static int32_t num_actions(const Params& p) { return p.arms; }
  RL2_HD static int32_t horizon(const Params&) { return 1; }
  RL2_HD static int64_t trial_length(const Params& p) { return p.episodes; }

  // task: [arms] arm means, p_i = U[0,1) on the 2^-24 grid.
  RL2_HD static void sample_task(const Params& p, uint64_t seed, uint64_t trial, float* task) {
    RandomStream rs(seed, trial, 0, Purpose::kTask);
    for (int32_t i = 0; i < p.arms; ++i) task[i] = rs.uniform();
  }
  RL2_HD static void reset(const Params&, const float*, State& s) { s.t = 0; }
  // Reward: 1 if U < p_a with U drawn from (trial, step, kReward): the draw does not depend on the
  // action, so every policy sees common random numbers.
  RL2_HD static StepOut step(const Params&, const float* task, State& s, int32_t action, uint64_t seed,
                             uint64_t trial) {
    const float u = u01(philox_bits(seed, trial, static_cast<uint32_t>(s.t), Purpose::kReward, 0).v[0]);
    StepOut out;
    out.reward = u < task[action] ? 1.0f : 0.0f;
    out.done = 1;
    s.t += 1;
    return out;
  }
  RL2_HD static void observe(const Params&, const float*, const State&, float*) {}
};

}  // namespace rl2
