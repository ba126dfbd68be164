// The TRPO policy objective on one batch, on the CPU: the backend of include/rl2/algo/trpo.hpp.
//
// surrogate L(theta) = mean_k pi_theta(a_k|s_k) / pi_old(a_k|s_k) * A_k over the batch's M = T*N steps;
// mean KL(pi_old || pi_theta); and the exact Fisher-vector product F v = J^T M J v / M at theta_old,
// where J v are the logits' directional derivatives (forward-mode GRU, gru_jvp) and M u = p (u - <p,u>)
// the softmax Fisher. At theta_old this F is exactly the Hessian of the mean KL.
#pragma once

#include <cstdint>
#include <vector>

#include "rl2/algo/trpo.hpp"
#include "rl2/policy/gru.hpp"

namespace rl2 {

// Vector ops over host float vectors with double accumulation (the `Ops` of cg.hpp and trpo.hpp).
struct CpuVecOps {
  using Vec = std::vector<float>;
  int64_t n = 0;
  Vec make_vec() const { return Vec(static_cast<size_t>(n), 0.0f); }
  double dot(const Vec& a, const Vec& b) const;
  void axpy(double a, const Vec& x, Vec& y) const;   // y += a x
  void xpby(const Vec& x, double b, Vec& y) const;   // y = x + b y
  void copy(const Vec& from, Vec& to) const { to = from; }
  void fill_zero(Vec& v) const;
};

// One iteration's batch, time-major: x [T, N, I], actions/logp_old/adv [T, N], probs_old [T, N, A].
struct PolicyBatch {
  int64_t T, N;
  int32_t A;
  const float* x;
  const int32_t* actions;
  const float* logp_old;   // log pi_old(a|s) from the rollout
  const float* probs_old;  // pi_old(.|s) from the rollout
  const float* adv;        // standardised advantages
};

class CpuPolicyObjective : public CpuVecOps {
 public:
  // params: the policy's flat parameters (changed by set_params). The caches and scratch vectors are
  // owned by the caller and reused across iterations (resized here as needed).
  CpuPolicyObjective(const GruShape& shape, std::vector<float>& params, const PolicyBatch& batch,
                     GruCache<float>& old_cache, GruCache<float>& cand_cache, std::vector<float>& probs,
                     std::vector<float>& scratch_a, std::vector<float>& scratch_b, std::vector<double>& terms);

  double surrogate_grad(Vec& grad);     // at the current (old) parameters; keeps their forward pass
  void fvp(const Vec& v, Vec& out);     // F v at the parameters of the last surrogate_grad
  void get_params(Vec& out) const { out = params_; }
  void set_params(const Vec& p) { params_ = p; }
  SurrogateKl surrogate_kl();           // at the current parameters, forward only
  // max_k |log pi(a_k|s_k) on the training path - log pi_old(a_k|s_k) from the rollout| at the last
  // surrogate_grad: the rollout/training parity of DESIGN.md section 3 (0 up to float rounding).
  double rollout_mismatch() const { return mismatch_; }

 private:
  GruShape shape_;
  std::vector<float>& params_;
  PolicyBatch b_;
  GruCache<float>& old_cache_;
  GruCache<float>& cand_cache_;
  std::vector<float>& probs_;     // [T, N, A] pi at the old parameters (sequence path)
  std::vector<float>& logits_;    // [T, N, A] scratch
  std::vector<float>& d_out_;     // [T, N, A] scratch
  std::vector<double>& terms_;    // [T, N] scratch
  double mismatch_ = 0.0;
};

}  // namespace rl2
