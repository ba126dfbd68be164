// CPU policy objective: surrogate and gradient, Fisher-vector product, surrogate and KL for the line
// search. Per-step terms are computed in parallel (OpenMP over the T*N steps; inactive steps give 0) and
// summed by trial chunks (core/chunks.hpp), so results do not depend on the thread count.
#include "cpu/policy_objective.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "rl2/core/check.hpp"
#include "rl2/core/chunks.hpp"

#include "rl2/algo/minibatch.hpp"
#include "rl2/algo/ppo.hpp"
#include "rl2/policy/softmax.hpp"

namespace rl2 {
double CpuVecOps::dot(const Vec& a, const Vec& b) const {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}
void CpuVecOps::axpy(double a, const Vec& x, Vec& y) const {
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(y[i] + a * x[i]);
}
void CpuVecOps::xpby(const Vec& x, double b, Vec& y) const {
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(x[i] + b * y[i]);
}
void CpuVecOps::fill_zero(Vec& v) const { std::fill(v.begin(), v.end(), 0.0f); }

CpuPolicyObjective::CpuPolicyObjective(const NetShape& shape, std::vector<float>& params, const PolicyBatch& batch,
                                       NetCache& old_cache, NetCache& cand_cache, std::vector<float>& probs,
                                       std::vector<float>& scratch_a, std::vector<float>& scratch_b,
                                       std::vector<double>& terms)
    : shape_(shape),
      params_(params),
      b_(batch),
      old_cache_(old_cache),
      cand_cache_(cand_cache),
      probs_(probs),
      logits_(scratch_a),
      d_out_(scratch_b),
      terms_(terms) {
  n = static_cast<int64_t>(params.size());
  const size_t m = static_cast<size_t>(b_.T * b_.N);
  probs_.resize(m * b_.A);
  logits_.resize(m * b_.A);
  d_out_.resize(m * b_.A);
  terms_.resize(m);
  active_ = chunked_sum(b_.T, b_.N, [&](int64_t t, int64_t i) { return active(t * b_.N + i) ? 1.0 : 0.0; });
}

// dL/dlogits_k = [ratio_k A_k (onehot(a_k) - p_k) - beta p_k (log p_k + H_k)] / M at active steps, 0 else.
double CpuPolicyObjective::surrogate_grad(Vec& grad) {
  const int64_t m = b_.T * b_.N, A = b_.A;
  net_forward(shape_, params_.data(), b_.x, b_.T, b_.N, old_cache_, logits_.data());
  const double inv_m = 1.0 / active_;
  std::vector<double> gap(static_cast<size_t>(m));
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < m; ++k) {
    float* p = &probs_[k * A];
    const float lse = softmax(&logits_[k * A], static_cast<int32_t>(A), p);
    if (!active(k)) {
      gap[k] = terms_[k] = 0.0;
      std::fill(&d_out_[k * A], &d_out_[k * A] + A, 0.0f);
      continue;
    }
    const int32_t act = b_.actions[k];
    const double log_ratio = static_cast<double>(logits_[k * A + act] - lse) - b_.logp_old[k];
    gap[k] = std::fabs(log_ratio);
    const double w = std::exp(log_ratio) * b_.adv[k];
    const double h = policy_logits_grad(p, static_cast<int32_t>(A), act, w, b_.entropy_coef, inv_m, &d_out_[k * A]);
    terms_[k] = w + b_.entropy_coef * h;
  }
  mismatch_ = *std::max_element(gap.begin(), gap.end());
  fill_zero(grad);
  net_backward(shape_, params_.data(), b_.x, b_.T, b_.N, old_cache_, d_out_.data(), grad.data());
  return chunked_sum_of(b_.T, b_.N, terms_.data()) * inv_m;
}

std::vector<int64_t> fvp_trials(int64_t N, double fraction) {
  const int64_t n = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(fraction * static_cast<double>(N))), 1, N);
  std::vector<int64_t> ids(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) ids[j] = j * N / n;
  return ids;
}

