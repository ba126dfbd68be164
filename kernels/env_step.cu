// Batched environment kernels: one thread per trial, grid-stride over the batch.
// The body is the environment's RL2_HD reset/step/observe (include/rl2/env/*.hpp), shared with the
// CPU loop in src/cpu/env_batch_cpu.cpp. Environments with a per-column renderer (the maze) leave the
// observation to env_render_kernel: a block of kRenderTrials x W threads, one trial per row of the
// block and one column (ray) per thread, calling the render_column that the CPU's observe() loops
// over. Built with -fmad=false and IEEE division/sqrt (no fast math) so every float matches the CPU
// bit for bit (tests/gpu_env_parity.cpp).
#include "env_step.cuh"
#include "rl2/env/bandit.hpp"
#include "rl2/env/maze.hpp"
#include "rl2/env/tabular_mdp.hpp"
#include "cuda/cuda_check.hpp"

namespace rl2 {
namespace {

constexpr int kThreads = 256;
constexpr int kRenderTrials = 8;  // trials per block of the render kernel

int blocks_for(int64_t n, int per_block = kThreads) {
  const int64_t b = (n + per_block - 1) / per_block;
  return static_cast<int>(b < 65535 * 32 ? b : 65535 * 32);
}

template <class Env>
concept ColumnRendered = requires(const typename Env::Params& p, const float* task, const typename Env::State& s,
                                  float* obs) {
  Env::kWidth;
  Env::render_column(p, task, s, 0, obs);
};

template <class Env>
__global__ void env_reset_kernel(const EnvKernelArgs<Env> a) {
  const int64_t task_size = Env::task_size(a.params);
  const int64_t obs_size = Env::obs_size(a.params);
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < a.trials; i += int64_t{gridDim.x} * blockDim.x) {
    Env::sample_task(a.params, a.seed, a.first_trial + static_cast<uint64_t>(i), a.tasks + i * task_size);
    typename Env::State st;
    Env::reset(a.params, a.tasks + i * task_size, st);
    a.states[i] = st;
    if constexpr (!ColumnRendered<Env>) Env::observe(a.params, a.tasks + i * task_size, st, a.obs + i * obs_size);
    a.rewards[i] = 0.0f;
    a.dones[i] = 0;
  }
}

template <class Env>
__global__ void env_step_kernel(const EnvKernelArgs<Env> a) {
  const int64_t task_size = Env::task_size(a.params);
  const int64_t obs_size = Env::obs_size(a.params);
  const int32_t num_actions = Env::num_actions(a.params);
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < a.trials; i += int64_t{gridDim.x} * blockDim.x) {
    const int32_t act = a.actions[i];
    if (act < 0 || act >= num_actions) {
      *a.error_flag = 1;
      continue;
    }
    typename Env::State st = a.states[i];
    const StepOut out = Env::step(a.params, a.tasks + i * task_size, st, act, a.seed, a.first_trial + static_cast<uint64_t>(i));
    a.states[i] = st;
    a.rewards[i] = out.reward;
    a.dones[i] = out.done;
    if constexpr (!ColumnRendered<Env>) Env::observe(a.params, a.tasks + i * task_size, st, a.obs + i * obs_size);
  }
}

template <class Env>
__global__ void env_observe_kernel(const EnvKernelArgs<Env> a) {
  const int64_t task_size = Env::task_size(a.params);
  const int64_t obs_size = Env::obs_size(a.params);
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < a.trials; i += int64_t{gridDim.x} * blockDim.x)
    Env::observe(a.params, a.tasks + i * task_size, a.states[i], a.obs + i * obs_size);
}

// threadIdx.x: the column; threadIdx.y: the trial within the block.
template <class Env>
__global__ void env_render_kernel(const EnvKernelArgs<Env> a) {
  const int64_t task_size = Env::task_size(a.params);
  const int64_t obs_size = Env::obs_size(a.params);
  for (int64_t i = blockIdx.x * int64_t{blockDim.y} + threadIdx.y; i < a.trials; i += int64_t{gridDim.x} * blockDim.y)
    Env::render_column(a.params, a.tasks + i * task_size, a.states[i], static_cast<int32_t>(threadIdx.x),
                       a.obs + i * obs_size);
}

template <class Env>
void launch_render(const EnvKernelArgs<Env>& args, cudaStream_t stream) {
  if constexpr (ColumnRendered<Env>) {
    env_render_kernel<Env><<<blocks_for(args.trials, kRenderTrials), dim3(Env::kWidth, kRenderTrials), 0, stream>>>(args);
    RL2_CUDA_CHECK(cudaGetLastError());
  }
}

}  // namespace

template <class Env>
void launch_env_reset(const EnvKernelArgs<Env>& args, cudaStream_t stream) {
  env_reset_kernel<Env><<<blocks_for(args.trials), kThreads, 0, stream>>>(args);
  RL2_CUDA_CHECK(cudaGetLastError());
  launch_render(args, stream);
}

template <class Env>
void launch_env_step(const EnvKernelArgs<Env>& args, cudaStream_t stream) {
  env_step_kernel<Env><<<blocks_for(args.trials), kThreads, 0, stream>>>(args);
  RL2_CUDA_CHECK(cudaGetLastError());
  launch_render(args, stream);
}

template <class Env>
void launch_env_observe(const EnvKernelArgs<Env>& args, cudaStream_t stream) {
  if constexpr (ColumnRendered<Env>) {
    launch_render(args, stream);
  } else {
    env_observe_kernel<Env><<<blocks_for(args.trials), kThreads, 0, stream>>>(args);
    RL2_CUDA_CHECK(cudaGetLastError());
  }
}

template void launch_env_reset<Bandit>(const EnvKernelArgs<Bandit>&, cudaStream_t);
template void launch_env_step<Bandit>(const EnvKernelArgs<Bandit>&, cudaStream_t);
template void launch_env_reset<TabularMdp>(const EnvKernelArgs<TabularMdp>&, cudaStream_t);
template void launch_env_step<TabularMdp>(const EnvKernelArgs<TabularMdp>&, cudaStream_t);
template void launch_env_reset<Maze>(const EnvKernelArgs<Maze>&, cudaStream_t);
template void launch_env_step<Maze>(const EnvKernelArgs<Maze>&, cudaStream_t);
template void launch_env_observe<Bandit>(const EnvKernelArgs<Bandit>&, cudaStream_t);
template void launch_env_observe<TabularMdp>(const EnvKernelArgs<TabularMdp>&, cudaStream_t);
template void launch_env_observe<Maze>(const EnvKernelArgs<Maze>&, cudaStream_t);

}  // namespace rl2
