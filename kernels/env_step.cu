// Batched environment kernels: one thread per trial, grid-stride over the batch.
// The body is the environment's RL2_HD reset/step/observe (include/rl2/env/*.hpp), shared with the
// CPU loop in src/cpu/env_batch_cpu.cpp. Environments with a per-column renderer (the maze) leave the
// observation to the render kernel of launch.cuh: a block of kRenderTrials x W threads, one trial per row of the
// block and one column (ray) per thread, calling the render_column that the CPU's observe() loops
// over. Built with -fmad=false and IEEE division/sqrt (no fast math) so every float matches the CPU
// bit for bit (tests/gpu_env_parity.cpp).
#include "env_step.cuh"
#include "launch.cuh"
#include "rl2/env/bandit.hpp"
#include "rl2/env/maze.hpp"
#include "rl2/env/tabular_mdp.hpp"
#include "cuda/cuda_check.hpp"

namespace rl2 {
namespace {

using kern::blocks_for;
using kern::kThreads;

template <class Env>
__global__ void env_reset_kernel(const EnvKernelArgs<Env> a) {
  const int64_t task_size = Env::task_size(a.params);
  const int64_t obs_size = Env::obs_size(a.params);
  RL2_GRID_STRIDE(i, a.trials) {
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
  RL2_GRID_STRIDE(i, a.trials) {
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
  RL2_GRID_STRIDE(i, a.trials)
    Env::observe(a.params, a.tasks + i * task_size, a.states[i], a.obs + i * obs_size);
}

template <class Env>
void launch_render(const EnvKernelArgs<Env>& args, cudaStream_t stream) {
  if constexpr (ColumnRendered<Env>) {
    kern::launch_render_rows<Env>(args.params, args.trials, args.tasks, args.states, args.obs, Env::obs_size(args.params),
                                  stream);
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
