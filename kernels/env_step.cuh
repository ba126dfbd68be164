// Launchers of the batched environment kernels (kernels/env_step.cu), instantiated for Bandit,
// TabularMdp and Maze. Layout: one thread per trial; the body is the env's RL2_HD reset/step/observe,
// the same code the CPU backend loops over. The maze's view is rendered by its own kernel, one thread
// per column (render_column), launched by the same launchers.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace rl2 {

template <class Env>
struct EnvKernelArgs {
  typename Env::Params params;
  int64_t trials;
  uint64_t seed;
  uint64_t first_trial;            // trial i of the batch is trial id first_trial + i
  float* tasks;                    // [trials, task_size]
  typename Env::State* states;     // [trials]
  float* obs;                      // [trials, obs_size]
  float* rewards;                  // [trials]
  uint8_t* dones;                  // [trials]
  const int32_t* actions;          // [trials] (step only)
  int32_t* error_flag;             // set to 1 when an action is out of range
};

template <class Env>
void launch_env_reset(const EnvKernelArgs<Env>& args, cudaStream_t stream);
template <class Env>
void launch_env_step(const EnvKernelArgs<Env>& args, cudaStream_t stream);
// Writes obs from the current states only (the maze: the render kernel alone; others: observe()).
template <class Env>
void launch_env_observe(const EnvKernelArgs<Env>& args, cudaStream_t stream);

}  // namespace rl2
