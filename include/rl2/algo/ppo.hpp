// PPO with ratio clipping (Schulman et al. 2017), the alternative outer loop of DESIGN.md section 4
// (`--algo ppo`), written once against a backend like trpo.hpp.
//
// maximise L(theta) = E[min(rho A, clip(rho, 1 - eps, 1 + eps) A) + beta H(pi_theta)], rho = pi_theta / pi_old,
// by Adam on minibatches of whole chunks of trials (the GRU runs over whole trials; a chunk computes as
// one unit on whichever rank holds it, train/shard.hpp), for up to `epochs` passes over the batch in a
// seeded order of its chunks. The KL guard: each minibatch's forward pass (which the gradient needs
// anyway) also gives that minibatch's mean KL(pi_old || pi_theta) just before its Adam step; a pass whose
// minibatches average above 1.5 * target_kl ends the update. No extra forward pass per epoch: one pass over
// the whole batch at the end measures the reported surrogate and KL.
//
// Backend `Be` provides the vector ops of cg.hpp plus
//   int64_t minibatch_units();                                 // the units minibatches are made of
//   std::vector<int64_t> unit_trials(const int64_t* units, int64_t n);  // their trials
//   double surrogate_old();    // the plain surrogate at theta_old, from the rollout's pi_old (no forward)
//   double minibatch_grad(const int64_t* ids, int64_t n, double clip, Vec& grad);
//        // L on those trials and its gradient w.r.t. the parameters (the ascent direction)
//   double minibatch_kl();     // mean KL(pi_old || pi_theta) over the last minibatch_grad's active steps
//   bool adam_ascent(const Vec& grad, double lr);               // one Adam step along +grad; false if non-finite
//   SurrogateKl surrogate_kl();                                 // plain surrogate and mean KL, whole batch
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "rl2/algo/minibatch.hpp"
#include "rl2/algo/trpo.hpp"
#include "rl2/core/hd.hpp"
#include "rl2/core/rng.hpp"
#include "rl2/policy/softmax.hpp"

namespace rl2 {

struct PpoConfig {
  double clip = 0.2;
  int epochs = 8;
  int minibatches = 4;
  double lr = 1e-3;
  double target_kl = 0.02;
  double max_grad_norm = 1.0;  // the gradient is rescaled to at most this L2 norm (0 = off)
};

// One step's clipped term and its gradient w.r.t. the logits (times `scale`), given pi (p [A]), the taken
// action, log rho and the advantage; beta adds the entropy bonus. Shared by the CPU loop and a kernel.
RL2_HD inline double ppo_step_grad(const float* p, int32_t A, int32_t act, double log_ratio, double adv, double clip,
                                   double beta, double scale, float* d_logits) {
  const double rho = exp(log_ratio);
  const double clipped = fmin(fmax(rho, 1.0 - clip), 1.0 + clip);
  // The min picks the clipped term (zero gradient) exactly when rho has left the interval in A's favour.
  const bool active = adv >= 0.0 ? rho <= 1.0 + clip : rho >= 1.0 - clip;
  const double term = fmin(rho * adv, clipped * adv);
  const double h = policy_logits_grad(p, A, act, active ? rho * adv : 0.0, beta, scale, d_logits);
  return term + beta * h;
}

template <class Be>
UpdateStats ppo_update(Be& be, const PpoConfig& cfg, uint64_t seed, int64_t iteration) {
  using Vec = typename Be::Vec;
  UpdateStats st;
  st.status = UpdateStatus::kAccepted;
  st.surrogate_before = be.surrogate_old();
  const int64_t n = be.minibatch_units();  // whole chunks of trials
  const int64_t mb_count = std::max<int64_t>(1, std::min<int64_t>(cfg.minibatches, n));
  Vec grad = be.make_vec();
  Vec scaled = be.make_vec();
  Vec old_params = be.make_vec();
  be.get_params(old_params);
  auto non_finite = [&](const char* why) {
    be.set_params(old_params);  // a non-finite loss never changes the parameters
    st.status = UpdateStatus::kNonFinite;
    st.reason = why;
    return st;
  };
  for (int epoch = 0; epoch < cfg.epochs; ++epoch) {
    // Step word 1 << 20 | epoch keeps this order's stream apart from the baseline fit's shuffles.
    const std::vector<int64_t> order =
        shuffled_trials(seed, static_cast<uint64_t>(iteration), (1u << 20) | static_cast<uint32_t>(epoch), n);
    double kl_sum = 0.0;
    for (int64_t mb = 0; mb < mb_count; ++mb) {
      const int64_t lo = mb * n / mb_count, hi = (mb + 1) * n / mb_count;
      const std::vector<int64_t> ids = be.unit_trials(order.data() + lo, hi - lo);
      const double obj = be.minibatch_grad(ids.data(), static_cast<int64_t>(ids.size()), cfg.clip, grad);
      const double norm = std::sqrt(be.dot(grad, grad));
      kl_sum += be.minibatch_kl();
      if (!std::isfinite(obj) || !std::isfinite(norm) || !std::isfinite(kl_sum)) {
        return non_finite("non-finite PPO objective, gradient or KL");
      }
      if (cfg.max_grad_norm > 0.0 && norm > cfg.max_grad_norm) {
        be.fill_zero(scaled);
        be.axpy(cfg.max_grad_norm / norm, grad, scaled);
        be.copy(scaled, grad);
      }
      be.adam_ascent(grad, cfg.lr);
    }
    st.steps = epoch + 1;  // reported as epochs run
    if (kl_sum / static_cast<double>(mb_count) > 1.5 * cfg.target_kl) break;
  }
  const SurrogateKl now = be.surrogate_kl();
  if (!std::isfinite(now.surrogate) || !std::isfinite(now.kl)) return non_finite("non-finite PPO surrogate or KL");
  st.kl = now.kl;
  st.surrogate_gain = now.surrogate - st.surrogate_before;
  return st;
}

}  // namespace rl2
