// The policy objective over a Backend (objective.hpp): surrogate and gradient, the Fisher-vector product
// (exact or by finite differences), the line search's surrogate and KL, PPO's minibatches, Adam.
#include "rl2/train/objective.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "rl2/core/check.hpp"

namespace rl2 {

std::vector<int64_t> fvp_trials(int64_t N, int64_t T, double fraction) {
  const TrialChunks ch(N, T);
  const int64_t K = ch.count();
  const int64_t k = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(fraction * static_cast<double>(K))), 1, K);
  std::vector<int64_t> chunks(static_cast<size_t>(k));
  for (int64_t j = 0; j < k; ++j) chunks[j] = j * K / k;
  return ch.trials_of(chunks.data(), k);
}

// ---- Adam ---------------------------------------------------------------------------------------------------
void upload_adam(Backend& be, const AdamState& host, BackendAdam& dev) {
  dev.m = Buffer<float>(be, static_cast<int64_t>(host.m.size()));
  dev.v = Buffer<float>(be, static_cast<int64_t>(host.v.size()));
  be.upload(dev.m.data(), host.m);
  be.upload(dev.v.data(), host.v);
  dev.t = host.t;
}

AdamState download_adam(Backend& be, const BackendAdam& dev) {
  AdamState s;
  s.m = be.download(dev.m.data(), dev.m.size());
  s.v = be.download(dev.v.data(), dev.v.size());
  s.t = dev.t;
  return s;
}

bool adam_step(Backend& be, BackendAdam& s, float* params, const float* grad, int64_t n, double lr) {
  if (!be.all_finite(n, grad)) return false;
  if (s.m.size() != n) {
    s.m = Buffer<float>(be, n);
    s.v = Buffer<float>(be, n);
    be.run(ops::Fill{n, 0.0f, s.m.data()});
    be.run(ops::Fill{n, 0.0f, s.v.data()});
    s.t = 0;
  }
  s.t += 1;
  const double c1 = 1.0 - std::pow(ops::kAdamBeta1, static_cast<double>(s.t));
  const double c2 = 1.0 - std::pow(ops::kAdamBeta2, static_cast<double>(s.t));
  be.run(ops::Adam{n, params, grad, s.m.data(), s.v.data(), lr, c1, c2});
  return true;
}

VecOps::Vec VecOps::make_vec() const {
  Vec v(*be, n);
  fill_zero(v);
  return v;
}

// ---- the Fisher product's trials ------------------------------------------------------------------------------
// The whole batch, or its gathered sub-batch with a network of its own. logits_old: the sub-batch's logits
// at theta_old (the finite-difference probes' reference; the whole batch's are surrogate_grad's copy).
struct PolicyObjective::SubBatch {
  int64_t n = 0;  // this rank's trials of it
  TrialSegments segs;
  const float* x = nullptr;
  const float* probs = nullptr;
  const float* mask = nullptr;
  double active = 0.0;
  BackendNet* net = nullptr;
  const float* logits_old = nullptr;
  Buffer<float> x_buf, probs_buf, mask_buf, logits, d_out, logits_old_buf;
};

PolicyObjective::PolicyObjective(Backend& backend, const NetShape& shape, float* params, const PolicyBatch& batch,
                                 bool finite_difference, const Shard* shard)
    : shape_(shape),
      params_(params),
      b_(batch),
      own_shard_(shard ? nullptr : std::make_unique<Shard>(single_process(), batch.N, batch.T)),
      shard_(shard ? shard : own_shard_.get()),
      segs_(shard_->segments()),
      finite_difference_(finite_difference) {
  RL2_CHECK(shard_->count() == b_.N, "PolicyObjective: the batch is not the shard's trials");
  be = &backend;
  n = shape.size();
  RL2_CHECK(shape.gru.out == b_.A, "PolicyObjective: the network's head must have one output per action");
  old_ = backend.make_net(shape, b_.T, b_.N);
  cand_ = backend.make_net(shape, b_.T, b_.N);
  finite_difference_ = finite_difference || !old_->has_jvp();
  const int64_t m = b_.T * b_.N;
  logits_ = Buffer<float>(backend, m * b_.A);
  probs_ = Buffer<float>(backend, m * b_.A);
  d_out_ = Buffer<float>(backend, m * b_.A);
  terms_ = Buffer<double>(backend, m);
  aux_ = Buffer<double>(backend, m);
  gap_ = Buffer<double>(backend, m);
  ids_ = Buffer<int64_t>(backend, b_.N);
  new_batch();
}

