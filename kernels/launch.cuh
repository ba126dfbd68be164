// What the kernel files share: the block size, a grid for a grid-stride loop over n items (and the loop),
// and the per-column render of environments that draw their view one column per thread (the maze), into
// rows of any stride: the environment batch's observations (env_step.cu) or the rollout's inputs, whose
// image part starts each row (rollout.cu).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/cuda_check.hpp"
#include "rl2/env/env.hpp"  // ColumnRendered

#define RL2_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); i += int64_t{gridDim.x} * blockDim.x)

namespace rl2::kern {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535 * 32;
constexpr int kRenderTrials = 8;  // trials per block of the render kernel (kWidth threads each)

// Blocks of per_block threads for a grid-stride loop over n items: at least 1, at most kMaxBlocks.
inline int blocks_for(int64_t n, int per_block = kThreads) {
  const int64_t b = (n + per_block - 1) / per_block;
  return static_cast<int>(b < 1 ? 1 : b < kMaxBlocks ? b : kMaxBlocks);
}

// threadIdx.x: the column; threadIdx.y: the trial within the block. Trial i's view goes to
// out + i * row_stride, from its task and current state.
template <class Env>
__global__ void render_rows_kernel(const typename Env::Params p, int64_t trials, const float* tasks,
                                   const typename Env::State* states, float* out, int64_t row_stride) {
  const int64_t task_size = Env::task_size(p);
  for (int64_t i = blockIdx.x * int64_t{blockDim.y} + threadIdx.y; i < trials; i += int64_t{gridDim.x} * blockDim.y)
    Env::render_column(p, tasks + i * task_size, states[i], static_cast<int32_t>(threadIdx.x), out + i * row_stride);
}

template <class Env>
  requires ColumnRendered<Env>
void launch_render_rows(const typename Env::Params& p, int64_t trials, const float* tasks,
                        const typename Env::State* states, float* out, int64_t row_stride, cudaStream_t stream) {
  render_rows_kernel<Env><<<blocks_for(trials, kRenderTrials), dim3(Env::kWidth, kRenderTrials), 0, stream>>>(
      p, trials, tasks, states, out, row_stride);
  RL2_CUDA_CHECK(cudaGetLastError());
}

}  // namespace rl2::kern
