// Launchers of the step ops (include/rl2/train/step_ops.hpp, env/env_ops.hpp, policy/rollout_ops.hpp) and of
// the reductions on a stream: the whole of the CUDA backend's custom arithmetic (the rest is cuBLAS and
// cuDNN). Plain C++ (compiles with g++).
//   step ops     one generic grid-stride kernel per op type; the body is the op's RL2_HD operator(), which
//                the CPU backend runs too
//   reductions   two stages: <= kReduceBlocks blocks x 256 threads per group, grid-stride, double
//                accumulation, a shared-memory tree per block, then one block per group over its partials;
//                the launch shape depends on n alone, so every sum is the same run to run
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "rl2/policy/rollout_ops.hpp"
#include "rl2/train/step_ops.hpp"

namespace rl2 {

#define RL2_DECLARE_LAUNCH(Op) void launch(const ops::Op& op, cudaStream_t stream);
RL2_STEP_OPS(RL2_DECLARE_LAUNCH)
RL2_ROLLOUT_OPS(RL2_DECLARE_LAUNCH)
#undef RL2_DECLARE_LAUNCH

constexpr int kReduceBlocks = 1024;  // partials per group (doubles)

enum class ReduceOp : int32_t {
  kSumF64,         // sum xd[i]
  kMaxF64,         // max xd[i] (NaN propagates)
  kSumF32,         // sum double(xf[i])
  kDotF32,         // sum double(xf[i]) * yf[i]
  kSqDevF32,       // sum (double(xf[i]) - mean)^2
  kSqDevF64,       // sum (xd[i] - mean)^2
  kMaxAbsDiffF32,  // max |double(xf[i]) - yf[i]| (NaN propagates)
  kNonFiniteF32,   // count of non-finite xf[i]
};

// Group g (of `groups`, at most 65535) reduces the n elements e = (i / inner) stride + g inner + i % inner,
// i < n: one group, stride 1, inner 1: a plain reduction; groups = stride = cols, inner 1: the column sums of
// a row-major [n, cols] matrix (a head's bias gradient); rows of `stride` floats holding `groups` channels
// of `inner` values, n = rows inner: per-channel sums (a conv layer's bias gradient). Element e takes part
// only when mask[e / mask_width] != 0 (mask nullptr: every element).
struct ReduceArgs {
  ReduceOp op;
  int64_t n;
  const double* xd = nullptr;
  const float* xf = nullptr;
  const float* yf = nullptr;
  double mean = 0.0;
  const float* mask = nullptr;
  int64_t mask_width = 1;
  int32_t groups = 1;
  int64_t stride = 1;
  int64_t inner = 1;
  double* partials = nullptr;  // [groups * kReduceBlocks] scratch
  double* out = nullptr;       // [groups] results (0 for an empty sum, -inf for an empty max), or
  float* out_f = nullptr;      // [groups] results rounded to float
  bool accumulate = false;     // out_f[g] = float(double(out_f[g]) + result) (a gradient that accumulates)
};
void launch_reduce(const ReduceArgs& a, cudaStream_t stream);

}  // namespace rl2
