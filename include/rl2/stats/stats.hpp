// Summary statistics and the significance test the paper's tables use.
#pragma once

#include <vector>

namespace rl2 {

struct MeanStderr {
  double mean = 0.0;
  double stderr_ = 0.0;  // sample standard deviation / sqrt(n); 0 for n < 2
};
MeanStderr mean_stderr(const std::vector<double>& x);

// One-sided Welch t-test of H0: mean(a) >= mean(b) against H1: mean(a) < mean(b).
// Returns the p-value (small p: a is significantly worse than b). Uses the Student-t CDF with the
// Welch-Satterthwaite degrees of freedom.
double welch_p_less(const std::vector<double>& a, const std::vector<double>& b);

// Student-t cumulative distribution P(T <= t) with `df` degrees of freedom (df > 0).
double student_t_cdf(double t, double df);

// Marks a table row as the paper does: best[i] is true for the highest mean and for every entry not
// significantly worse than it (one-sided Welch t-test at level alpha).
std::vector<bool> mark_not_worse_than_best(const std::vector<std::vector<double>>& samples, double alpha = 0.05);

}  // namespace rl2
