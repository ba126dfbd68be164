// Launchers of the training kernels (kernels/train.cu) of the CUDA learner (src/cuda/learner_cuda.cpp):
// everything of an RL² iteration around cuDNN's GRU and cuBLAS's head GEMMs.
//   reductions            two stages: <= kReduceBlocks blocks x 256 threads, grid-stride, double
//                         accumulation, a shared-memory tree per block, then one block over the partials;
//                         a fixed launch shape per n, so every sum is reproducible run to run
//   vector ops            one thread per element (axpy, xpby, scatter/gather, Adam, bias add)
//   per-step terms        one thread per step (t, trial), a loop over the A actions: the CPU objective's
//                         own RL2_HD code (softmax, policy_logits_grad, ppo_step_grad)
//   GAE, trial totals     one thread per trial, a loop over t (gae_trial<double> of gae.hpp)
//   column sums           one block per column (the head bias gradient), double accumulation
// Layouts are time-major: x [T, N, I], per-step scalars [T, N], logits/probabilities [T, N, A].
// Finished steps (the maze): every per-step kernel takes the batch's mask [T, N] (1 active, 0 the trial
// had finished before the step; nullptr: every step active, the bandit and MDP case, which then runs the
// exact arithmetic it ran before masks existed) and writes 0 for an inactive step, as the CPU objective.
// Built with -fmad=false and IEEE division like every rl2_cuda kernel, so double arithmetic written the
// same way as the CPU's rounds the same way (GAE, Adam, axpy are bit-identical on identical inputs).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace rl2 {

// ---- reductions ---------------------------------------------------------------------------------------
constexpr int kReduceBlocks = 1024;  // partials buffer size (doubles)

enum class ReduceOp : int32_t {
  kSumF64,         // sum xd[i]
  kMaxF64,         // max xd[i]
  kSumF32,         // sum double(xf[i])
  kDotF32,         // sum double(xf[i]) * yf[i]
  kSqDevF32,       // sum (double(xf[i]) - mean)^2
  kSqDevF64,       // sum (xd[i] - mean)^2
  kMaxAbsDiffF32,  // max |double(xf[i]) - yf[i]|   (NaN propagates)
  kNonFiniteF32,   // count of non-finite xf[i]
};

struct ReduceArgs {
  ReduceOp op;
  int64_t n;
  const double* xd;
  const float* xf;
  const float* yf;
  double mean;
  double* partials;  // [kReduceBlocks] scratch
  double* out;       // [1] the result (0 for an empty sum, -inf for an empty max)
  // Element i takes part only when mask[i / mask_width] != 0 (nullptr: every element). Not for kNonFiniteF32.
  const float* mask = nullptr;
  int64_t mask_width = 1;
};
void launch_reduce(const ReduceArgs& a, cudaStream_t stream);

// ---- vector ops (double arithmetic, float storage, as CpuVecOps) -------------------------------------
struct AxpyArgs {  // y = float(y + a x)
  int64_t n;
  double a;
  const float* x;
  float* y;
};
void launch_axpy(const AxpyArgs& a, cudaStream_t stream);

struct XpbyArgs {  // y = float(x + b y)
  int64_t n;
  const float* x;
  double b;
  float* y;
};
void launch_xpby(const XpbyArgs& a, cudaStream_t stream);

struct FillArgs {  // x = value
  int64_t n;
  float value;
  float* x;
};
void launch_fill(const FillArgs& a, cudaStream_t stream);

struct ScatterArgs {  // dst[index[k]] = src[k]
  int64_t n;
  const float* src;
  const int64_t* index;
  float* dst;
};
void launch_scatter(const ScatterArgs& a, cudaStream_t stream);

struct GatherArgs {  // dst[k] = src[index[k]]
  int64_t n;
  const float* src;
  const int64_t* index;
  float* dst;
};
void launch_gather(const GatherArgs& a, cudaStream_t stream);

// dst [T, n, width] = the rows of trials ids[0..n) of src [T, N, width] (minibatch.hpp's gather_trials).
struct GatherTrialsArgs {
  const float* src;
  int64_t T, N, width;
  const int64_t* ids;  // [n] device
  int64_t n;
  float* dst;
};
void launch_gather_trials(const GatherTrialsArgs& a, cudaStream_t stream);

// ---- the linear head's pieces around cuBLAS --------------------------------------------------------------
struct AddBiasArgs {  // out[r, c] += bias[c], out [rows, cols]
  int64_t rows;
  int32_t cols;
  const float* bias;
  float* out;
};
void launch_add_bias(const AddBiasArgs& a, cudaStream_t stream);

struct ColumnSumsArgs {  // out[c] = float(sum_r double(in[r, c])), in [rows, cols]
  int64_t rows;
  int32_t cols;
  const float* in;
  float* out;
};
void launch_column_sums(const ColumnSumsArgs& a, cudaStream_t stream);

// ---- per-step policy terms (mask: see the top; inactive steps give 0 terms and 0 gradients) -------------
// TRPO surrogate at theta_old: probs = softmax(logits); gap = |log rho|; terms = rho A + beta H;
// d_logits = policy_logits_grad(p, act, rho A, beta, inv_m)  (CpuPolicyObjective::surrogate_grad).
// Inactive steps: probs as active ones (the Fisher product's p_old), d_logits, terms, gap = 0.
struct SurrogateStepArgs {
  int64_t steps;  // T * N
  int32_t A;
  const float* logits;  // [steps, A]
  const int32_t* actions;
  const float* logp_old;
  const float* adv;
  double beta, inv_m;
  float* probs;     // [steps, A] out
  float* d_logits;  // [steps, A] out
  double* terms;    // [steps] out
  double* gap;      // [steps] out
  const float* mask = nullptr;  // [steps]
};
void launch_surrogate_steps(const SurrogateStepArgs& a, cudaStream_t stream);

