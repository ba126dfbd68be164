// The exact Bayes-optimal expected total reward of a k-armed Bernoulli bandit with independent U[0,1]
// (Beta(1,1)) arm priors over n pulls (DESIGN.md section 5): the ceiling no policy beats on average.
//   V(S) = max over arms i of  p_i (1 + V(S with s_i + 1)) + (1 - p_i) V(S with f_i + 1),  p_i = (s_i+1)/(s_i+f_i+2)
// with V = 0 once n pulls are spent. Arms are exchangeable a priori, so the state S is the sorted multiset
// of per-arm (successes, failures) counts, memoised. Exponential in k·n: meant for small cases (k=5, n=10).
#pragma once

namespace rl2 {

// arms >= 1, pulls >= 0, and a small state space: min(arms, pulls)·pulls <= 100, since arms beyond the
// number of pulls change nothing (throws rl2::InputError otherwise).
double bayes_optimal_bandit_total(int arms, int pulls);

namespace detail {
// The same without the arms = min(arms, pulls) reduction (its test compares the two).
double bayes_optimal_bandit_total_all_arms(int arms, int pulls);
}  // namespace detail

}  // namespace rl2
