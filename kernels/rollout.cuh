// Launchers of the rollout kernels (kernels/rollout.cu), driven by src/cuda/rollout_cuda.cpp once per time
// step (and captured once into a CUDA graph). The matrix products of the GRU step are cuBLAS SGEMMs issued
// by the caller; these kernels do everything around them:
//   env reset + encode x_0      one thread per trial            (templated on the environment)
//   GRU gates -> h'             one thread per (network, trial, hidden unit)
//   heads, softmax, action draw one warp per trial              (policy head + baseline head)
//   env step + encode x_{t+1}   one thread per trial            (templated on the environment)
//   maze view -> x_{t+1}        one thread per column, 8 trials per block (render_column, written
//                               straight into the image part of x: frames never leave the device)
// Buffers are time-major: x [T, N, I], actions/logp/rewards/dones/values/mask [T, N], probs [T, N, A].
// seed and first_trial are read from device memory (RolloutRun), not passed by value, so a captured
// graph replays for a new seed and a new block of trial ids without being captured again.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/rollout_cuda.hpp"  // kRolloutMaxActions
#include "rl2/policy/policy.hpp"

namespace rl2 {

// What changes from one run to the next, in device memory.
struct RolloutRun {
  uint64_t seed;
  uint64_t first_trial;  // trial i of the batch is trial id first_trial + i
};

template <class Env>
struct RolloutEnvArgs {
  typename Env::Params params;
  InputLayout layout;
  int64_t trials;               // N
  int32_t t;                    // the step (step kernel only)
  const RolloutRun* run;
  float* tasks;                 // [N, task_size]
  typename Env::State* states;  // [N]
  float* obs;                   // [N, obs_size] scratch: the observation before encoding (unused when rendered)
  const int32_t* actions;       // [N] the actions of step t (step kernel only)
  float* rewards;               // [N] rewards of step t (step kernel only)
  uint8_t* dones;               // [N] dones of step t (step kernel only)
  float* x_next;                // [N, I] input of step t + 1 (reset: of step 0); nullptr after the last step
  int32_t episodes;             // E, episodes per trial
  int32_t* episodes_done;       // [N] episodes finished so far (reset zeroes it; the CPU rollout's play_trials)
  float* mask;                  // [N] of step t: 1 if the trial had not finished before step t, else 0 (step only)
};

// The fused GRU gate math of both networks after the GEMMs (gru.hpp's equations, biases added here):
// net 0 is the policy, net 1 the baseline; both have the same input and hidden sizes.
struct GruGateArgs {
  int64_t trials;  // N
  int32_t hidden;  // H
  const float* gi;  // [N, 2, 3H] x W_ihᵀ of both networks (one GEMM: packed W_ih [6H, I])
  const float* gh;  // [2, N, 3H] h W_hhᵀ per network (one strided-batched GEMM)
  const float* h;   // [2, N, H] hidden state before the step
  float* h_next;    // [2, N, H] after the step
  const float* b_ih[2];  // [3H] per network
  const float* b_hh[2];  // [3H] per network
};

// Policy head -> softmax -> inverse-CDF draw with philox_bits(seed, first_trial + i, t, kAction, 0).v[0],
// and the baseline head, from h' of both networks.
struct HeadArgs {
  int64_t trials;   // N
  int32_t hidden;   // H
  int32_t actions;  // A
  int32_t t;
  const RolloutRun* run;
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

template <class Env>
void launch_rollout_env_reset(const RolloutEnvArgs<Env>& args, cudaStream_t stream);
template <class Env>
void launch_rollout_env_step(const RolloutEnvArgs<Env>& args, cudaStream_t stream);
void launch_gru_gates(const GruGateArgs& args, cudaStream_t stream);
void launch_rollout_heads(const HeadArgs& args, cudaStream_t stream);

}  // namespace rl2
