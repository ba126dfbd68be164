// CPU policy objective: surrogate and gradient, Fisher-vector product, surrogate and KL for the line
// search. Per-step terms are computed in parallel (OpenMP over the M = T*N steps) and summed serially,
// so results do not depend on the thread count's scheduling.
#include "cpu/policy_objective.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

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

CpuPolicyObjective::CpuPolicyObjective(const GruShape& shape, std::vector<float>& params, const PolicyBatch& batch,
                                       GruCache<float>& old_cache, GruCache<float>& cand_cache, std::vector<float>& probs,
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
}

// dL/dlogits_k = ratio_k A_k (onehot(a_k) - p_k) / M.
double CpuPolicyObjective::surrogate_grad(Vec& grad) {
  const int64_t m = b_.T * b_.N, A = b_.A;
  gru_forward(shape_, params_.data(), b_.x, b_.T, b_.N, old_cache_, logits_.data());
  const double inv_m = 1.0 / static_cast<double>(m);
  std::vector<double> gap(static_cast<size_t>(m));
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < m; ++k) {
    float* p = &probs_[k * A];
    const float lse = softmax(&logits_[k * A], static_cast<int32_t>(A), p);
    const int32_t act = b_.actions[k];
    const double log_ratio = static_cast<double>(logits_[k * A + act] - lse) - b_.logp_old[k];
    gap[k] = std::fabs(log_ratio);
    const double w = std::exp(log_ratio) * b_.adv[k];
    terms_[k] = w;
    for (int64_t a = 0; a < A; ++a) d_out_[k * A + a] = static_cast<float>(w * ((a == act ? 1.0 : 0.0) - p[a]) * inv_m);
  }
  mismatch_ = *std::max_element(gap.begin(), gap.end());
  fill_zero(grad);
  gru_backward(shape_, params_.data(), b_.x, b_.T, b_.N, old_cache_, d_out_.data(), grad.data(), nullptr);
  return std::accumulate(terms_.begin(), terms_.end(), 0.0) * inv_m;
}

void CpuPolicyObjective::fvp(const Vec& v, Vec& out) {
  const int64_t m = b_.T * b_.N, A = b_.A;
  gru_jvp(shape_, params_.data(), b_.x, b_.T, b_.N, old_cache_, v.data(), logits_.data());
  const double inv_m = 1.0 / static_cast<double>(m);
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < m; ++k) {
    const float* p = &probs_[k * A];
    const float* dl = &logits_[k * A];
    double s = 0.0;
    for (int64_t a = 0; a < A; ++a) s += static_cast<double>(p[a]) * dl[a];
    for (int64_t a = 0; a < A; ++a) d_out_[k * A + a] = static_cast<float>(p[a] * (dl[a] - s) * inv_m);
  }
  fill_zero(out);
  gru_backward(shape_, params_.data(), b_.x, b_.T, b_.N, old_cache_, d_out_.data(), out.data(), nullptr);
}

SurrogateKl CpuPolicyObjective::surrogate_kl() {
  const int64_t m = b_.T * b_.N, A = b_.A;
  gru_forward(shape_, params_.data(), b_.x, b_.T, b_.N, cand_cache_, logits_.data());
  std::vector<double> kl(static_cast<size_t>(m));
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < m; ++k) {
    const float* lg = &logits_[k * A];
    float mx = lg[0];
    for (int64_t a = 1; a < A; ++a) mx = std::max(mx, lg[a]);
    double z = 0.0;
    for (int64_t a = 0; a < A; ++a) z += std::exp(static_cast<double>(lg[a] - mx));
    const double lse = mx + std::log(z);
    terms_[k] = std::exp(lg[b_.actions[k]] - lse - b_.logp_old[k]) * b_.adv[k];
    double s = 0.0;
    for (int64_t a = 0; a < A; ++a) {
      const double po = b_.probs_old[k * A + a];
      if (po > 0.0) s += po * (std::log(po) - (lg[a] - lse));
    }
    kl[k] = s;
  }
  const double inv_m = 1.0 / static_cast<double>(m);
  return SurrogateKl{std::accumulate(terms_.begin(), terms_.end(), 0.0) * inv_m,
                     std::accumulate(kl.begin(), kl.end(), 0.0) * inv_m};
}

}  // namespace rl2
