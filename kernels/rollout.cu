// Rollout kernels: everything of one RL² time step except the GRU's two matrix products (cuBLAS).
// Parallel layouts:
//   rollout_env_reset_kernel / rollout_env_step_kernel: one thread per trial, grid-stride. The body is the
//     environment's RL2_HD sample_task/reset/step/observe (include/rl2/env/*.hpp, the code the CPU batch
//     loops over) followed by rl2::encode_input (policy.hpp), so the logged inputs match the CPU bit for bit.
//     The step kernel also keeps the CPU's finished-trial bookkeeping (episodes done per trial, the mask).
//   the render kernel of launch.cuh (the maze): blocks of 8 trials x 40 threads, one thread per column, calling the
//     Maze::render_column that the CPU's observe() loops over, writing straight into x_{t+1}'s image part
//     (the first obs_size floats of the row, [3, 30, 40] as encode_input would copy them).
//   gru_gates_kernel: one thread per (network, trial, hidden unit); consecutive threads take consecutive
//     units of one trial, so every gate load and the h/h' accesses are coalesced. Equations of gru.hpp
//     (cuDNN / torch.nn.GRU form, gates r, z, n; the reset gate multiplies R_n h + b_Rn).
//   rollout_heads_kernel: one warp per trial. Lanes stride over the hidden units for each head row
//     (coalesced), a shuffle tree sums the row; lane 0 then runs rl2::softmax and rl2::sample_categorical
//     (softmax.hpp, the CPU rollout's own code) with u = u01(philox_bits(seed, trial, t, kAction, 0).v[0]).
// Built like the environment kernels with -fmad=false and IEEE division (CMakeLists.txt), so the env and
// encoding match the CPU exactly; the GRU and heads match to float rounding (tests/gpu_rollout_parity.cpp).
#include "launch.cuh"
#include "rollout.cuh"
#include "rl2/core/rng.hpp"
#include "rl2/env/bandit.hpp"
#include "rl2/env/maze.hpp"
#include "rl2/env/tabular_mdp.hpp"
#include "rl2/policy/softmax.hpp"
#include "rl2/policy/gru_gates.hpp"
#include "cuda/cuda_check.hpp"

