// What the kernel files share: the block size and a grid for a grid-stride loop over n items (and the loop).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda_check.hpp"

#define RL2_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); i += int64_t{gridDim.x} * blockDim.x)

namespace rl2::kern {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535 * 32;

// Blocks of per_block threads for a grid-stride loop over n items: at least 1, at most kMaxBlocks.
inline int blocks_for(int64_t n, int per_block = kThreads) {
  const int64_t b = (n + per_block - 1) / per_block;
  return static_cast<int>(b < 1 ? 1 : b < kMaxBlocks ? b : kMaxBlocks);
}

}  // namespace rl2::kern