// The line search's surrogate and KL(pi_old || pi) per step (CpuPolicyObjective::surrogate_kl).
struct SurrogateKlArgs {
  int64_t steps;
  int32_t A;
  const float* logits;
  const int32_t* actions;
  const float* logp_old;
  const float* probs_old;  // [steps, A] the rollout's pi_old
  const float* adv;
  double beta;
  double* terms;  // [steps] out
  double* kl;     // [steps] out
  const float* mask = nullptr;  // [steps]
};
void launch_surrogate_kl(const SurrogateKlArgs& a, cudaStream_t stream);

// The gradient of KL(p_ref || softmax(logits)) w.r.t. the logits, times scale: (softmax(l) - p_ref) scale.
struct KlGradArgs {
  int64_t steps;
  int32_t A;
  const float* logits;
  const float* p_ref;  // [steps, A]
  double scale;
  float* d_logits;  // [steps, A] out
  const float* mask = nullptr;  // [steps]
};
void launch_kl_grad(const KlGradArgs& a, cudaStream_t stream);

// PPO's surrogate at theta_old without a forward pass: terms = A + beta H(pi_old) (surrogate_old).
struct SurrogateOldArgs {
  int64_t steps;
  int32_t A;
  const float* probs_old;
  const float* adv;
  double beta;
  double* terms;  // [steps] out
  const float* mask = nullptr;  // [steps]
};
void launch_surrogate_old(const SurrogateOldArgs& a, cudaStream_t stream);

// PPO's clipped terms on a minibatch of whole trials (CpuPolicyObjective::minibatch_grad): step k of the
// minibatch [T, n] reads the batch's step src = (k / n) N + ids[k % n]; also the step's KL(pi_old || pi)
// (the KL guard) and |log rho| (the rollout/training parity of the first minibatch).
struct PpoStepArgs {
  int64_t T, n, N;
  int32_t A;
  const int64_t* ids;   // [n] device
  const float* logits;  // [T, n, A]
  const int32_t* actions;
  const float* logp_old;
  const float* probs_old;  // [T, N, A]
  const float* adv;
  double clip, beta, scale;
  float* probs;     // [T, n, A] scratch
  float* d_logits;  // [T, n, A] out
  double* terms;    // [T, n] out
  double* kl;       // [T, n] out
  double* gap;      // [T, n] out
  const float* mask = nullptr;  // [T, N] the batch's (read at src)
};
void launch_ppo_steps(const PpoStepArgs& a, cudaStream_t stream);

// ---- advantages (learner_cpu.cpp's compute_advantages) ------------------------------------------------
struct ValuesArgs {  // values = float(raw * stddev + mean); 0 at inactive steps
  int64_t n;
  const float* raw;
  double mean, stddev;
  float* values;
  const float* mask = nullptr;  // [n]
};
void launch_values(const ValuesArgs& a, cudaStream_t stream);

struct GaeArgs {  // gae_trial<double> per trial
  int64_t T, N;
  const float* rewards;  // [T, N]
  const float* values;   // [T, N]
  double gamma, lambda;
  float* adv;      // [T, N] out
  float* returns;  // [T, N] out
};
void launch_gae(const GaeArgs& a, cudaStream_t stream);

struct ResidualArgs {  // out = double(returns) - values
  int64_t n;
  const float* returns;
  const float* values;
  double* out;
};
void launch_residual(const ResidualArgs& a, cudaStream_t stream);

struct StandardiseArgs {  // adv = float((adv - mean) / (sd + 1e-8)); 0 at inactive steps
  int64_t n;
  double mean, sd;
  float* adv;
  const float* mask = nullptr;  // [n]
};
void launch_standardise(const StandardiseArgs& a, cudaStream_t stream);

struct EntropyArgs {  // out[k] = entropy(probs[k]); 0 at inactive steps
  int64_t steps;
  int32_t A;
  const float* probs;
  double* out;
  const float* mask = nullptr;  // [steps]
};
void launch_entropy(const EntropyArgs& a, cudaStream_t stream);

struct TotalsArgs {  // totals[i] = sum_t double(rewards[t, i]), t in order
  int64_t T, N;
  const float* rewards;
  double* totals;
};
void launch_totals(const TotalsArgs& a, cudaStream_t stream);

// ---- the baseline's regression on a minibatch [T, n] (learner_cpu.cpp's fit_baseline) ------------------
// target = float((returns[src] - mean) / stddev); e = double(pred) - target (0 at inactive steps); sq = e^2;
// d_out = float(scale e).
struct BaselineLossArgs {
  int64_t T, n, N;
  const int64_t* ids;    // [n] device
  const float* pred;     // [T, n]
  const float* returns;  // [T, N]
  double mean, stddev, scale;
  double* sq;     // [T, n] out
  float* d_out;   // [T, n] out
  const float* mask = nullptr;  // [T, N] the batch's (read at src)
};
void launch_baseline_loss(const BaselineLossArgs& a, cudaStream_t stream);

// ---- Adam (adam.hpp's adam_step after its finiteness check) -------------------------------------------
struct AdamArgs {
  int64_t n;
  float* params;
  const float* grad;
  float* m;
  float* v;
  double lr, c1, c2;  // c1 = 1 - beta1^t, c2 = 1 - beta2^t
};
void launch_adam(const AdamArgs& a, cudaStream_t stream);

}  // namespace rl2
