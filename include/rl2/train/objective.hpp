// The policy objective of one batch, written once over a Backend (backend.hpp): the backend of trpo.hpp and
// ppo.hpp. Vectors are Buffer<float>s in the backend's memory; only scalars come to the host.
//
// surrogate L(theta) = mean_k [pi_theta(a_k|s_k) / pi_old(a_k|s_k) A_k + beta H(pi_theta(.|s_k))] over the
// batch's active steps k; mean KL(pi_old || pi_theta); the Fisher-vector product at theta_old:
//   exact            (a backend net with a JVP, the CPU) F v = J^T M J v / m, J v the logits' directional
//                    derivatives and M u = p (u - <p, u>) the softmax Fisher: at theta_old exactly the
//                    Hessian of the mean KL
//   finite difference (cuDNN has no forward mode) F v ~ (g(theta + eps v) - g(theta - eps v)) / (2 eps), g
//                    the gradient of the mean KL, eps set so the largest logit moves by about kFvpLogitStep
//                    (docs/cuda_training.md has the choice and its error budget)
// Both run on ceil(f N) trials spread over the batch (set_fvp_subsample; 1: all). Every mean is over the
// active steps of the batch's mask (nullptr: all T N steps). Over ranks (shard.hpp) each rank holds its
// chunks of the batch, and every sum and gradient is the ranks' ordered sum.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "rl2/algo/adam.hpp"
#include "rl2/algo/update.hpp"
#include "rl2/train/backend.hpp"
#include "rl2/train/shard.hpp"

namespace rl2 {

// One iteration's batch in the backend's memory, time-major: x [T, N, I], actions/logp_old/adv/mask [T, N],
// probs_old [T, N, A].
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

// The trials of a batch of N trials of T steps that a Fisher product on a `fraction` of them uses: whole
// chunks (core/chunks.hpp), ceil(fraction * K) of the K chunks (at least 1), chunk j * K / k for j < k,
// spread evenly. Trials are independent draws, so any fixed set is an unbiased sample; whole chunks compute
// as full units, and a spread set keeps every part of the batch (every rank's share) in it.
std::vector<int64_t> fvp_trials(int64_t N, int64_t T, double fraction);

// Adam's moments in the backend's memory (adam.hpp's AdamState on the host).
struct BackendAdam {
  Buffer<float> m, v;  // empty until the first step
  int64_t t = 0;
};
void upload_adam(Backend& be, const AdamState& host, BackendAdam& dev);
AdamState download_adam(Backend& be, const BackendAdam& dev);
// One Adam step params -= lr m_hat / (sqrt(v_hat) + eps) (ops::Adam per parameter). Returns false, changing
// nothing, when grad holds a non-finite value.
bool adam_step(Backend& be, BackendAdam& s, float* params, const float* grad, int64_t n, double lr);

// Vector ops over Buffer<float>s of n floats with double accumulation (the `Ops` of cg.hpp and trpo.hpp).
struct VecOps {
  using Vec = Buffer<float>;
  Backend* be = nullptr;
  int64_t n = 0;
  Vec make_vec() const;  // zeroed
  double dot(const Vec& a, const Vec& b) const { return be->dot(n, a.data(), b.data()); }
  void axpy(double a, const Vec& x, Vec& y) const { be->run(ops::Axpy{n, a, x.data(), y.data()}); }  // y += a x
  void xpby(const Vec& x, double b, Vec& y) const { be->run(ops::Xpby{n, x.data(), b, y.data()}); }  // y = x + b y
  void copy(const Vec& from, Vec& to) const { be->copy(to.data(), from.data(), static_cast<size_t>(n) * sizeof(float)); }
  void fill_zero(Vec& v) const { be->run(ops::Fill{n, 0.0f, v.data()}); }
};

class PolicyObjective : public VecOps {
 public:
  // The largest logit change of a finite-difference probe theta +- eps v that eps aims at, the band it
  // accepts before re-probing, the first probe's parameter step relative to (1 + |theta|), the probes at most.
  static constexpr double kFvpLogitStep = 1e-2;
  static constexpr double kFvpBand = 4.0;
  static constexpr double kFvpFirstStep = 1e-4;
  static constexpr int kFvpMaxProbes = 4;

  // params: the policy's flat parameters [shape.size()] in the backend's memory (changed by set_params).
  // The networks are made here for batches of batch.N trials of batch.T steps. finite_difference: use the
  // finite-difference Fisher product even where the backend has a JVP (tests).
  // shard: this rank's part of the batch (batch holds its shard.count() trials) and the ranks' sums;
  // nullptr: one process holding the whole batch.
  PolicyObjective(Backend& be, const NetShape& shape, float* params, const PolicyBatch& batch,
                  bool finite_difference = false, const Shard* shard = nullptr);
  ~PolicyObjective();