void CpuPolicyObjective::set_fvp_subsample(double fraction) {
  RL2_CHECK(fraction > 0.0 && fraction <= 1.0, "the Fisher-product subsample is a fraction in (0, 1]");
  fvp_fraction_ = fraction;
}

// The sub-batch of the Fisher product at theta_old, made on first use: its inputs, pi_old on the sequence
// path (gathered from surrogate_grad's probs), its mask, and a forward pass that fills its cache.
void CpuPolicyObjective::prepare_fvp() {
  const int64_t T = b_.T, N = b_.N, A = b_.A, I = shape_.input();
  const std::vector<int64_t> ids = fvp_trials(N, fvp_fraction_);
  const int64_t n = static_cast<int64_t>(ids.size());
  fvp_n_ = n;
  if (n == N) {
    fvp_active_ = active_;
    return;
  }
  sub_x_.resize(static_cast<size_t>(T * n * I));
  sub_probs_.resize(static_cast<size_t>(T * n * A));
  sub_mask_.assign(static_cast<size_t>(T * n), 1.0f);
  sub_logits_.resize(sub_probs_.size());
  sub_d_.resize(sub_probs_.size());
  gather_trials(b_.x, T, N, I, ids.data(), n, sub_x_.data());
  gather_trials(probs_.data(), T, N, A, ids.data(), n, sub_probs_.data());
  if (b_.mask != nullptr) gather_trials(b_.mask, T, N, 1, ids.data(), n, sub_mask_.data());
  fvp_active_ = chunked_sum_of(T, n, sub_mask_.data());
  net_forward(shape_, params_.data(), sub_x_.data(), T, n, sub_cache_, sub_logits_.data());
}

void CpuPolicyObjective::fvp(const Vec& v, Vec& out) {
  if (fvp_n_ == 0) prepare_fvp();
  const bool full = fvp_n_ == b_.N;
  const int64_t m = b_.T * fvp_n_, A = b_.A;
  const float* x = full ? b_.x : sub_x_.data();
  const float* probs = full ? probs_.data() : sub_probs_.data();
  const float* mask = full ? b_.mask : sub_mask_.data();
  NetCache& cache = full ? old_cache_ : sub_cache_;
  float* dlogits = full ? logits_.data() : sub_logits_.data();
  float* d_out = full ? d_out_.data() : sub_d_.data();
  net_jvp(shape_, params_.data(), x, b_.T, fvp_n_, cache, v.data(), dlogits);
  const double inv_m = 1.0 / fvp_active_;
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < m; ++k) {
    if (mask != nullptr && mask[k] == 0.0f) {
      std::fill(&d_out[k * A], &d_out[k * A] + A, 0.0f);
      continue;
    }
    const float* p = &probs[k * A];
    const float* dl = &dlogits[k * A];
    double s = 0.0;
    for (int64_t a = 0; a < A; ++a) s += static_cast<double>(p[a]) * dl[a];
    for (int64_t a = 0; a < A; ++a) d_out[k * A + a] = static_cast<float>(p[a] * (dl[a] - s) * inv_m);
  }
  fill_zero(out);
  net_backward(shape_, params_.data(), x, b_.T, fvp_n_, cache, d_out, out.data());
}

double CpuPolicyObjective::surrogate_old() const {
  const int64_t N = b_.N, A = b_.A;
  return chunked_sum(b_.T, N, [&](int64_t t, int64_t i) {
           const int64_t k = t * N + i;
           return active(k) ? b_.adv[k] + b_.entropy_coef * entropy(&b_.probs_old[k * A], static_cast<int32_t>(A))
                            : 0.0;
         }) /
         active_;
}

