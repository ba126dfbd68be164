// The per-trial bodies of batched environments, written once (RL2_HD): every backend's env batch
// (src/env/env_batch.cpp: the CPU's OpenMP loop, the CUDA backend's generic kernel, kernels/step_ops.cu) and
// the fused CUDA rollout run the same code, as step_ops.hpp's training ops. Each op is a struct of
// arguments with count() items and a body for item i.
//
// Seed and first trial are read from memory (RunIds), not passed by value, so a captured CUDA graph replays
// for a new seed and block of trial ids. Trial i of a batch is trial id first_trial + i of the seed.
#pragma once

#include <cstdint>

#include "rl2/core/hd.hpp"
#include "rl2/env/env.hpp"
#include "rl2/env/step.hpp"

namespace rl2 {

struct RunIds {
  uint64_t seed;
  uint64_t first_trial;
};

namespace ops {

// Samples trial i's task, resets its state; observation (unless obs is nullptr or the env is rendered per
// column: EnvRender draws it), reward 0 and done 0 (when given).
template <class Env>
struct EnvReset {
  typename Env::Params p;
  int64_t trials;
  const RunIds* run;
  float* tasks;                 // [N, task_size]
  typename Env::State* states;  // [N]
  float* obs;                   // [N, obs_size] or nullptr
  float* rewards;               // [N] or nullptr
  uint8_t* dones;               // [N] or nullptr
  int64_t count() const { return trials; }
  RL2_HD void operator()(int64_t i) const {
    float* task = tasks + i * Env::task_size(p);
    Env::sample_task(p, run->seed, run->first_trial + static_cast<uint64_t>(i), task);
    typename Env::State st;
    Env::reset(p, task, st);
    states[i] = st;
    if constexpr (!ColumnRendered<Env>)
      if (obs != nullptr) Env::observe(p, task, st, obs + i * Env::obs_size(p));
    if (rewards != nullptr) rewards[i] = 0.0f;
    if (dones != nullptr) dones[i] = 0;
  }
};

// Steps trial i with actions[i]: reward, done, observation (as EnvReset). An action outside [0, |A|) marks
// bad[i] = 1 (when bad is given) and leaves the trial as it was (the caller reports it).
template <class Env>
struct EnvStep {
  typename Env::Params p;
  int64_t trials;
  const RunIds* run;
  const float* tasks;
  typename Env::State* states;
  const int32_t* actions;  // [N]
  float* obs;              // [N, obs_size] or nullptr
  float* rewards;          // [N]
  uint8_t* dones;          // [N]
  int32_t* bad;            // [N] or nullptr (the actions were drawn in range)
  int64_t count() const { return trials; }
  RL2_HD void operator()(int64_t i) const {
    const int32_t act = actions[i];
    if (act < 0 || act >= Env::num_actions(p)) {
      if (bad != nullptr) bad[i] = 1;
      return;
    }
    const float* task = tasks + i * Env::task_size(p);
    typename Env::State st = states[i];
    const StepOut out = Env::step(p, task, st, act, run->seed, run->first_trial + static_cast<uint64_t>(i));
    states[i] = st;
    rewards[i] = out.reward;
    dones[i] = out.done;
    if constexpr (!ColumnRendered<Env>)
      if (obs != nullptr) Env::observe(p, task, st, obs + i * Env::obs_size(p));
  }
};

// Trial i's observation from its state alone.
template <class Env>
struct EnvObserve {
  typename Env::Params p;
  int64_t trials;
  const float* tasks;
  const typename Env::State* states;
  float* obs;  // [N, obs_size]
  int64_t count() const { return trials; }
  RL2_HD void operator()(int64_t i) const {
    Env::observe(p, tasks + i * Env::task_size(p), states[i], obs + i * Env::obs_size(p));
  }
};

// One column of a rendered view (the maze): item e is column e % kWidth of trial e / kWidth, drawn into the
// trial's row out + i * row_stride (the batch's observations, or the image part of the rollout's input).
template <class Env>
struct EnvRender {
  typename Env::Params p;
  int64_t trials;
  const float* tasks;
  const typename Env::State* states;
  float* out;
  int64_t row_stride;
  int64_t count() const { return trials * Env::kWidth; }
  RL2_HD void operator()(int64_t e) const {
    const int64_t i = e / Env::kWidth;
    Env::render_column(p, tasks + i * Env::task_size(p), states[i], static_cast<int32_t>(e - i * Env::kWidth),
                       out + i * row_stride);
  }
};

}  // namespace ops

// The ops above for every environment: X(Op) for each.
#define RL2_ENV_OPS(X)                                                                                        \
  X(EnvReset<Bandit>) X(EnvReset<TabularMdp>) X(EnvReset<Maze>) X(EnvStep<Bandit>) X(EnvStep<TabularMdp>)       \
  X(EnvStep<Maze>) X(EnvObserve<Bandit>) X(EnvObserve<TabularMdp>) X(EnvObserve<Maze>) X(EnvRender<Maze>)

}  // namespace rl2