PolicyObjective::~PolicyObjective() = default;

void PolicyObjective::new_batch() {
  active_ = shard_->active_steps(*be, b_.T, segs_, b_.mask);
  sub_ready_ = false;
}

void PolicyObjective::set_fvp_subsample(double fraction) {
  RL2_CHECK(fraction > 0.0 && fraction <= 1.0, "the Fisher-product subsample is a fraction in (0, 1]");
  fvp_fraction_ = fraction;
}

// dL/dlogits_k = [ratio_k A_k (onehot(a_k) - p_k) - beta p_k (log p_k + H_k)] / m at active steps, 0 else.
double PolicyObjective::surrogate_grad(Vec& grad) {
  const int64_t m = b_.T * b_.N;
  old_->forward(params_, b_.x, b_.N, logits_.data(), &segs_);
  const double inv_m = 1.0 / active_;
  be->run(ops::SurrogateStep{m, b_.A, logits_.data(), b_.actions, b_.logp_old, b_.adv, b_.entropy_coef, inv_m,
                             probs_.data(), d_out_.data(), terms_.data(), gap_.data(), b_.mask});
  mismatch_ = shard_->max(be->max(m, gap_.data()));
  shard_->backward(*be, *old_, n, params_, b_.x, segs_, d_out_.data(), grad.data());
  sub_ready_ = false;  // the Fisher product is prepared again at these parameters
  if (finite_difference_) {  // the probes' reference, kept apart from the scratch later calls overwrite
    if (logits_old_.size() == 0) logits_old_ = Buffer<float>(*be, m * b_.A);
    be->copy(logits_old_.data(), logits_.data(), static_cast<size_t>(m * b_.A) * sizeof(float));
    theta_norm_ = std::sqrt(be->dot(n, params_, params_));
    kappa_ = 0.0;  // every TRPO step calibrates its own probes (a resumed run repeats them)
  }
  return shard_->step_sum(*be, b_.T, segs_, terms_.data(), nullptr) * inv_m;
}

// The Fisher product's trials at theta_old, made on first use: their inputs, pi_old on the sequence path
// (gathered from surrogate_grad's probs), their mask, and a forward pass at theta_old on its network.
void PolicyObjective::prepare_fvp() {
  const int64_t T = b_.T, N = b_.N, A = b_.A, I = shape_.input();
  const std::vector<int64_t> all = fvp_trials(shard_->trials(), T, fvp_fraction_);
  const Shard::Part part = shard_->select(all.data(), static_cast<int64_t>(all.size()));
  const std::vector<int64_t>& ids = part.ids;
  if (!sub_) sub_ = std::make_unique<SubBatch>();  // its buffers and network last while the sizes do
  SubBatch& s = *sub_;
  s.n = static_cast<int64_t>(ids.size());
  const bool full = static_cast<int64_t>(all.size()) == shard_->trials();
  s.segs = full ? segs_ : part.segs;
  if (full) {
    s.x = b_.x;
    s.probs = probs_.data();
    s.mask = b_.mask;
    s.active = active_;
    s.net = old_.get();  // its forward at theta_old is surrogate_grad's
  } else {
    be->upload(ids_.data(), ids);
    ensure(s.x_buf, T * s.n * I);
    ensure(s.probs_buf, T * s.n * A);
    be->run(ops::GatherTrialsF{b_.x, T, N, I, ids_.data(), s.n, s.x_buf.data()});
    be->run(ops::GatherTrialsF{probs_.data(), T, N, A, ids_.data(), s.n, s.probs_buf.data()});
    if (b_.mask != nullptr) {
      ensure(s.mask_buf, T * s.n);
      be->run(ops::GatherTrialsF{b_.mask, T, N, 1, ids_.data(), s.n, s.mask_buf.data()});
    }
    s.x = s.x_buf.data();
    s.probs = s.probs_buf.data();
    s.mask = b_.mask != nullptr ? s.mask_buf.data() : nullptr;
    s.active = shard_->active_steps(*be, T, s.segs, s.mask);
    if (!sub_net_ || sub_net_n_ != s.n) {  // made once: its size stays while the batch's does
      sub_net_ = be->make_net(shape_, T, s.n);
      sub_net_n_ = s.n;
    }
    s.net = sub_net_.get();
  }
  ensure(s.logits, T * s.n * A);
  ensure(s.d_out, T * s.n * A);
  sub_ready_ = true;
  if (!finite_difference_) {
    if (!full) s.net->forward(params_, s.x, s.n, s.logits.data(), &s.segs);  // the JVP's point
    return;
  }
  if (full) {
    s.logits_old = logits_old_.data();
  } else {
    ensure(s.logits_old_buf, T * s.n * A);
    s.net->forward(params_, s.x, s.n, s.logits_old_buf.data(), &s.segs);
    s.logits_old = s.logits_old_buf.data();
  }
  ensure(probe_, n);
  ensure(tmp_, n);
}