  // The batch's arrays were rewritten in place (a new rollout): count its active steps again and drop
  // what the last update prepared.
  void new_batch();

  double surrogate_grad(Vec& grad);  // at the current (old) parameters; keeps their forward pass
  void fvp(const Vec& v, Vec& out);  // F v at the parameters of the last surrogate_grad
  // The Fisher product on ceil(fraction * N) trials spread evenly over the batch (1: all), as the authors'
  // TRPO (rllab's subsample_factor). The mean is over the sub-batch's active steps, so F keeps its scale.
  void set_fvp_subsample(double fraction);
  void get_params(Vec& out) const { copy_raw(out.data(), params_); }
  void set_params(const Vec& p) { copy_raw(params_, p.data()); }
  SurrogateKl surrogate_kl();  // at the current parameters, forward only
  // max_k |log pi(a_k|s_k) on the training path - log pi_old(a_k|s_k) from the rollout| at theta_old, over
  // the steps of the last surrogate_grad (TRPO) or of the first minibatch_grad (PPO): the rollout/training
  // parity of DESIGN.md section 3 (0 up to float rounding).
  double rollout_mismatch() const { return mismatch_; }
  double active_steps() const { return active_; }
  double last_fvp_epsilon() const { return last_eps_; }  // eps of the last finite-difference product

  // The PPO backend of ppo.hpp: minibatches of whole chunks of trials, Adam on `adam` (set before ppo_update).
  int64_t trials() const { return shard_->trials(); }  // of all ranks; ids below number them
  int64_t minibatch_units() const { return TrialChunks(shard_->trials(), b_.T).count(); }
  std::vector<int64_t> unit_trials(const int64_t* units, int64_t n) const {
    return TrialChunks(shard_->trials(), b_.T).trials_of(units, n);
  }
  double surrogate_old();  // mean of A + beta H(pi_old) over the active steps: L at theta_old, no forward
  double minibatch_grad(const int64_t* ids, int64_t n, double clip, Vec& grad);  // ids: host memory, global
  double minibatch_kl() const { return mb_kl_; }
  bool adam_ascent(const Vec& grad, double lr);
  void set_adam(BackendAdam* adam) { adam_ = adam; }

 private:
  struct SubBatch;  // the Fisher product's trials
  void copy_raw(float* to, const float* from) const {
    be->copy(to, from, static_cast<size_t>(n) * sizeof(float));
  }
  void prepare_fvp();
  void ensure(Buffer<float>& b, int64_t size);  // b holds `size` floats (kept when it already does)
  void fvp_exact(const Vec& v, Vec& out);
  void fvp_finite_difference(const Vec& v, Vec& out);
  void shifted_forward(const Vec& v, double step);  // probe_ = params + step v; sub logits = net(probe_)
  NetShape shape_;
  float* params_;
  PolicyBatch b_;
  std::unique_ptr<Shard> own_shard_;  // one process's, when none was given
  const Shard* shard_;
  TrialSegments segs_;  // the batch's chunks (this rank's)
  bool finite_difference_;
  double active_ = 0.0;  // m: active steps of the batch
  std::unique_ptr<BackendNet> old_, cand_;  // forwards at theta_old (kept for the exact product), candidates
  Buffer<float> logits_, probs_, d_out_;    // [T, N, A]; probs_: pi(theta_old) on the training path
  Buffer<float> logits_old_, mb_probs_;     // [T, N, A]: logits at theta_old (finite differences), PPO scratch
  Buffer<double> terms_, aux_, gap_;        // [T, N]
  Buffer<int64_t> ids_;                     // [N] minibatch or sub-batch trial ids
  Buffer<float> mb_x_, mb_mask_;            // PPO minibatch (on demand)
  double mismatch_ = 0.0;
  int64_t minibatches_ = 0;  // minibatch_grad calls since surrogate_old
  double mb_kl_ = 0.0;
  BackendAdam* adam_ = nullptr;
  double fvp_fraction_ = 1.0;
  std::unique_ptr<SubBatch> sub_;  // prepared by the first fvp after surrogate_grad (or a new batch)
  bool sub_ready_ = false;
  std::unique_ptr<BackendNet> sub_net_;  // the sub-batch's network (kept across iterations)
  int64_t sub_net_n_ = 0;
  double theta_norm_ = 0.0;  // |theta_old| (finite differences)
  double kappa_ = 0.0;       // max logit change per unit parameter step of the last probe (0: none yet)
  double last_eps_ = 0.0;
  Buffer<float> probe_, tmp_;  // [n] the probe's parameters, the minus gradient
};

}  // namespace rl2
