// Training kernels of the CUDA learner (launchers and parallel layouts in train.cuh). The per-step and
// per-trial bodies are the CPU learner's own RL2_HD functions (softmax.hpp, ppo.hpp, gae.hpp) or the same
// double-precision expressions written in the same order (learner_cpu.cpp, policy_objective.cpp,
// adam.hpp), so on identical inputs a kernel computes the CPU's numbers; the references are those CPU
// functions and tests/gpu_learner_parity.cpp checks the kernels against them.
#include <cmath>

#include "cuda/cuda_check.hpp"
#include "launch.cuh"
#include "rl2/algo/gae.hpp"
#include "rl2/algo/ppo.hpp"
#include "rl2/policy/softmax.hpp"
#include "train.cuh"

namespace rl2 {
namespace {

using kern::blocks_for;
using kern::kThreads;

// ---- reductions ---------------------------------------------------------------------------------------
__device__ __forceinline__ bool is_max_op(ReduceOp op) { return op == ReduceOp::kMaxF64 || op == ReduceOp::kMaxAbsDiffF32; }

__device__ __forceinline__ bool inactive(const float* mask, int64_t k) { return mask != nullptr && mask[k] == 0.0f; }

__device__ __forceinline__ double reduce_load(const ReduceArgs& a, int64_t i) {
  if (a.mask != nullptr && a.mask[i / a.mask_width] == 0.0f) return is_max_op(a.op) ? -INFINITY : 0.0;  // identity
  switch (a.op) {
    case ReduceOp::kSumF64:
    case ReduceOp::kMaxF64:
      return a.xd[i];
    case ReduceOp::kSumF32:
      return static_cast<double>(a.xf[i]);
    case ReduceOp::kDotF32:
      return static_cast<double>(a.xf[i]) * a.yf[i];
    case ReduceOp::kSqDevF32: {
      const double d = static_cast<double>(a.xf[i]) - a.mean;
      return d * d;
    }
    case ReduceOp::kSqDevF64: {
      const double d = a.xd[i] - a.mean;
      return d * d;
    }
    case ReduceOp::kMaxAbsDiffF32:
      return fabs(static_cast<double>(a.xf[i]) - a.yf[i]);
    case ReduceOp::kNonFiniteF32:
    default:
      return isfinite(a.xf[i]) ? 0.0 : 1.0;
  }
}

// max that propagates NaN (a non-finite FVP probe must be seen); sum propagates it by itself.
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

__global__ void reduce_stage1_kernel(const ReduceArgs a) {
  const bool mx = is_max_op(a.op);
  double acc = mx ? -INFINITY : 0.0;
  RL2_GRID_STRIDE(i, a.n) acc = reduce_combine(mx, acc, reduce_load(a, i));
  const double total = block_reduce(mx, acc);
  if (threadIdx.x == 0) a.partials[blockIdx.x] = total;
}

__global__ void reduce_stage2_kernel(const ReduceArgs a, int count) {
  const bool mx = is_max_op(a.op);
  double acc = mx ? -INFINITY : 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) acc = reduce_combine(mx, acc, a.partials[i]);
  const double total = block_reduce(mx, acc);
  if (threadIdx.x == 0) *a.out = total;
}

// ---- vector ops ---------------------------------------------------------------------------------------
__global__ void axpy_kernel(const AxpyArgs a) {
  RL2_GRID_STRIDE(i, a.n) a.y[i] = static_cast<float>(a.y[i] + a.a * a.x[i]);
}

__global__ void xpby_kernel(const XpbyArgs a) {
  RL2_GRID_STRIDE(i, a.n) a.y[i] = static_cast<float>(a.x[i] + a.b * a.y[i]);
}

__global__ void fill_kernel(const FillArgs a) {
  RL2_GRID_STRIDE(i, a.n) a.x[i] = a.value;
}

__global__ void scatter_kernel(const ScatterArgs a) {
  RL2_GRID_STRIDE(i, a.n) a.dst[a.index[i]] = a.src[i];
}

__global__ void gather_kernel(const GatherArgs a) {
  RL2_GRID_STRIDE(i, a.n) a.dst[i] = a.src[a.index[i]];
}

// One thread per element of dst [T, n, width].
__global__ void gather_trials_kernel(const GatherTrialsArgs a) {
  RL2_GRID_STRIDE(e, a.T * a.n * a.width) {
    const int64_t k = e / a.width, c = e - k * a.width;  // k: step (t, j) of the minibatch
    const int64_t row = (k / a.n) * a.N + a.ids[k % a.n];
    a.dst[e] = a.src[row * a.width + c];
  }
}

__global__ void add_bias_kernel(const AddBiasArgs a) {
  RL2_GRID_STRIDE(e, a.rows * a.cols) a.out[e] += a.bias[e % a.cols];
}

// One block per column.
__global__ void column_sums_kernel(const ColumnSumsArgs a) {
  const int32_t c = blockIdx.x;
  double acc = 0.0;
  for (int64_t r = threadIdx.x; r < a.rows; r += blockDim.x) acc += static_cast<double>(a.in[r * a.cols + c]);
  const double total = block_reduce(false, acc);
  if (threadIdx.x == 0) a.out[c] = static_cast<float>(total);
}

// ---- per-step policy terms ------------------------------------------------------------------------------
__global__ void surrogate_steps_kernel(const SurrogateStepArgs a) {
  RL2_GRID_STRIDE(k, a.steps) {
    const float* lg = a.logits + k * a.A;
    float* p = a.probs + k * a.A;
    const float lse = softmax(lg, a.A, p);
    if (inactive(a.mask, k)) {
      a.gap[k] = a.terms[k] = 0.0;
      for (int32_t j = 0; j < a.A; ++j) a.d_logits[k * a.A + j] = 0.0f;
      continue;
    }
    const int32_t act = a.actions[k];
    const double log_ratio = static_cast<double>(lg[act] - lse) - a.logp_old[k];
    a.gap[k] = fabs(log_ratio);
    const double w = exp(log_ratio) * a.adv[k];
    const double h = policy_logits_grad(p, a.A, act, w, a.beta, a.inv_m, a.d_logits + k * a.A);
    a.terms[k] = w + a.beta * h;
  }
}

__global__ void surrogate_kl_kernel(const SurrogateKlArgs a) {
  RL2_GRID_STRIDE(k, a.steps) {
    if (inactive(a.mask, k)) {
      a.terms[k] = a.kl[k] = 0.0;
      continue;
    }
    a.kl[k] = surrogate_kl_step(a.logits + k * a.A, a.probs_old + k * a.A, a.A, a.actions[k], a.logp_old[k], a.adv[k],
                                a.beta, &a.terms[k]);
  }
}

__global__ void kl_grad_kernel(const KlGradArgs a) {
  RL2_GRID_STRIDE(k, a.steps) {
    float* d = a.d_logits + k * a.A;
    if (inactive(a.mask, k)) {
      for (int32_t j = 0; j < a.A; ++j) d[j] = 0.0f;
      continue;
    }
    softmax(a.logits + k * a.A, a.A, d);  // p, then (p - p_ref) scale in place
    for (int32_t j = 0; j < a.A; ++j)
      d[j] = static_cast<float>((static_cast<double>(d[j]) - a.p_ref[k * a.A + j]) * a.scale);
  }
}

__global__ void surrogate_old_kernel(const SurrogateOldArgs a) {
  RL2_GRID_STRIDE(k, a.steps) {
    a.terms[k] = inactive(a.mask, k) ? 0.0 : a.adv[k] + a.beta * entropy(a.probs_old + k * a.A, a.A);
  }
}

__global__ void ppo_steps_kernel(const PpoStepArgs a) {
  RL2_GRID_STRIDE(k, a.T * a.n) {
    const int64_t src = (k / a.n) * a.N + a.ids[k % a.n];
    if (inactive(a.mask, src)) {
      a.terms[k] = a.kl[k] = a.gap[k] = 0.0;
      for (int32_t j = 0; j < a.A; ++j) a.d_logits[k * a.A + j] = 0.0f;
      continue;
    }
    const float* lg = a.logits + k * a.A;
    float* p = a.probs + k * a.A;
    const float lse = softmax(lg, a.A, p);
    const int32_t act = a.actions[src];
    const double log_ratio = static_cast<double>(lg[act] - lse) - a.logp_old[src];
    a.kl[k] = kl_from_logits(a.probs_old + src * a.A, lg, lse, a.A);
    a.gap[k] = fabs(log_ratio);
    a.terms[k] = ppo_step_grad(p, a.A, act, log_ratio, a.adv[src], a.clip, a.beta, a.scale, a.d_logits + k * a.A);
  }
}

// ---- advantages ---------------------------------------------------------------------------------------
__global__ void values_kernel(const ValuesArgs a) {
  RL2_GRID_STRIDE(k, a.n) a.values[k] = inactive(a.mask, k) ? 0.0f : static_cast<float>(a.raw[k] * a.stddev + a.mean);
}

__global__ void gae_kernel(const GaeArgs a) {
  RL2_GRID_STRIDE(i, a.N)
  gae_trial<double>(a.T, a.N, a.rewards + i, a.values + i, a.gamma, a.lambda, a.adv + i, a.returns + i);
}

__global__ void residual_kernel(const ResidualArgs a) {
  RL2_GRID_STRIDE(k, a.n) a.out[k] = static_cast<double>(a.returns[k]) - a.values[k];
}

__global__ void standardise_kernel(const StandardiseArgs a) {
  RL2_GRID_STRIDE(k, a.n) a.adv[k] = inactive(a.mask, k) ? 0.0f : static_cast<float>((a.adv[k] - a.mean) / (a.sd + 1e-8));
}

__global__ void entropy_kernel(const EntropyArgs a) {
  RL2_GRID_STRIDE(k, a.steps) a.out[k] = inactive(a.mask, k) ? 0.0 : entropy(a.probs + k * a.A, a.A);
}

__global__ void totals_kernel(const TotalsArgs a) {
  RL2_GRID_STRIDE(i, a.N) {
    double s = 0.0;
    for (int64_t t = 0; t < a.T; ++t) s += a.rewards[t * a.N + i];
    a.totals[i] = s;
  }
}

__global__ void baseline_loss_kernel(const BaselineLossArgs a) {
  RL2_GRID_STRIDE(k, a.T * a.n) {
    const int64_t src = (k / a.n) * a.N + a.ids[k % a.n];
    const float target = static_cast<float>((a.returns[src] - a.mean) / a.stddev);
    const double e = inactive(a.mask, src) ? 0.0 : static_cast<double>(a.pred[k]) - target;
    a.sq[k] = e * e;
    a.d_out[k] = static_cast<float>(a.scale * e);
  }
}

__global__ void adam_kernel(const AdamArgs a) {
  constexpr double kB1 = 0.9, kB2 = 0.999, kEps = 1e-8;  // adam.hpp's constants
  RL2_GRID_STRIDE(i, a.n) {
    a.m[i] = static_cast<float>(kB1 * a.m[i] + (1 - kB1) * a.grad[i]);
    a.v[i] = static_cast<float>(kB2 * a.v[i] + (1 - kB2) * static_cast<double>(a.grad[i]) * a.grad[i]);
    a.params[i] -= static_cast<float>(a.lr * (a.m[i] / a.c1) / (sqrt(a.v[i] / a.c2) + kEps));
  }
}

}  // namespace

