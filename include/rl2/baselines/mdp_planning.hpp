// Bayesian bookkeeping and finite-horizon planners for the tabular-MDP baselines (DESIGN.md section 5).
//
// The posterior is the conjugate one: reward mean mu_sa ~ N(m0, 1 / tau0) with unit reward noise, so
// after n rewards summing to R it is N((tau0 m0 + R) / (tau0 + n), 1 / (tau0 + n)); next state
// P(.|s, a) ~ Dirichlet(alpha0), so after counts c it is Dirichlet(alpha0 + c). The defaults are the true
// prior of section 2 (m0 = 1, tau0 = 1, alpha0 = 1). Planners are backward induction over the remaining
// steps of an episode (time-dependent Q), its optimistic envelope over several posterior samples (OPSRL),
// and UCRL2's extended value iteration (Jaksch, Ortner and Auer 2010, section 3.1.2 and figure 2) in
// finite-horizon form. CPU only; random bits come from rl2's Philox streams, arithmetic from <cmath>.
#pragma once

#include <cstdint>
#include <vector>

#include "rl2/core/rng.hpp"

namespace rl2 {

// Standard normal (polar method) and Gamma(alpha, 1), alpha > 0 (integer alpha <= 8 as a sum of
// exponentials, larger alpha by Marsaglia and Tsang 2000, alpha < 1 by the U^(1/alpha) boost), reading
// words from `rs`.
double sample_normal(RandomStream& rs);
double sample_gamma(double alpha, RandomStream& rs);

// Sufficient statistics of one trial and the posterior they imply. A model is r: [S*A] (index s*A + a)
// and p: [S*A*S] (index (s*A + a)*S + s').
struct MdpPosterior {
  int32_t states = 0;
  int32_t actions = 0;
  double prior_mean = 1.0;       // reward means ~ N(prior_mean, 1 / prior_precision)
  double prior_precision = 1.0;
  double prior_alpha = 1.0;      // next states ~ Dirichlet(prior_alpha, ..., prior_alpha)
  std::vector<int32_t> visits;       // [S*A] rewards observed at (s, a)
  std::vector<double> reward_sum;    // [S*A]
  std::vector<int32_t> next_counts;  // [S*A*S] observed transitions (s, a) -> s'
  std::vector<int32_t> next_total;   // [S*A] sum of next_counts over s'

  MdpPosterior(int32_t states_, int32_t actions_);
  void clear();  // forget the observations, keep the prior
  void observe_reward(int32_t s, int32_t a, double reward);
  void observe_transition(int32_t s, int32_t a, int32_t next);

  double reward_mean(int32_t s, int32_t a) const;       // (tau0 m0 + R) / (tau0 + n)
  double reward_precision(int32_t s, int32_t a) const;  // tau0 + n
  // Posterior means: r = reward_mean, p = (alpha0 + c) / (S alpha0 + total).
  void mean_model(double* r, double* p) const;
  // One MDP drawn from the posterior.
  void sample_model(RandomStream& rs, double* r, double* p) const;
};

// UCRL2's inner maximisation: the distribution within L1 distance `radius` of p_hat that maximises
// sum p v (mass radius / 2 moved onto the best state, taken from the worst states first).
// order: [S] states sorted by v, highest first. Writes p_out: [S] and returns sum p_out v.
double optimistic_transition(int32_t states, const double* p_hat, double radius, const double* v,
                             const int32_t* order, double* p_out);

// Backward induction over the `steps` remaining steps of an episode (steps <= max_steps); after a solve,
// q(k) is the Q table [S*A] of the k-th remaining step (k = 0 is the current step), and the value after
// the last step is 0.
class FiniteHorizonPlanner {
 public:
  FiniteHorizonPlanner(int32_t states, int32_t actions, int32_t max_steps);

  // One model: Q_k(s, a) = r(s, a) + sum_s' p(s'|s, a) V_{k+1}(s').
  void solve(const double* r, const double* p, int32_t steps);
  // Optimistic envelope of `samples` models (r: [samples*S*A], p: [samples*S*A*S]): each model is solved
  // on its own and Q_k(s, a) is the largest of their Q_k(s, a).
  void solve_envelope(const double* r, const double* p, int32_t samples, int32_t steps);
  // Extended value iteration: rewards r + r_bonus, transitions the best within L1 radius[s*A + a] of p.
  void solve_extended(const double* r, const double* r_bonus, const double* p, const double* radius, int32_t steps);

  const double* q(int32_t k) const { return q_.data() + static_cast<size_t>(k) * states_ * actions_; }
  double value(int32_t k, int32_t s) const;  // max_a q(k)[s*A + a]

 private:
  // Backward induction of one model into `q`: [max_steps, S, A].
  void solve_into(const double* r, const double* p, int32_t steps, double* q);

  int32_t states_;
  int32_t actions_;
  int32_t max_steps_;
  std::vector<double> q_;       // [max_steps, S, A]
  std::vector<double> q_tmp_;   // [max_steps, S, A] one sample's Q in solve_envelope
  std::vector<double> v_;       // [S] value of the step after the one being backed up
  std::vector<int32_t> order_;  // [S] states by v_, highest first (extended value iteration)
  std::vector<double> p_opt_;   // [S] scratch for the optimistic transition
};

}  // namespace rl2
