// The TRPO policy objective on one batch, on the CPU: the backend of include/rl2/algo/trpo.hpp.
//
// surrogate L(theta) = mean_k [pi_theta(a_k|s_k) / pi_old(a_k|s_k) * A_k + beta H(pi_theta(.|s_k))] over the
// batch's active steps k (beta = 0: the plain TRPO surrogate); mean KL(pi_old || pi_theta); and the exact
// Fisher-vector product F v = J^T M J v / M at theta_old, where J v are the logits' directional
// derivatives (forward mode through the network, net_jvp) and M u = p (u - <p,u>) the softmax Fisher.
// At theta_old this F is exactly the Hessian of the mean KL. Every mean is over the M active steps of
// the batch's mask (a maze trial whose episodes are all done is finished: its later steps are inactive
// and contribute nothing); without a mask all T*N steps are active.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "rl2/algo/adam.hpp"
#include "rl2/algo/trpo.hpp"
#include "rl2/policy/network.hpp"

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

// One iteration's batch, time-major: x [T, N, I], actions/logp_old/adv/mask [T, N], probs_old [T, N, A].
struct PolicyBatch {
  int64_t T, N;
  int32_t A;
  const float* x;
  const int32_t* actions;
  const float* logp_old;   // log pi_old(a|s) from the rollout
  const float* probs_old;  // pi_old(.|s) from the rollout
  const float* adv;        // standardised advantages
  double entropy_coef;     // beta of the entropy bonus
  const float* mask = nullptr;  // 1 active, 0 inactive (the trial had finished); nullptr: all active
};

// The trials of a batch of N that a Fisher product on a `fraction` of them uses: ceil(fraction * N)
// (at least 1), trial j * N / n for j < n, spread evenly. Trials are independent draws, so any fixed set
// is an unbiased sample, and a spread one keeps every part of the batch (every rank's share) in it.
std::vector<int64_t> fvp_trials(int64_t N, double fraction);

class CpuPolicyObjective : public CpuVecOps {
 public:
  // params: the policy's flat parameters (changed by set_params). The caches and scratch vectors are
  // owned by the caller and reused across iterations (resized here as needed).
  CpuPolicyObjective(const NetShape& shape, std::vector<float>& params, const PolicyBatch& batch, NetCache& old_cache,
                     NetCache& cand_cache, std::vector<float>& probs, std::vector<float>& scratch_a,
                     std::vector<float>& scratch_b, std::vector<double>& terms);

  double surrogate_grad(Vec& grad);     // at the current (old) parameters; keeps their forward pass
  // F v at the parameters of the last surrogate_grad, over the Fisher product's trials (below).
  void fvp(const Vec& v, Vec& out);
  // The Fisher product on ceil(fraction * N) trials spread evenly over the batch (1: all), as the
  // authors' TRPO (rllab's subsample_factor): CG's products cost that fraction of a full pass. The mean
  // is over the sub-batch's active steps, so F keeps its scale. Set before the first fvp.
  void set_fvp_subsample(double fraction);
  void get_params(Vec& out) const { out = params_; }
  void set_params(const Vec& p) { params_ = p; }
  SurrogateKl surrogate_kl();           // at the current parameters, forward only
  // max_k |log pi(a_k|s_k) on the training path - log pi_old(a_k|s_k) from the rollout| at theta_old, over
  // the steps of the last surrogate_grad (TRPO: the whole batch) or of the first minibatch_grad (PPO:
  // its first minibatch, before any step): the rollout/training parity of DESIGN.md section 3 (0 up to
  // float rounding).
  double rollout_mismatch() const { return mismatch_; }
  double active_steps() const { return active_; }  // M

  // The PPO backend of ppo.hpp: minibatches of whole trials, Adam on `adam` (set before ppo_update).
  int64_t trials() const { return b_.N; }
  double surrogate_old() const;  // mean of A + beta H(pi_old) over the active steps: L at theta_old
  double minibatch_grad(const int64_t* ids, int64_t n, double clip, Vec& grad);
  double minibatch_kl() const { return mb_kl_; }
  bool adam_ascent(const Vec& grad, double lr);
  void set_adam(AdamState* adam) { adam_ = adam; }

 private:
  void prepare_fvp();

  bool active(int64_t k) const { return b_.mask == nullptr || b_.mask[k] != 0.0f; }

  NetShape shape_;
  std::vector<float>& params_;
  PolicyBatch b_;
  double active_ = 0.0;  // M: active steps of the batch
  NetCache& old_cache_;
  NetCache& cand_cache_;
  std::vector<float>& probs_;     // [T, N, A] pi at the old parameters (sequence path)
  std::vector<float>& logits_;    // [T, N, A] scratch
  std::vector<float>& d_out_;     // [T, N, A] scratch
  std::vector<double>& terms_;    // [T, N] scratch
  double mismatch_ = 0.0;
  int64_t minibatches_ = 0;  // minibatch_grad calls so far
  double mb_kl_ = 0.0;       // mean KL of the last minibatch_grad
  AdamState* adam_ = nullptr;
  std::vector<float> mb_x_, mb_logits_, mb_p_, mb_d_;  // PPO minibatch scratch
  double fvp_fraction_ = 1.0;
  int64_t fvp_n_ = 0;          // trials of the Fisher product (0: not yet prepared)
  double fvp_active_ = 0.0;    // its active steps
  std::vector<float> sub_x_, sub_probs_, sub_mask_, sub_logits_, sub_d_;  // its sub-batch (when n < N)
  NetCache sub_cache_;
};

}  // namespace rl2