void launch_reduce(const ReduceArgs& a, cudaStream_t stream) {
  const int64_t want = (a.n + kThreads - 1) / kThreads;
  const int blocks = static_cast<int>(want < 1 ? 1 : want < kReduceBlocks ? want : kReduceBlocks);
  reduce_stage1_kernel<<<blocks, kThreads, 0, stream>>>(a);
  RL2_CUDA_CHECK(cudaGetLastError());
  reduce_stage2_kernel<<<1, kThreads, 0, stream>>>(a, blocks);
  RL2_CUDA_CHECK(cudaGetLastError());
}

namespace {

// One thread per element (grid-stride), for the kernels above whose work is `count` independent items.
template <class Args>
void launch_1d(void (*kernel)(Args), int64_t count, const Args& a, cudaStream_t stream) {
  if (count <= 0) return;
  kernel<<<blocks_for(count), kThreads, 0, stream>>>(a);
  RL2_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void launch_axpy(const AxpyArgs& a, cudaStream_t s) { launch_1d(axpy_kernel, a.n, a, s); }
void launch_xpby(const XpbyArgs& a, cudaStream_t s) { launch_1d(xpby_kernel, a.n, a, s); }
void launch_fill(const FillArgs& a, cudaStream_t s) { launch_1d(fill_kernel, a.n, a, s); }
void launch_scatter(const ScatterArgs& a, cudaStream_t s) { launch_1d(scatter_kernel, a.n, a, s); }
void launch_gather(const GatherArgs& a, cudaStream_t s) { launch_1d(gather_kernel, a.n, a, s); }
void launch_gather_trials(const GatherTrialsArgs& a, cudaStream_t s) {
  launch_1d(gather_trials_kernel, a.T * a.n * a.width, a, s);
}
void launch_add_bias(const AddBiasArgs& a, cudaStream_t s) { launch_1d(add_bias_kernel, a.rows * a.cols, a, s); }
void launch_surrogate_steps(const SurrogateStepArgs& a, cudaStream_t s) { launch_1d(surrogate_steps_kernel, a.steps, a, s); }
void launch_surrogate_kl(const SurrogateKlArgs& a, cudaStream_t s) { launch_1d(surrogate_kl_kernel, a.steps, a, s); }
void launch_kl_grad(const KlGradArgs& a, cudaStream_t s) { launch_1d(kl_grad_kernel, a.steps, a, s); }
void launch_surrogate_old(const SurrogateOldArgs& a, cudaStream_t s) { launch_1d(surrogate_old_kernel, a.steps, a, s); }
void launch_ppo_steps(const PpoStepArgs& a, cudaStream_t s) { launch_1d(ppo_steps_kernel, a.T * a.n, a, s); }
void launch_values(const ValuesArgs& a, cudaStream_t s) { launch_1d(values_kernel, a.n, a, s); }
void launch_gae(const GaeArgs& a, cudaStream_t s) { launch_1d(gae_kernel, a.N, a, s); }
void launch_residual(const ResidualArgs& a, cudaStream_t s) { launch_1d(residual_kernel, a.n, a, s); }
void launch_standardise(const StandardiseArgs& a, cudaStream_t s) { launch_1d(standardise_kernel, a.n, a, s); }
void launch_entropy(const EntropyArgs& a, cudaStream_t s) { launch_1d(entropy_kernel, a.steps, a, s); }
void launch_totals(const TotalsArgs& a, cudaStream_t s) { launch_1d(totals_kernel, a.N, a, s); }
void launch_baseline_loss(const BaselineLossArgs& a, cudaStream_t s) { launch_1d(baseline_loss_kernel, a.T * a.n, a, s); }
void launch_adam(const AdamArgs& a, cudaStream_t s) { launch_1d(adam_kernel, a.n, a, s); }

void launch_column_sums(const ColumnSumsArgs& a, cudaStream_t stream) {
  if (a.cols <= 0) return;
  column_sums_kernel<<<a.cols, kThreads, 0, stream>>>(a);
  RL2_CUDA_CHECK(cudaGetLastError());
}

}  // namespace rl2
