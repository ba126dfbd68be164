// Posterior of the tabular-MDP prior, Gamma/normal samplers and the finite-horizon planners used by the
// MDP baselines (see mdp_planning.hpp; DESIGN.md section 5). Extended value iteration follows Jaksch,
// Ortner and Auer (2010), figure 2, with the value after the episode's last step fixed at 0.
#include "rl2/baselines/mdp_planning.hpp"

#include <algorithm>
#include <cmath>

namespace rl2 {

double sample_normal(RandomStream& rs) {
  // Polar method with libm's log: baselines are CPU only, so bit-parity with the GPU is not needed.
  for (;;) {
    const double u = uniform_signed(rs.next_u32());
    const double v = uniform_signed(rs.next_u32());
    const double s = u * u + v * v;
    if (s < 1.0 && s > 0.0) return u * std::sqrt(-2.0 * std::log(s) / s);
  }
}

double sample_gamma(double alpha, RandomStream& rs) {
  if (alpha < 1.0) {
    // Gamma(alpha) = Gamma(alpha + 1) U^(1 / alpha) (Marsaglia and Tsang 2000, section 6).
    const double g = sample_gamma(alpha + 1.0, rs);
    return g * std::pow(static_cast<double>(rs.uniform_open0()), 1.0 / alpha);
  }
  // Integer shapes up to kSmallShape (the Dirichlet posterior's 1 + count) as a sum of exponentials,
  // -log of a product of uniforms: one log instead of Marsaglia-Tsang's normal, uniform and logs.
  constexpr double kSmallShape = 8.0;
  if (alpha <= kSmallShape && alpha == std::floor(alpha)) {
    double prod = static_cast<double>(rs.uniform_open0());
    for (int i = 1; i < static_cast<int>(alpha); ++i) prod *= static_cast<double>(rs.uniform_open0());
    return -std::log(prod);
  }
  const double d = alpha - 1.0 / 3.0;
  const double c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    const double x = sample_normal(rs);
    double v = 1.0 + c * x;
    if (v <= 0.0) continue;
    v = v * v * v;
    const double u = static_cast<double>(rs.uniform_open0());
    const double x2 = x * x;
    if (u < 1.0 - 0.0331 * x2 * x2) return d * v;  // squeeze: skips the log almost always
    if (std::log(u) < 0.5 * x2 + d * (1.0 - v + std::log(v))) return d * v;
  }
}

MdpPosterior::MdpPosterior(int32_t states_, int32_t actions_)
    : states(states_),
      actions(actions_),
      visits(static_cast<size_t>(states_) * actions_),
      reward_sum(static_cast<size_t>(states_) * actions_),
      next_counts(static_cast<size_t>(states_) * actions_ * states_),
      next_total(static_cast<size_t>(states_) * actions_) {}

void MdpPosterior::clear() {
  std::fill(visits.begin(), visits.end(), 0);
  std::fill(reward_sum.begin(), reward_sum.end(), 0.0);
  std::fill(next_counts.begin(), next_counts.end(), 0);
  std::fill(next_total.begin(), next_total.end(), 0);
}

void MdpPosterior::observe_reward(int32_t s, int32_t a, double reward) {
  const size_t sa = static_cast<size_t>(s) * actions + a;
  visits[sa] += 1;
  reward_sum[sa] += reward;
}

void MdpPosterior::observe_transition(int32_t s, int32_t a, int32_t next) {
  const size_t sa = static_cast<size_t>(s) * actions + a;
  next_counts[sa * states + next] += 1;
  next_total[sa] += 1;
}

double MdpPosterior::reward_mean(int32_t s, int32_t a) const {
  const size_t sa = static_cast<size_t>(s) * actions + a;
  return (prior_precision * prior_mean + reward_sum[sa]) / (prior_precision + visits[sa]);
}

double MdpPosterior::reward_precision(int32_t s, int32_t a) const {
  return prior_precision + visits[static_cast<size_t>(s) * actions + a];
}

void MdpPosterior::mean_model(double* r, double* p) const {
  const size_t sa_count = static_cast<size_t>(states) * actions;
  for (size_t sa = 0; sa < sa_count; ++sa) {
    r[sa] = (prior_precision * prior_mean + reward_sum[sa]) / (prior_precision + visits[sa]);
    const double inv = 1.0 / (states * prior_alpha + next_total[sa]);
    const int32_t* c = next_counts.data() + sa * states;
    double* row = p + sa * states;
    for (int32_t j = 0; j < states; ++j) row[j] = (prior_alpha + c[j]) * inv;
  }
}

