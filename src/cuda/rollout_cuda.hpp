// The CUDA rollout (DESIGN.md sections 3 and 9; docs/cuda_rollout.md): N whole trials of a bandit,
// tabular-MDP or maze task distribution played by a GRU policy, with a GRU baseline evaluated alongside,
// entirely on the device: no host round trip inside a trial. Per time step: input projection of both
// networks (one cuBLAS SGEMM), recurrent projections (one strided-batched SGEMM), fused gates -> h', policy
// head + softmax + action draw and baseline head (one warp per trial), environment step + next input
// encoding. The T-step loop is captured once into a CUDA graph and replayed by every later run().
// The maze (network.hpp's encoder -> GRU -> head): the step kernel writes the extra inputs and a render
// kernel draws each trial's view straight into x's image part; per step the cuDNN conv encoder
// (src/cuda/encoder_cudnn.hpp) runs on x_t once with the policy's and once with the baseline's encoder
// parameters, and the input projections read its outputs (two SGEMMs). The maze rollout launches eagerly
// (no graph: see docs/cuda_rollout.md, "The maze") and needs cuDNN at build time.
// Every rollout also logs the finished-step mask [T, N] (the CPU rollout's: 1 while the trial had not
// finished before the step); it is all ones for bandit and MDP trials.
//
// Contract with the CPU rollout (src/cpu/backend_cpu.cpp, play_trials): the same Philox counters
// (action at step t of trial first_trial + i: u01(philox_bits(seed, first_trial + i, t, kAction, 0).v[0])
// -> sample_categorical), the same encode_input, the same environment functions; h = 0 at trial start.
// Environments and inputs match bit for bit while actions agree; network outputs to float rounding.
//
// This header is plain C++ (pimpl): it compiles with g++ for the tests and the bench.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "rl2/env/env.hpp"
#include "rl2/policy/gru.hpp"
#include "rl2/policy/network.hpp"
#include "rl2/policy/rollout_ops.hpp"  // kRolloutMaxActions

namespace rl2 {

// Host copy of one rollout, time-major, for tests and tools.
struct RolloutHost {
  int64_t steps = 0;    // T
  int64_t trials = 0;   // N
  int32_t input = 0;    // I
  int32_t actions_count = 0;  // A
  std::vector<float> x;          // [T, N, I] policy inputs phi_t (only the last two steps without keep_inputs)
  std::vector<int32_t> actions;  // [T, N]
  std::vector<float> logp;       // [T, N] log pi(a_t | history), = logit[a_t] - logsumexp(logits)
  std::vector<float> probs;      // [T, N, A]
  std::vector<float> rewards;    // [T, N]
  std::vector<uint8_t> dones;    // [T, N] 1 where step t ended an episode
  std::vector<float> values;     // [T, N] baseline head output (unnormalised: the trainer scales it)
  std::vector<float> mask;       // [T, N] 1 if the trial had not finished before step t, else 0
  std::vector<double> totals;    // [N] total reward of each trial, summed over t in order (as the CPU)
};


struct RolloutOptions {
  bool use_graph = true;    // false: launch every step's work eagerly each run (for tests and profiling);
                            // the maze always launches eagerly
  bool allow_tf32 = false;  // true: cuBLAS may use TF32 tensor cores for the GEMMs (not the default)
  bool keep_inputs = true;  // false: x holds only steps t and t + 1 ([2, N, I]), for evaluation, which
                            // never reads the inputs back (the maze's are 3605 floats per step)
};

// Throws InputError when the CUDA rollout cannot play `cfg` with these networks (shapes that do not match
// the environment's input and action sizes; a maze without the encoder or a bandit/MDP with one; a policy
// and baseline of different sizes; too many actions; the maze in a build without cuDNN). Touches no CUDA API.
// The NetShape forms are the general ones (TrainConfig::policy_shape()); the GruShape forms are the
// networks without an encoder (bandit, MDP) and refuse the maze.
void validate_rollout(const EnvConfig& cfg, const NetShape& policy, const NetShape& baseline, int64_t trials);
void validate_rollout(const EnvConfig& cfg, const GruShape& policy, const GruShape& baseline, int64_t trials);
// Device bytes one trial needs (trajectory buffers, mask, environment, hidden states, GEMM outputs; the
// maze: its inputs and its encoder's activations), and the fixed bytes of one rollout (parameters, packed
// weights, cuBLAS workspace; the maze: a cuDNN handle's margin).
int64_t rollout_bytes_per_trial(const EnvConfig& cfg, const NetShape& policy, bool keep_inputs = true);
int64_t rollout_bytes_per_trial(const EnvConfig& cfg, const GruShape& policy);
int64_t rollout_fixed_bytes(const EnvConfig& cfg, const NetShape& policy, const NetShape& baseline);
int64_t rollout_fixed_bytes(const EnvConfig& cfg, const GruShape& policy, const GruShape& baseline);
// Throws InputError when no GPU is usable or the rollout would not fit in the GPU memory free now (the
// message says how much it needs, how much is free and how many trials would fit).
void check_rollout_fits(const EnvConfig& cfg, const NetShape& policy, const NetShape& baseline, int64_t trials,
                        bool keep_inputs = true);
void check_rollout_fits(const EnvConfig& cfg, const GruShape& policy, const GruShape& baseline, int64_t trials);

class CudaRollout {
 public:
  // Validates (validate_rollout, check_rollout_fits), then allocates every buffer once.
  // policy: gru {G, H, A}; baseline: gru {G, H, 1}. Without an encoder G = I = obs_size + A + 2 (policy.hpp's
  // InputLayout); with one (the maze) enc.in() = I and G = enc.out().
  CudaRollout(const EnvConfig& cfg, const NetShape& policy, const NetShape& baseline, int64_t trials,
              RolloutOptions options = {});
  // Networks without an encoder (bandit, MDP).
  CudaRollout(const EnvConfig& cfg, const GruShape& policy, const GruShape& baseline, int64_t trials,
              RolloutOptions options = {});
  ~CudaRollout();
  CudaRollout(CudaRollout&&) noexcept;
  CudaRollout& operator=(CudaRollout&&) noexcept;
  CudaRollout(const CudaRollout&) = delete;
  CudaRollout& operator=(const CudaRollout&) = delete;

  // Uploads both flat parameter vectors (network.hpp layout: [policy.size()] and [baseline.size()] floats
  // of host memory) and plays trials first_trial .. first_trial + N - 1
  // of `seed`. Queued on the rollout's stream; returns before the GPU finishes (synchronize() waits; the
  // host vectors may be reused as soon as run() returns). The first run with graphs on launches eagerly and
  // then captures the graph; later runs replay it.
  void run(const float* policy_params_host, const float* baseline_params_host, uint64_t seed, uint64_t first_trial);
  void synchronize() const;
  // Waits, then copies every buffer to the host and sums each trial's rewards.
  RolloutHost copy_to_host() const;

  int64_t trials() const;  // N
  int64_t steps() const;   // T
  int32_t input_size() const;   // I
  int32_t num_actions() const;  // A
  bool graph_captured() const;
  // Device pointers, valid for the rollout's lifetime, filled by run().
  const float* x() const;          // [T, N, I] ([2, N, I] without keep_inputs)
  const int32_t* actions() const;  // [T, N]
  const float* logp() const;       // [T, N]
  const float* probs() const;      // [T, N, A]
  const float* rewards() const;    // [T, N]
  const uint8_t* dones() const;    // [T, N]
  const float* values() const;     // [T, N]
  const float* mask() const;       // [T, N] 1: active, 0: the trial had finished before the step

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace rl2