// The clipped objective on trials ids[0..n) (time-major gather of their steps) and its gradient.
double CpuPolicyObjective::minibatch_grad(const int64_t* ids, int64_t n, double clip, Vec& grad) {
  const int64_t T = b_.T, N = b_.N, A = b_.A, I = shape_.input(), m = T * n;
  mb_x_.resize(static_cast<size_t>(m * I));
  mb_logits_.resize(static_cast<size_t>(m * A));
  mb_d_.resize(mb_logits_.size());
  mb_p_.resize(mb_logits_.size());
  std::vector<double> terms(static_cast<size_t>(m)), kl(static_cast<size_t>(m)), gap(static_cast<size_t>(m));
  gather_trials(b_.x, T, N, I, ids, n, mb_x_.data());
  net_forward(shape_, params_.data(), mb_x_.data(), T, n, cand_cache_, mb_logits_.data());
  // Minibatch sums run over its own chunks (its trials in minibatch order), whatever the thread count.
  const double active_mb =
      chunked_sum(T, n, [&](int64_t t, int64_t i) { return active(t * N + ids[i]) ? 1.0 : 0.0; });
  const double scale = 1.0 / active_mb;
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < m; ++k) {
    const int64_t src = (k / n) * N + ids[k % n];
    if (!active(src)) {
      terms[k] = kl[k] = gap[k] = 0.0;
      std::fill(&mb_d_[k * A], &mb_d_[k * A] + A, 0.0f);
      continue;
    }
    float* p = &mb_p_[k * A];
    const float lse = softmax(&mb_logits_[k * A], static_cast<int32_t>(A), p);
    const int32_t act = b_.actions[src];
    const double log_ratio = static_cast<double>(mb_logits_[k * A + act] - lse) - b_.logp_old[src];
    kl[k] = kl_from_logits(&b_.probs_old[src * A], &mb_logits_[k * A], lse, static_cast<int32_t>(A));
    gap[k] = std::fabs(log_ratio);
    terms[k] = ppo_step_grad(p, static_cast<int32_t>(A), act, log_ratio, b_.adv[src], clip, b_.entropy_coef, scale,
                             &mb_d_[k * A]);
  }
  // The first minibatch is evaluated at theta_old: its steps give the rollout/training parity.
  if (minibatches_++ == 0) mismatch_ = *std::max_element(gap.begin(), gap.end());
  mb_kl_ = chunked_sum_of(T, n, kl.data()) * scale;
  fill_zero(grad);
  net_backward(shape_, params_.data(), mb_x_.data(), T, n, cand_cache_, mb_d_.data(), grad.data());
  return chunked_sum_of(T, n, terms.data()) * scale;
}

// Adam descent on -grad with rate lr moves the parameters exactly as Adam on grad with rate -lr (the first
// moment only changes sign), so the ascent needs no negated copy; the stored moments follow grad's sign.
bool CpuPolicyObjective::adam_ascent(const Vec& grad, double lr) {
  RL2_CHECK(adam_ != nullptr, "PPO needs an Adam state (set_adam)");
  return adam_step(*adam_, params_.data(), grad.data(), n, -lr);
}

SurrogateKl CpuPolicyObjective::surrogate_kl() {
  const int64_t m = b_.T * b_.N, A = b_.A;
  net_forward(shape_, params_.data(), b_.x, b_.T, b_.N, cand_cache_, logits_.data());
  std::vector<double> kl(static_cast<size_t>(m));
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < m; ++k) {
    if (!active(k)) {
      terms_[k] = kl[k] = 0.0;
      continue;
    }
    kl[k] = surrogate_kl_step(&logits_[k * A], &b_.probs_old[k * A], static_cast<int32_t>(A), b_.actions[k],
                              b_.logp_old[k], b_.adv[k], b_.entropy_coef, &terms_[k]);
  }
  const double inv_m = 1.0 / active_;
  return SurrogateKl{chunked_sum_of(b_.T, b_.N, terms_.data()) * inv_m, chunked_sum_of(b_.T, b_.N, kl.data()) * inv_m};
}

}  // namespace rl2