void PolicyObjective::ensure(Buffer<float>& b, int64_t size) {
  if (b.size() != size) b = Buffer<float>(*be, size);
}

void PolicyObjective::fvp(const Vec& v, Vec& out) {
  if (!sub_ready_) prepare_fvp();
  if (finite_difference_)
    fvp_finite_difference(v, out);
  else
    fvp_exact(v, out);
}

void PolicyObjective::fvp_exact(const Vec& v, Vec& out) {
  SubBatch& s = *sub_;
  s.net->jvp(params_, s.x, s.n, v.data(), s.logits.data(), &s.segs);
  be->run(ops::FisherStep{b_.T * s.n, b_.A, s.probs, s.logits.data(), 1.0 / s.active, s.d_out.data(), s.mask});
  shard_->backward(*be, *s.net, n, params_, s.x, s.segs, s.d_out.data(), out.data());
}

void PolicyObjective::shifted_forward(const Vec& v, double step) {
  copy_raw(probe_.data(), params_);
  be->run(ops::Axpy{n, step, v.data(), probe_.data()});
  sub_->net->forward(probe_.data(), sub_->x, sub_->n, sub_->logits.data(), &sub_->segs);
}

// F v ~ (g(theta + eps v) - g(theta - eps v)) / (2 eps), g = the gradient of the mean KL(pi_old || pi_theta),
// whose logits gradient is (p_theta - p_old) / m. eps: the first probe steps the parameters by
// kFvpFirstStep (1 + |theta|) and measures delta = max |logits(theta + eps v) - logits(theta_old)|; eps is
// rescaled until delta lies within a factor kFvpBand of kFvpLogitStep, and the measured slope
// kappa = delta / (eps |v|) predicts the next probe's eps (usually no re-probe after the first product).
void PolicyObjective::fvp_finite_difference(const Vec& v, Vec& out) {
  SubBatch& s = *sub_;
  const double vv = dot(v, v);
  if (!std::isfinite(vv)) {
    be->run(ops::Fill{n, std::numeric_limits<float>::quiet_NaN(), out.data()});
    return;
  }
  if (vv == 0.0) {
    fill_zero(out);
    return;
  }
  const int64_t steps = b_.T * s.n;
  const double vnorm = std::sqrt(vv), target = kFvpLogitStep;
  double eps = kappa_ > 0.0 ? target / (kappa_ * vnorm) : kFvpFirstStep * (1.0 + theta_norm_) / vnorm;
  double delta = 0.0;
  for (int probe = 0;; ++probe) {
    shifted_forward(v, eps);
    delta = shard_->max(be->max_abs_diff(steps * b_.A, s.logits.data(), s.logits_old, s.mask, b_.A));  // active
    if (!std::isfinite(delta)) {
      be->run(ops::Fill{n, std::numeric_limits<float>::quiet_NaN(), out.data()});
      return;
    }
    const bool in_band = delta >= target / kFvpBand && delta <= target * kFvpBand;
    if (in_band || probe + 1 >= kFvpMaxProbes) break;
    eps *= delta > 0.0 ? target / delta : 1e3;
  }
  if (delta == 0.0) {  // v moves no logit even at the largest probe: F v = 0 to float precision
    fill_zero(out);
    return;
  }
  kappa_ = delta / (eps * vnorm);
  last_eps_ = eps;
  const double scale = 1.0 / (2.0 * eps * s.active);
  be->run(ops::KlGrad{steps, b_.A, s.logits.data(), s.probs, scale, s.d_out.data(), s.mask});
  shard_->backward(*be, *s.net, n, probe_.data(), s.x, s.segs, s.d_out.data(), out.data());
  shifted_forward(v, -eps);
  be->run(ops::KlGrad{steps, b_.A, s.logits.data(), s.probs, scale, s.d_out.data(), s.mask});
  shard_->backward(*be, *s.net, n, probe_.data(), s.x, s.segs, s.d_out.data(), tmp_.data());
  axpy(-1.0, tmp_, out);
}

