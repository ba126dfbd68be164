// The rollout's policy and baseline heads (kernels/rollout_heads.cu), launched by src/cuda/rollout_cuda.cpp
// once per time step after the GRU's gate update: one warp per trial. Lanes stride over the hidden units for
// each head row (coalesced) and a shuffle tree sums the row; lane 0 then runs rl2::softmax and
// rl2::sample_categorical (softmax.hpp, the CPU rollout's own code). Every other per-trial body of the
// rollout is an op of env_ops.hpp / rollout_ops.hpp (kernels/step_ops.cu). Buffers are time-major.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "rl2/policy/rollout_ops.hpp"  // RunIds, kRolloutMaxActions

namespace rl2 {

// Policy head -> softmax -> inverse-CDF draw with philox_bits(seed, first_trial + i, t, kAction, 0).v[0],
// and the baseline head, from h' of both networks.
struct HeadArgs {
  int64_t trials;   // N
  int32_t hidden;   // H
  int32_t actions;  // A
  int32_t t;
  const RunIds* run;  // seed and first trial in device memory (a captured graph replays)
  const float* h;          // [2, N, H] h' (net 0 policy, net 1 baseline)
  const float* policy_w;   // [A, H]
  const float* policy_b;   // [A]
  const float* value_w;    // [1, H]
  const float* value_b;    // [1]
  int32_t* actions_out;    // [N] actions of step t
  float* logp;             // [N] log pi(a_t | history)
  float* probs;            // [N, A]
  float* values;           // [N] baseline head output
};

void launch_rollout_heads(const HeadArgs& args, cudaStream_t stream);

}  // namespace rl2