namespace rl2 {
namespace {

using kern::blocks_for;
using kern::kThreads;
constexpr int kHeadWarps = 4;  // trials per block of the head kernel

// Trial i's next input row x_next[i] = encode_input(observation, a, r, d) after a reset (a = -1, r = d = 0)
// or a step. A column-rendered view (the maze) is drawn into the row's image part by the render kernel
// that follows; here only [onehot(a), r, d] after it.
template <class Env>
__device__ void encode_next(const RolloutEnvArgs<Env>& a, int64_t i, const float* task, const typename Env::State& st,
                            int32_t act, float reward, float done) {
  const int64_t obs_size = Env::obs_size(a.params);
  float* x = a.x_next + i * a.layout.size();
  if constexpr (ColumnRendered<Env>) {
    encode_input(InputLayout{0, a.layout.actions}, nullptr, act, reward, done, x + obs_size);
  } else {
    float* obs = a.obs + i * obs_size;
    Env::observe(a.params, task, st, obs);
    encode_input(a.layout, obs, act, reward, done, x);
  }
}

template <class Env>
__global__ void rollout_env_reset_kernel(const RolloutEnvArgs<Env> a) {
  const RolloutRun run = *a.run;
  const int64_t task_size = Env::task_size(a.params);
  RL2_GRID_STRIDE(i, a.trials) {
    float* task = a.tasks + i * task_size;
    Env::sample_task(a.params, run.seed, run.first_trial + static_cast<uint64_t>(i), task);
    typename Env::State st;
    Env::reset(a.params, task, st);
    a.states[i] = st;
    a.episodes_done[i] = 0;
    encode_next(a, i, task, st, -1, 0.0f, 0.0f);  // no previous action at trial start
  }
}

template <class Env>
__global__ void rollout_env_step_kernel(const RolloutEnvArgs<Env> a) {
  const RolloutRun run = *a.run;
  const int64_t task_size = Env::task_size(a.params);
  RL2_GRID_STRIDE(i, a.trials) {
    const float* task = a.tasks + i * task_size;
    const int32_t act = a.actions[i];  // drawn by the head kernel, always in [0, A)
    typename Env::State st = a.states[i];
    const StepOut out = Env::step(a.params, task, st, act, run.seed, run.first_trial + static_cast<uint64_t>(i));
    a.states[i] = st;
    a.rewards[i] = out.reward;
    a.dones[i] = out.done;
    // the CPU rollout's play_trials: the step is active when the trial had not finished before it.
    const int32_t done_before = a.episodes_done[i];
    const bool live = done_before < a.episodes;
    a.mask[i] = live ? 1.0f : 0.0f;
    if (live && out.done) a.episodes_done[i] = done_before + 1;
    if (a.x_next) encode_next(a, i, task, st, act, out.reward, static_cast<float>(out.done));
  }
}

// e runs over [2, N, H]: network, trial, unit.
__global__ void gru_gates_kernel(const GruGateArgs a) {
  const int64_t H = a.hidden;
  const int64_t NH = a.trials * H;
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < 2 * NH; e += int64_t{gridDim.x} * blockDim.x) {
    const int net = e >= NH ? 1 : 0;
    const int64_t k = e - net * NH;
    const int64_t i = k / H, j = k - i * H;
    const float* gi = a.gi + (i * 2 + net) * 3 * H;     // this trial's [3H] input projection
    const float* gh = a.gh + (net * a.trials + i) * 3 * H;  // this trial's [3H] recurrent projection
    const float* bi = net ? a.b_ih[1] : a.b_ih[0];
    const float* bh = net ? a.b_hh[1] : a.b_hh[0];
    float r, z, n, hn;
    a.h_next[e] = gru_unit(H, j, gi, gh, bi, bh, a.h[e], r, z, n, hn);  // the CPU's own gate arithmetic
  }
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Dot product of a [H] weight row with a [H] hidden state, summed over the warp (every lane gets it).
__device__ __forceinline__ float warp_dot(const float* w, const float* h, int32_t H, int lane) {
  float s = 0.0f;
  for (int32_t j = lane; j < H; j += 32) s += w[j] * h[j];
  return warp_sum(s);
}

// Shared memory: per warp, logits [A] then probabilities [A].
__global__ void rollout_heads_kernel(const HeadArgs a) {
  extern __shared__ float smem[];
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int32_t A = a.actions, H = a.hidden;
  float* logits = smem + warp * 2 * A;
  float* p = logits + A;
  const RolloutRun run = *a.run;
  // i is the same for every lane of a warp, so the loop and its shuffles stay warp-uniform.
  for (int64_t i = blockIdx.x * int64_t{kHeadWarps} + warp; i < a.trials; i += int64_t{gridDim.x} * kHeadWarps) {
    const float* hp = a.h + i * H;                  // policy h'
    const float* hb = a.h + (a.trials + i) * H;     // baseline h'
    for (int32_t o = 0; o < A; ++o) {
      const float s = warp_dot(a.policy_w + int64_t{o} * H, hp, H, lane);
      if (lane == 0) logits[o] = s + a.policy_b[o];
    }
    const float v = warp_dot(a.value_w, hb, H, lane);
    __syncwarp();
    if (lane == 0) {
      const float lse = softmax(logits, A, p);
      const float u = u01(philox_bits(run.seed, run.first_trial + static_cast<uint64_t>(i), static_cast<uint32_t>(a.t),
                                      Purpose::kAction, 0)
                              .v[0]);
      const int32_t act = sample_categorical(p, A, u);
      a.actions_out[i] = act;
      a.logp[i] = logits[act] - lse;
      a.values[i] = v + a.value_b[0];
    }
    __syncwarp();
    for (int32_t o = lane; o < A; o += 32) a.probs[i * A + o] = p[o];
    __syncwarp();  // the next trial's logits overwrite these
  }
}

}  // namespace

namespace {

// The view of every trial into x_next's image part (rendered environments only; nothing after the last step).
template <class Env>
void launch_rollout_render(const RolloutEnvArgs<Env>& args, cudaStream_t stream) {
  if constexpr (ColumnRendered<Env>) {
    if (!args.x_next) return;
    // After the reset or step kernel on the same stream: it reads the states they just wrote.
    kern::launch_render_rows<Env>(args.params, args.trials, args.tasks, args.states, args.x_next, args.layout.size(),
                                  stream);
  }
}

}  // namespace

template <class Env>
void launch_rollout_env_reset(const RolloutEnvArgs<Env>& args, cudaStream_t stream) {
  rollout_env_reset_kernel<Env><<<blocks_for(args.trials, kThreads), kThreads, 0, stream>>>(args);
  RL2_CUDA_CHECK(cudaGetLastError());
  launch_rollout_render(args, stream);
}

template <class Env>
void launch_rollout_env_step(const RolloutEnvArgs<Env>& args, cudaStream_t stream) {
  rollout_env_step_kernel<Env><<<blocks_for(args.trials, kThreads), kThreads, 0, stream>>>(args);
  RL2_CUDA_CHECK(cudaGetLastError());
  launch_rollout_render(args, stream);
}

void launch_gru_gates(const GruGateArgs& args, cudaStream_t stream) {
  gru_gates_kernel<<<blocks_for(2 * args.trials * args.hidden, kThreads), kThreads, 0, stream>>>(args);
  RL2_CUDA_CHECK(cudaGetLastError());
}

void launch_rollout_heads(const HeadArgs& args, cudaStream_t stream) {
  RL2_CHECK(args.actions >= 1 && args.actions <= kRolloutMaxActions, "head kernel: action count out of range");
  const size_t smem = sizeof(float) * 2 * static_cast<size_t>(args.actions) * kHeadWarps;
  rollout_heads_kernel<<<blocks_for(args.trials, kHeadWarps), kHeadWarps * 32, smem, stream>>>(args);
  RL2_CUDA_CHECK(cudaGetLastError());
}

template void launch_rollout_env_reset<Bandit>(const RolloutEnvArgs<Bandit>&, cudaStream_t);
template void launch_rollout_env_step<Bandit>(const RolloutEnvArgs<Bandit>&, cudaStream_t);
template void launch_rollout_env_reset<TabularMdp>(const RolloutEnvArgs<TabularMdp>&, cudaStream_t);
template void launch_rollout_env_step<TabularMdp>(const RolloutEnvArgs<TabularMdp>&, cudaStream_t);
template void launch_rollout_env_reset<Maze>(const RolloutEnvArgs<Maze>&, cudaStream_t);
template void launch_rollout_env_step<Maze>(const RolloutEnvArgs<Maze>&, cudaStream_t);

}  // namespace rl2