SurrogateKl PolicyObjective::surrogate_kl() {
  const int64_t m = b_.T * b_.N;
  cand_->forward(params_, b_.x, b_.N, logits_.data(), &segs_);
  be->run(ops::SurrogateKlStep{m, b_.A, logits_.data(), b_.actions, b_.logp_old, b_.probs_old, b_.adv,
                               b_.entropy_coef, terms_.data(), aux_.data(), b_.mask});
  const double inv_m = 1.0 / active_;
  return SurrogateKl{shard_->step_sum(*be, b_.T, segs_, terms_.data(), nullptr) * inv_m,
                     shard_->step_sum(*be, b_.T, segs_, aux_.data(), nullptr) * inv_m};
}

double PolicyObjective::surrogate_old() {
  be->run(ops::SurrogateOld{b_.T * b_.N, b_.A, b_.probs_old, b_.adv, b_.entropy_coef, terms_.data(), b_.mask});
  minibatches_ = 0;
  return shard_->step_sum(*be, b_.T, segs_, terms_.data(), nullptr) / active_;
}

// The clipped objective on trials ids[0..n) of all ranks (time-major gather of this rank's, ascending, in
// segments by chunk) and its gradient.
double PolicyObjective::minibatch_grad(const int64_t* all_ids, int64_t n_all, double clip, Vec& grad) {
  RL2_CHECK(n_all >= 1 && n_all <= trials(), "minibatch_grad: minibatch size out of range");
  const Shard::Part part = shard_->select(all_ids, n_all);
  const int64_t T = b_.T, I = shape_.input(), mb = static_cast<int64_t>(part.ids.size()), steps = T * mb;
  if (mb_x_.size() < steps * I) mb_x_ = Buffer<float>(*be, steps * I);
  if (b_.mask != nullptr && mb_mask_.size() < steps) mb_mask_ = Buffer<float>(*be, steps);
  be->upload(ids_.data(), part.ids);
  be->run(ops::GatherTrialsF{b_.x, T, b_.N, I, ids_.data(), mb, mb_x_.data()});
  cand_->forward(params_, mb_x_.data(), mb, logits_.data(), &part.segs);
  if (b_.mask != nullptr) be->run(ops::GatherTrialsF{b_.mask, T, b_.N, 1, ids_.data(), mb, mb_mask_.data()});
  const float* mask = b_.mask != nullptr ? mb_mask_.data() : nullptr;
  const double scale = 1.0 / shard_->active_steps(*be, T, part.segs, mask);
  if (mb_probs_.size() < steps * b_.A) mb_probs_ = Buffer<float>(*be, steps * b_.A);
  be->run(ops::PpoStep{T, mb, b_.N, b_.A, ids_.data(), logits_.data(), b_.actions, b_.logp_old, b_.probs_old, b_.adv,
                       clip, b_.entropy_coef, scale, mb_probs_.data(), d_out_.data(), terms_.data(), aux_.data(),
                       gap_.data(), b_.mask});
  // The first minibatch is evaluated at theta_old: its steps give the rollout/training parity.
  if (minibatches_++ == 0) mismatch_ = shard_->max(be->max(steps, gap_.data()));
  mb_kl_ = shard_->step_sum(*be, T, part.segs, aux_.data(), nullptr) * scale;
  shard_->backward(*be, *cand_, n, params_, mb_x_.data(), part.segs, d_out_.data(), grad.data());
  return shard_->step_sum(*be, T, part.segs, terms_.data(), nullptr) * scale;
}

// Adam descent on -grad with rate lr moves the parameters exactly as Adam on grad with rate -lr (the first
// moment only changes sign), so the ascent needs no negated copy; the stored moments follow grad's sign.
bool PolicyObjective::adam_ascent(const Vec& grad, double lr) {
  RL2_CHECK(adam_ != nullptr, "PPO needs an Adam state (set_adam)");
  return adam_step(*be, *adam_, params_, grad.data(), n, -lr);
}

}  // namespace rl2
