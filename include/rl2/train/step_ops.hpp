// The per-element arithmetic of training, written once (DESIGN.md section 8: one arithmetic). Each op is a
// plain struct of arguments with count() items and an RL2_HD body for item k; a backend runs the body for
// every k: the CPU backend in an OpenMP loop, the CUDA backend in one generic grid-stride kernel
// (kernels/step_ops.cu). So every custom kernel body is executed by the CPU tests, and a GPU test only has to
// check the launch (tests/gpu_backend_parity.cpp).
//
// Layouts are time-major: per-step arrays [T, N], logits and probabilities [T, N, A], inputs [T, N, I].
// mask [T, N] (nullptr: every step active): 1 while the trial had not finished before the step, 0 after;
// an inactive step gives 0 terms and 0 gradients. Arguments named "device" live in the backend's memory.
// Items write disjoint outputs, so the order in which a backend runs them changes no bit.
#pragma once

#include <cmath>
#include <cstdint>

#include "rl2/algo/gae.hpp"
#include "rl2/algo/ppo.hpp"
#include "rl2/core/hd.hpp"
#include "rl2/policy/softmax.hpp"

namespace rl2::ops {

RL2_HD_INLINE bool inactive(const float* mask, int64_t k) { return mask != nullptr && mask[k] == 0.0f; }

// ---- vector ops (double arithmetic, float storage) --------------------------------------------------------
struct Axpy {  // y = float(y + a x)
  int64_t n;
  double a;
  const float* x;
  float* y;
  int64_t count() const { return n; }
  RL2_HD void operator()(int64_t i) const { y[i] = static_cast<float>(y[i] + a * x[i]); }
};

struct Xpby {  // y = float(x + b y)
  int64_t n;
  const float* x;
  double b;
  float* y;
  int64_t count() const { return n; }
  RL2_HD void operator()(int64_t i) const { y[i] = static_cast<float>(x[i] + b * y[i]); }
};

struct Fill {  // x = value
  int64_t n;
  float value;
  float* x;
  int64_t count() const { return n; }
  RL2_HD void operator()(int64_t i) const { x[i] = value; }
};

// Adam (Kingma & Ba 2015) on one parameter, after the caller's finiteness check of the whole gradient:
// c1 = 1 - beta1^t, c2 = 1 - beta2^t of the step t being taken.
constexpr double kAdamBeta1 = 0.9, kAdamBeta2 = 0.999, kAdamEps = 1e-8;
struct Adam {
  int64_t n;
  float* params;
  const float* grad;
  float* m;
  float* v;
  double lr, c1, c2;
  int64_t count() const { return n; }
  RL2_HD void operator()(int64_t i) const {
    m[i] = static_cast<float>(kAdamBeta1 * m[i] + (1 - kAdamBeta1) * grad[i]);
    v[i] = static_cast<float>(kAdamBeta2 * v[i] + (1 - kAdamBeta2) * static_cast<double>(grad[i]) * grad[i]);
    params[i] -= static_cast<float>(lr * (m[i] / c1) / (sqrt(v[i] / c2) + kAdamEps));
  }
};

struct AddBias {  // out[r, c] += bias[c], out [rows, cols] (a linear head after its GEMM)
  int64_t rows;
  int32_t cols;
  const float* bias;
  float* out;
  int64_t count() const { return rows * cols; }
  RL2_HD void operator()(int64_t e) const { out[e] += bias[e % cols]; }
};

// The maze encoder's activation around cuDNN's convolutions and cuBLAS's FC GEMMs (encoder_ref.cpp's
// fill_channels + relu): a[r ld + c inner + q] = relu(a[...] + bias[c]) for r < rows, c < channels,
// q < inner; relu keeps NaN (v < 0 ? 0 : v). copy, when not null, gets the same values at the same indices.
struct BiasRelu {
  int64_t rows;
  int32_t channels;
  int64_t inner, ld;
  const float* bias;
  float* a;
  float* copy;
  int64_t count() const { return rows * channels * inner; }
  RL2_HD void operator()(int64_t e) const {
    const int64_t width = channels * inner, r = e / width, j = e - r * width, at = r * ld + j;
    const float v = a[at] + bias[j / inner];
    const float o = v < 0.0f ? 0.0f : v;
    a[at] = o;
    if (copy != nullptr) copy[at] = o;
  }
};

struct ReluMask {  // out[i] = post[i] > 0 ? grad[i] : 0 (relu'(0) = 0 on the post-activation value); out may be grad
  int64_t n;
  const float* post;
  const float* grad;
  float* out;
  int64_t count() const { return n; }
  RL2_HD void operator()(int64_t i) const { out[i] = post[i] > 0.0f ? grad[i] : 0.0f; }
};

struct Scatter {  // dst[index[k]] = src[k] (canonical parameters -> cuDNN's weight space)
  int64_t n;
  const float* src;
  const int64_t* index;
  float* dst;
  int64_t count() const { return n; }
  RL2_HD void operator()(int64_t k) const { dst[index[k]] = src[k]; }
};

struct Gather {  // dst[k] = src[index[k]]
  int64_t n;
  const float* src;
  const int64_t* index;
  float* dst;
  int64_t count() const { return n; }
  RL2_HD void operator()(int64_t k) const { dst[k] = src[index[k]]; }
};

// dst [T, n, width] = the rows of trials ids[0..n) of src [T, N, width] (a minibatch of whole trials). An
// item copies one span of up to kSpan consecutive floats of a row: few index divisions per float on the
// CPU (a maze row is 3605 floats), and consecutive spans for consecutive GPU threads.
template <class Real>
struct GatherTrials {
  static constexpr int64_t kSpan = 16;
  const Real* src;
  int64_t T, N, width;
  const int64_t* ids;  // [n] device
  int64_t n;
  Real* dst;
  RL2_HD int64_t spans() const { return (width + kSpan - 1) / kSpan; }
  int64_t count() const { return T * n * spans(); }
  RL2_HD void operator()(int64_t e) const {
    const int64_t per = spans(), k = e / per, begin = (e - k * per) * kSpan;  // k: step (t, j) of the minibatch
    const int64_t end = begin + kSpan < width ? begin + kSpan : width;
    const Real* from = src + ((k / n) * N + ids[k % n]) * width;
    for (int64_t c = begin; c < end; ++c) dst[k * width + c] = from[c];
  }
};
using GatherTrialsF = GatherTrials<float>;

// ---- the rollout's statistics and the advantages -----------------------------------------------------------
struct TrialTotals {  // totals[i] = sum_t double(rewards[t, i]), t in order
  int64_t T, N;
  const float* rewards;
  double* totals;
  int64_t count() const { return N; }
  RL2_HD void operator()(int64_t i) const {
    double s = 0.0;
    for (int64_t t = 0; t < T; ++t) s += rewards[t * N + i];
    totals[i] = s;
  }
};

struct Entropy {  // out[k] = H(probs[k]); 0 at inactive steps
  int64_t steps;
  int32_t A;
  const float* probs;
  double* out;
  const float* mask;
  int64_t count() const { return steps; }
  RL2_HD void operator()(int64_t k) const { out[k] = inactive(mask, k) ? 0.0 : entropy(probs + k * A, A); }
};

struct Values {  // values = float(raw * stddev + mean), the baseline's normalised output; 0 at inactive steps
  int64_t n;
  const float* raw;
  double mean, stddev;
  float* values;
  const float* mask;
  int64_t count() const { return n; }
  RL2_HD void operator()(int64_t k) const {
    values[k] = inactive(mask, k) ? 0.0f : static_cast<float>(raw[k] * stddev + mean);
  }
};

struct Gae {  // gae_trial<double> of trial i (gae.hpp); inactive steps carry reward 0 and value 0
  int64_t T, N;
  const float* rewards;
  const float* values;
  double gamma, lambda;
  float* adv;
  float* returns;
  int64_t count() const { return N; }
  RL2_HD void operator()(int64_t i) const {
    gae_trial<double>(T, N, rewards + i, values + i, gamma, lambda, adv + i, returns + i);
  }
};

struct Residual {  // out = double(returns) - values
  int64_t n;
  const float* returns;
  const float* values;
  double* out;
  int64_t count() const { return n; }
  RL2_HD void operator()(int64_t k) const { out[k] = static_cast<double>(returns[k]) - values[k]; }
};

struct Standardise {  // adv = float((adv - mean) / (sd + 1e-8)); 0 at inactive steps
  int64_t n;
  double mean, sd;
  float* adv;
  const float* mask;
  int64_t count() const { return n; }
  RL2_HD void operator()(int64_t k) const {
    adv[k] = inactive(mask, k) ? 0.0f : static_cast<float>((adv[k] - mean) / (sd + 1e-8));
  }
};

// The baseline's regression on a minibatch [T, n] of trials ids: target = float((returns[src] - mean) /
// stddev), e = double(pred) - target (0 at inactive steps), sq = e^2, d_out = float(scale e).
struct BaselineLoss {
  int64_t T, n, N;
  const int64_t* ids;  // [n] device
  const float* pred;   // [T, n]
  const float* returns;  // [T, N]
  double mean, stddev, scale;
  double* sq;    // [T, n]
  float* d_out;  // [T, n]
  const float* mask;  // [T, N] the batch's (read at src)
  int64_t count() const { return T * n; }
  RL2_HD void operator()(int64_t k) const {
    const int64_t src = (k / n) * N + ids[k % n];
    const float target = static_cast<float>((returns[src] - mean) / stddev);
    const double e = inactive(mask, src) ? 0.0 : static_cast<double>(pred[k]) - target;
    sq[k] = e * e;
    d_out[k] = static_cast<float>(scale * e);
  }
};

// ---- the policy's per-step terms ----------------------------------------------------------------------------
// TRPO's surrogate at theta_old: probs = softmax(logits) (also at inactive steps: the Fisher product's
// p_old), gap = |log rho|, terms = rho A + beta H, d_logits = policy_logits_grad(p, act, rho A, beta, inv_m).
struct SurrogateStep {
  int64_t steps;
  int32_t A;
  const float* logits;
  const int32_t* actions;
  const float* logp_old;
  const float* adv;
  double beta, inv_m;
  float* probs;
  float* d_logits;
  double* terms;
  double* gap;
  const float* mask;
  int64_t count() const { return steps; }
  RL2_HD void operator()(int64_t k) const {
    const float* lg = logits + k * A;
    float* p = probs + k * A;
    const float lse = softmax(lg, A, p);
    if (inactive(mask, k)) {
      gap[k] = terms[k] = 0.0;
      for (int32_t j = 0; j < A; ++j) d_logits[k * A + j] = 0.0f;
      return;
    }
    const int32_t act = actions[k];
    const double log_ratio = static_cast<double>(lg[act] - lse) - logp_old[k];
    gap[k] = fabs(log_ratio);
    const double w = exp(log_ratio) * adv[k];
    const double h = policy_logits_grad(p, A, act, w, beta, inv_m, d_logits + k * A);
    terms[k] = w + beta * h;
  }
};

// The line search's surrogate term and KL(pi_old || pi) per step.
struct SurrogateKlStep {
  int64_t steps;
  int32_t A;
  const float* logits;
  const int32_t* actions;
  const float* logp_old;
  const float* probs_old;
  const float* adv;
  double beta;
  double* terms;
  double* kl;
  const float* mask;
  int64_t count() const { return steps; }
  RL2_HD void operator()(int64_t k) const {
    if (inactive(mask, k)) {
      terms[k] = kl[k] = 0.0;
      return;
    }
    kl[k] = surrogate_kl_step(logits + k * A, probs_old + k * A, A, actions[k], logp_old[k], adv[k], beta, &terms[k]);
  }
};

// The exact Fisher product's middle factor: d_out = M u / m with M u = p (u - <p, u>), u = J v the logits'
// directional derivative, p = pi_old (the softmax Fisher; F = J^T M J at theta_old).
struct FisherStep {
  int64_t steps;
  int32_t A;
  const float* probs;
  const float* dlogits;
  double inv_m;
  float* d_out;
  const float* mask;
  int64_t count() const { return steps; }
  RL2_HD void operator()(int64_t k) const {
    if (inactive(mask, k)) {
      for (int32_t a = 0; a < A; ++a) d_out[k * A + a] = 0.0f;
      return;
    }
    const float* p = probs + k * A;
    const float* dl = dlogits + k * A;
    double s = 0.0;
    for (int32_t a = 0; a < A; ++a) s += static_cast<double>(p[a]) * dl[a];
    for (int32_t a = 0; a < A; ++a) d_out[k * A + a] = static_cast<float>(p[a] * (dl[a] - s) * inv_m);
  }
};

// The logits gradient of KL(p_ref || softmax(logits)) times scale: (softmax(l) - p_ref) scale (the
// finite-difference Fisher product's gradients).
struct KlGrad {
  int64_t steps;
  int32_t A;
  const float* logits;
  const float* p_ref;
  double scale;
  float* d_logits;
  const float* mask;
  int64_t count() const { return steps; }
  RL2_HD void operator()(int64_t k) const {
    float* d = d_logits + k * A;
    if (inactive(mask, k)) {
      for (int32_t j = 0; j < A; ++j) d[j] = 0.0f;
      return;
    }
    softmax(logits + k * A, A, d);  // p, then (p - p_ref) scale in place
    for (int32_t j = 0; j < A; ++j) d[j] = static_cast<float>((static_cast<double>(d[j]) - p_ref[k * A + j]) * scale);
  }
};

// PPO's surrogate at theta_old from the rollout's pi_old, without a forward pass: A + beta H(pi_old).
struct SurrogateOld {
  int64_t steps;
  int32_t A;
  const float* probs_old;
  const float* adv;
  double beta;
  double* terms;
  const float* mask;
  int64_t count() const { return steps; }
  RL2_HD void operator()(int64_t k) const {
    terms[k] = inactive(mask, k) ? 0.0 : adv[k] + beta * entropy(probs_old + k * A, A);
  }
};

// PPO's clipped terms on a minibatch [T, n] of trials ids: step k reads the batch's step
// src = (k / n) N + ids[k % n]; also its KL(pi_old || pi) (the KL guard) and |log rho| (the parity check).
struct PpoStep {
  int64_t T, n, N;
  int32_t A;
  const int64_t* ids;  // [n] device
  const float* logits;  // [T, n, A]
  const int32_t* actions;
  const float* logp_old;
  const float* probs_old;  // [T, N, A]
  const float* adv;
  double clip, beta, scale;
  float* probs;     // [T, n, A] scratch
  float* d_logits;  // [T, n, A]
  double* terms;
  double* kl;
  double* gap;
  const float* mask;  // [T, N] the batch's (read at src)
  int64_t count() const { return T * n; }
  RL2_HD void operator()(int64_t k) const {
    const int64_t src = (k / n) * N + ids[k % n];
    if (inactive(mask, src)) {
      terms[k] = kl[k] = gap[k] = 0.0;
      for (int32_t j = 0; j < A; ++j) d_logits[k * A + j] = 0.0f;
      return;
    }
    const float* lg = logits + k * A;
    float* p = probs + k * A;
    const float lse = softmax(lg, A, p);
    const int32_t act = actions[src];
    const double log_ratio = static_cast<double>(lg[act] - lse) - logp_old[src];
    kl[k] = kl_from_logits(probs_old + src * A, lg, lse, A);
    gap[k] = fabs(log_ratio);
    terms[k] = ppo_step_grad(p, A, act, log_ratio, adv[src], clip, beta, scale, d_logits + k * A);
  }
};

// Every op a backend runs; X(Op) for each (backend.hpp declares one run() per op from this list).
#define RL2_STEP_OPS(X)                                                                                         \
  X(Axpy) X(Xpby) X(Fill) X(Adam) X(AddBias) X(BiasRelu) X(ReluMask) X(Scatter) X(Gather) X(GatherTrialsF) X(TrialTotals) X(Entropy) X(Values) X(Gae) X(Residual) \
  X(Standardise) X(BaselineLoss) X(SurrogateStep) X(SurrogateKlStep) X(FisherStep) X(KlGrad) X(SurrogateOld) X(PpoStep)

}  // namespace rl2::ops
