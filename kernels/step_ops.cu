// The step ops' generic kernel and the two-stage reductions (step_ops.cuh). Built with -fmad=false and IEEE
// division and sqrt like every rl2_cuda kernel, so an op rounds as the CPU backend's does: the environments'
// steps and views match the CPU bit for bit (tests/gpu_env_parity.cpp), as do the training ops' double sums.
#include <cmath>

#include "launch.cuh"
#include "step_ops.cuh"

namespace rl2 {
namespace {

using kern::blocks_for;
using kern::kThreads;

template <class Op>
__global__ void apply_kernel(const Op op, int64_t n) {
  RL2_GRID_STRIDE(k, n) op(k);
}

__device__ __forceinline__ bool is_max_op(ReduceOp op) { return op == ReduceOp::kMaxF64 || op == ReduceOp::kMaxAbsDiffF32; }

__device__ __forceinline__ double reduce_load(const ReduceArgs& a, int64_t e) {
  if (a.mask != nullptr && a.mask[e / a.mask_width] == 0.0f) return is_max_op(a.op) ? -INFINITY : 0.0;  // identity
  switch (a.op) {
    case ReduceOp::kSumF64:
    case ReduceOp::kMaxF64:
      return a.xd[e];
    case ReduceOp::kSumF32:
      return static_cast<double>(a.xf[e]);
    case ReduceOp::kDotF32:
      return static_cast<double>(a.xf[e]) * a.yf[e];
    case ReduceOp::kSqDevF32: {
      const double d = static_cast<double>(a.xf[e]) - a.mean;
      return d * d;
    }
    case ReduceOp::kSqDevF64: {
      const double d = a.xd[e] - a.mean;
      return d * d;
    }
    case ReduceOp::kMaxAbsDiffF32:
      return fabs(static_cast<double>(a.xf[e]) - a.yf[e]);
    case ReduceOp::kNonFiniteF32:
    default:
      return isfinite(a.xf[e]) ? 0.0 : 1.0;
  }
}

// max that propagates NaN (a non-finite probe must be seen); sum propagates it by itself.
__device__ __forceinline__ double reduce_combine(bool mx, double x, double y) {
  if (!mx) return x + y;
  if (isnan(x) || isnan(y)) return nan("");
  return x > y ? x : y;
}

__device__ double block_reduce(bool mx, double v) {
  __shared__ double sh[kThreads];
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (static_cast<int>(threadIdx.x) < s) sh[threadIdx.x] = reduce_combine(mx, sh[threadIdx.x], sh[threadIdx.x + s]);
    __syncthreads();
  }
  return sh[0];
}

// Grid (blocks, groups): block b of group g reduces its grid-stride share of the group's n elements.
__global__ void reduce_stage1_kernel(const ReduceArgs a) {
  const bool mx = is_max_op(a.op);
  const int64_t g = blockIdx.y;
  double acc = mx ? -INFINITY : 0.0;
  RL2_GRID_STRIDE(i, a.n) acc = reduce_combine(mx, acc, reduce_load(a, (i / a.inner) * a.stride + g * a.inner + i % a.inner));
  const double total = block_reduce(mx, acc);
  if (threadIdx.x == 0) a.partials[g * kReduceBlocks + blockIdx.x] = total;
}

// One block per group over its `count` partials.
__global__ void reduce_stage2_kernel(const ReduceArgs a, int count) {
  const bool mx = is_max_op(a.op);
  const int64_t g = blockIdx.x;
  double acc = mx ? -INFINITY : 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) acc = reduce_combine(mx, acc, a.partials[g * kReduceBlocks + i]);
  const double total = block_reduce(mx, acc);
  if (threadIdx.x != 0) return;
  if (a.out_f != nullptr)
    a.out_f[g] = static_cast<float>(a.accumulate ? static_cast<double>(a.out_f[g]) + total : total);
  else
    a.out[g] = total;
}

}  // namespace

#define RL2_DEFINE_LAUNCH(Op)                                      \
  void launch(const ops::Op& op, cudaStream_t stream) {           \
    const int64_t n = op.count();                                  \
    if (n <= 0) return;                                            \
    apply_kernel<<<blocks_for(n), kThreads, 0, stream>>>(op, n);   \
    RL2_CUDA_CHECK(cudaGetLastError());                            \
  }
RL2_STEP_OPS(RL2_DEFINE_LAUNCH)
RL2_ROLLOUT_OPS(RL2_DEFINE_LAUNCH)
#undef RL2_DEFINE_LAUNCH

void launch_reduce(const ReduceArgs& a, cudaStream_t stream) {
  if (a.groups <= 0) return;
  RL2_CHECK(a.groups <= 65535, "launch_reduce: more groups than a grid's y dimension holds");
  const int64_t want = (a.n + kThreads - 1) / kThreads;
  const int blocks = static_cast<int>(want < 1 ? 1 : want < kReduceBlocks ? want : kReduceBlocks);
  reduce_stage1_kernel<<<dim3(blocks, a.groups), kThreads, 0, stream>>>(a);
  RL2_CUDA_CHECK(cudaGetLastError());
  reduce_stage2_kernel<<<a.groups, kThreads, 0, stream>>>(a, blocks);
  RL2_CUDA_CHECK(cudaGetLastError());
}

}  // namespace rl2
