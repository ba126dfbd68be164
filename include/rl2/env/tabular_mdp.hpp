// Random tabular MDP task distribution (DESIGN.md section 2, paper Table 2).
//
// Task: for each (s, a), mean reward mu_sa ~ N(1, 1) and P(.|s, a) ~ Dirichlet(1, ..., 1).
// Reward ~ N(mu_sa, 1); next state ~ P(.|s, a). Every episode starts in state 0 and lasts exactly
// `horizon` steps; a trial is `episodes` episodes of one task. Dirichlet(1) draws are normalised
// Exponential(1) variables; normals come from the polar method in rng.hpp. Transition rows are stored
// as float CDFs built by one left-to-right sum, so CPU and GPU sample identical next states.
#pragma once

#include <cstdint>

#include "rl2/core/hd.hpp"
#include "rl2/core/rng.hpp"
#include "rl2/env/step.hpp"

namespace rl2 {

struct MdpParams {
  int32_t states = 10;
  int32_t actions = 5;
  int32_t horizon = 10;
  int32_t episodes = 10;
};

struct TabularMdp {
  using Params = MdpParams;
  struct State {
    int32_t t;  // steps taken so far in this trial
    int32_t s;  // current state
  };

  // Task layout (floats): mu [S*A] (index s*A + a), then cdf [S*A*S] (index (s*A + a)*S + s').
  RL2_HD static int64_t task_size(const Params& p) {
    const int64_t sa = int64_t{p.states} * p.actions;
    return sa + sa * p.states;
  }
  RL2_HD static int64_t obs_size(const Params& p) { return p.states; }  // onehot(s)
  RL2_HD static int32_t num_actions(const Params& p) { return p.actions; }
  RL2_HD static int32_t horizon(const Params& p) { return p.horizon; }
  RL2_HD static int64_t trial_length(const Params& p) { return int64_t{p.horizon} * p.episodes; }

  RL2_HD static const float* mean_rewards(const Params&, const float* task) { return task; }
  RL2_HD static const float* cdf_row(const Params& p, const float* task, int32_t s, int32_t a) {
    const int64_t sa = int64_t{p.states} * p.actions;
    return task + sa + (int64_t{s} * p.actions + a) * p.states;
  }

  RL2_HD static void sample_task(const Params& p, uint64_t seed, uint64_t trial, float* task) {
    RandomStream rs(seed, trial, 0, Purpose::kTask);
    const int64_t sa = int64_t{p.states} * p.actions;
    for (int64_t i = 0; i < sa; ++i) task[i] = static_cast<float>(1.0 + rs.normal());
    for (int64_t i = 0; i < sa; ++i) {
      float* cdf = task + sa + i * p.states;
      double total = 0.0;
      for (int32_t j = 0; j < p.states; ++j) {
        const double e = rs.exponential();
        cdf[j] = static_cast<float>(e);  // holds the weight until normalised below
        total += e;
      }
      double acc = 0.0;
      for (int32_t j = 0; j < p.states; ++j) {
        // total == 0 needs every U == 1 (probability 2^-24 per state): fall back to uniform.
        acc += total > 0.0 ? static_cast<double>(cdf[j]) / total : 1.0 / p.states;
        cdf[j] = static_cast<float>(acc);
      }
      cdf[p.states - 1] = 1.0f;
    }
  }
  RL2_HD static void reset(const Params&, const float*, State& s) {
    s.t = 0;
    s.s = 0;
  }
  RL2_HD static StepOut step(const Params& p, const float* task, State& st, int32_t action, uint64_t seed,
                             uint64_t trial) {
    const uint32_t t = static_cast<uint32_t>(st.t);
    RandomStream noise(seed, trial, t, Purpose::kReward);
    StepOut out;
    out.reward = task[int64_t{st.s} * p.actions + action] + static_cast<float>(noise.normal());
    const float u = u01(philox_bits(seed, trial, t, Purpose::kTransition, 0).v[0]);
    const float* cdf = cdf_row(p, task, st.s, action);
    int32_t next = p.states - 1;
    for (int32_t j = 0; j < p.states - 1; ++j) {
      if (u < cdf[j]) {
        next = j;
        break;
      }
    }
    st.t += 1;
    out.done = (st.t % p.horizon) == 0 ? 1 : 0;
    st.s = out.done ? 0 : next;
    return out;
  }
  // obs: [states] onehot of the current state.
  RL2_HD static void observe(const Params& p, const float*, const State& st, float* obs) {
    for (int32_t j = 0; j < p.states; ++j) obs[j] = j == st.s ? 1.0f : 0.0f;
  }
};

}  // namespace rl2
