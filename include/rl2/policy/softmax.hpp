// Softmax policy head helpers shared by rollouts (CPU loop, CUDA kernel) and training.
#pragma once

#include <cmath>
#include <cstdint>

#include "rl2/core/hd.hpp"

namespace rl2 {

// p = softmax(logits) over A actions, computed stably; returns log of the normaliser (logsumexp).
RL2_HD inline float softmax(const float* logits, int32_t A, float* p) {
  float m = logits[0];
  for (int32_t a = 1; a < A; ++a) m = logits[a] > m ? logits[a] : m;
  float sum = 0.0f;
  for (int32_t a = 0; a < A; ++a) {
    p[a] = expf(logits[a] - m);
    sum += p[a];
  }
  const float inv = 1.0f / sum;
  for (int32_t a = 0; a < A; ++a) p[a] *= inv;
  return m + logf(sum);
}

// H(p) = -sum_a p_a log p_a, in double (terms with p_a = 0 contribute 0).
RL2_HD inline double entropy(const float* p, int32_t A) {
  double h = 0.0;
  for (int32_t a = 0; a < A; ++a)
    if (p[a] > 0.0f) h -= static_cast<double>(p[a]) * log(static_cast<double>(p[a]));
  return h;
}

// The logits gradient of one step's policy objective w A-weighted log-likelihood plus an entropy bonus:
// d_logits[a] = scale * (w (onehot(act)_a - p_a) + beta dH/dlogit_a), dH/dlogit_a = -p_a (log p_a + H).
// w is the step's weight (ratio times advantage for TRPO's surrogate, 0 for a clipped PPO step).
// Returns H(p). Shared by the CPU objective and the CUDA kernels.
RL2_HD inline double policy_logits_grad(const float* p, int32_t A, int32_t act, double w, double beta, double scale,
                                        float* d_logits) {
  const double h = entropy(p, A);
  for (int32_t a = 0; a < A; ++a) {
    const double dh = p[a] > 0.0f ? -p[a] * (log(static_cast<double>(p[a])) + h) : 0.0;
    d_logits[a] = static_cast<float>((w * ((a == act ? 1.0 : 0.0) - p[a]) + beta * dh) * scale);
  }
  return h;
}

// KL(pi_old || pi) of one step, pi given by its logits and their log-sum-exp lse (terms with pi_old = 0
// contribute 0). Shared by the CPU objective and the CUDA kernels.
RL2_HD inline double kl_from_logits(const float* probs_old, const float* logits, double lse, int32_t A) {
  double s = 0.0;
  for (int32_t a = 0; a < A; ++a) {
    const double po = probs_old[a];
    if (po > 0.0) s += po * (log(po) - (logits[a] - lse));
  }
  return s;
}

// The line search's per-step values from the logits: returns KL(pi_old || pi) and sets *term to the
// surrogate's step term ratio * adv + beta H(pi), all in double (log-sum-exp in double too).
RL2_HD inline double surrogate_kl_step(const float* logits, const float* probs_old, int32_t A, int32_t act,
                                       float logp_old, float adv, double beta, double* term) {
  float mx = logits[0];
  for (int32_t a = 1; a < A; ++a) mx = mx < logits[a] ? logits[a] : mx;
  double z = 0.0;
  for (int32_t a = 0; a < A; ++a) z += exp(static_cast<double>(logits[a] - mx));
  const double lse = mx + log(z);
  double h = 0.0;
  for (int32_t a = 0; a < A; ++a) {
    const double logp = logits[a] - lse;
    h -= exp(logp) * logp;
  }
  *term = exp(logits[act] - lse - logp_old) * adv + beta * h;
  return kl_from_logits(probs_old, logits, lse, A);
}

// Inverse-CDF draw from p with a uniform u in [0, 1); the last action absorbs rounding.
RL2_HD inline int32_t sample_categorical(const float* p, int32_t A, float u) {
  float cum = 0.0f;
  for (int32_t a = 0; a < A - 1; ++a) {
    cum += p[a];
    if (u < cum) return a;
  }
  return A - 1;
}

}  // namespace rl2