void MdpPosterior::sample_model(RandomStream& rs, double* r, double* p) const {
  const size_t sa_count = static_cast<size_t>(states) * actions;
  for (size_t sa = 0; sa < sa_count; ++sa) {
    const double precision = prior_precision + visits[sa];
    r[sa] = (prior_precision * prior_mean + reward_sum[sa]) / precision + sample_normal(rs) / std::sqrt(precision);
    const int32_t* c = next_counts.data() + sa * states;
    double* row = p + sa * states;
    double total = 0.0;
    for (int32_t j = 0; j < states; ++j) {
      row[j] = sample_gamma(prior_alpha + c[j], rs);
      total += row[j];
    }
    // A draw is 0 only when its uniforms are all exactly 1 (probability 2^-24 each); if every draw of the
    // row is, fall back to the uniform distribution.
    if (total > 0.0) {
      const double inv = 1.0 / total;
      for (int32_t j = 0; j < states; ++j) row[j] *= inv;
    } else {
      for (int32_t j = 0; j < states; ++j) row[j] = 1.0 / states;
    }
  }
}

double optimistic_transition(int32_t states, const double* p_hat, double radius, const double* v,
                             const int32_t* order, double* p_out) {
  for (int32_t j = 0; j < states; ++j) p_out[j] = p_hat[j];
  const int32_t best = order[0];
  const double moved = std::min(radius * 0.5, 1.0 - p_hat[best]);
  p_out[best] += moved;
  // Take the added mass back from the worst states first.
  double excess = moved;
  for (int32_t l = states - 1; l > 0 && excess > 0.0; --l) {
    const int32_t j = order[l];
    const double take = std::min(p_out[j], excess);
    p_out[j] -= take;
    excess -= take;
  }
  double total = 0.0;
  for (int32_t j = 0; j < states; ++j) total += p_out[j] * v[j];
  return total;
}

FiniteHorizonPlanner::FiniteHorizonPlanner(int32_t states, int32_t actions, int32_t max_steps)
    : states_(states),
      actions_(actions),
      max_steps_(max_steps),
      q_(static_cast<size_t>(max_steps) * states * actions),
      q_tmp_(static_cast<size_t>(max_steps) * states * actions),
      v_(static_cast<size_t>(states)),
      order_(static_cast<size_t>(states)),
      p_opt_(static_cast<size_t>(states)) {}

double FiniteHorizonPlanner::value(int32_t k, int32_t s) const {
  const double* row = q(k) + static_cast<size_t>(s) * actions_;
  double best = row[0];
  for (int32_t a = 1; a < actions_; ++a) best = std::max(best, row[a]);
  return best;
}

void FiniteHorizonPlanner::solve_into(const double* r, const double* p, int32_t steps, double* q) {
  const int32_t sa_count = states_ * actions_;
  std::fill(v_.begin(), v_.end(), 0.0);
  for (int32_t k = std::min(steps, max_steps_) - 1; k >= 0; --k) {
    double* qk = q + static_cast<size_t>(k) * sa_count;
    for (int32_t sa = 0; sa < sa_count; ++sa) {
      const double* row = p + static_cast<size_t>(sa) * states_;
      double ev = 0.0;
      for (int32_t j = 0; j < states_; ++j) ev += row[j] * v_[j];
      qk[sa] = r[sa] + ev;
    }
    for (int32_t s = 0; s < states_; ++s) {
      const double* row = qk + static_cast<size_t>(s) * actions_;
      v_[s] = *std::max_element(row, row + actions_);
    }
  }
}

void FiniteHorizonPlanner::solve(const double* r, const double* p, int32_t steps) {
  solve_into(r, p, steps, q_.data());
}

void FiniteHorizonPlanner::solve_envelope(const double* r, const double* p, int32_t samples, int32_t steps) {
  const size_t sa_count = static_cast<size_t>(states_) * actions_;
  const size_t used = static_cast<size_t>(std::min(steps, max_steps_)) * sa_count;
  solve_into(r, p, steps, q_.data());
  for (int32_t m = 1; m < samples; ++m) {
    solve_into(r + m * sa_count, p + m * sa_count * states_, steps, q_tmp_.data());
    for (size_t i = 0; i < used; ++i) q_[i] = std::max(q_[i], q_tmp_[i]);
  }
}

void FiniteHorizonPlanner::solve_extended(const double* r, const double* r_bonus, const double* p,
                                          const double* radius, int32_t steps) {
  const int32_t sa_count = states_ * actions_;
  std::fill(v_.begin(), v_.end(), 0.0);
  for (int32_t k = std::min(steps, max_steps_) - 1; k >= 0; --k) {
    for (int32_t j = 0; j < states_; ++j) order_[j] = j;
    // Insertion sort by value, highest first (S is small).
    for (int32_t i = 1; i < states_; ++i) {
      const int32_t x = order_[i];
      int32_t j = i - 1;
      while (j >= 0 && v_[order_[j]] < v_[x]) {
        order_[j + 1] = order_[j];
        --j;
      }
      order_[j + 1] = x;
    }
    double* qk = q_.data() + static_cast<size_t>(k) * sa_count;
    for (int32_t sa = 0; sa < sa_count; ++sa) {
      const double ev = optimistic_transition(states_, p + static_cast<size_t>(sa) * states_, radius[sa], v_.data(),
                                              order_.data(), p_opt_.data());
      qk[sa] = r[sa] + r_bonus[sa] + ev;
    }
    for (int32_t s = 0; s < states_; ++s) v_[s] = value(k, s);
  }
}

}  // namespace rl2
