// Mean, standard error, Student-t CDF (regularised incomplete beta by Lentz's continued fraction)
// and the one-sided Welch t-test used to mark the paper's tables.
#include "rl2/stats/stats.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "rl2/core/check.hpp"

namespace rl2 {
namespace {

// Continued fraction for the incomplete beta function (modified Lentz), x < (a+1)/(a+b+2).
double beta_cf(double a, double b, double x) {
  constexpr double kTiny = 1e-300;
  double c = 1.0;
  double d = 1.0 - (a + b) * x / (a + 1.0);
  if (std::fabs(d) < kTiny) d = kTiny;
  d = 1.0 / d;
  double h = d;
  for (int m = 1; m <= 1000; ++m) {
    const double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
    d = 1.0 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1.0 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    h *= d * c;
    aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
    d = 1.0 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1.0 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1.0) < 1e-15) break;
  }
  return h;
}

// Regularised incomplete beta I_x(a, b).
double incomplete_beta(double a, double b, double x) {
  if (x <= 0.0) return 0.0;
  if (x >= 1.0) return 1.0;
  const double ln_front = std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
  const double front = std::exp(ln_front);
  if (x < (a + 1.0) / (a + b + 2.0)) return front * beta_cf(a, b, x) / a;
  return 1.0 - front * beta_cf(b, a, 1.0 - x) / b;
}

}  // namespace

MeanStderr mean_stderr(const std::vector<double>& x) {
  MeanStderr r;
  if (x.empty()) return r;
  double sum = 0.0;
  for (double v : x) sum += v;
  r.mean = sum / static_cast<double>(x.size());
  if (x.size() < 2) return r;
  double ss = 0.0;
  for (double v : x) ss += (v - r.mean) * (v - r.mean);
  r.stderr_ = std::sqrt(ss / static_cast<double>(x.size() - 1) / static_cast<double>(x.size()));
  return r;
}

double student_t_cdf(double t, double df) {
  RL2_CHECK(df > 0.0, "degrees of freedom must be positive");
  if (std::isinf(t)) return t > 0 ? 1.0 : 0.0;
  const double tail = 0.5 * incomplete_beta(0.5 * df, 0.5, df / (df + t * t));  // P(T > |t|)
  return t > 0 ? 1.0 - tail : tail;
}

double welch_p_less(const std::vector<double>& a, const std::vector<double>& b) {
  RL2_CHECK(a.size() >= 2 && b.size() >= 2, "Welch's test needs at least two samples on each side");
  const MeanStderr ma = mean_stderr(a), mb = mean_stderr(b);
  const double va = ma.stderr_ * ma.stderr_, vb = mb.stderr_ * mb.stderr_;  // variances of the means
  const double diff = ma.mean - mb.mean;
  if (va + vb == 0.0) return diff < 0.0 ? 0.0 : 1.0;
  const double t = diff / std::sqrt(va + vb);
  const double na = static_cast<double>(a.size()), nb = static_cast<double>(b.size());
  const double df = (va + vb) * (va + vb) / (va * va / (na - 1.0) + vb * vb / (nb - 1.0));
  return student_t_cdf(t, df);
}

std::vector<bool> mark_not_worse_than_best(const std::vector<std::vector<double>>& samples, double alpha) {
  std::vector<bool> marks(samples.size(), false);
  if (samples.empty()) return marks;
  size_t best = 0;
  double best_mean = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < samples.size(); ++i) {
    const double m = mean_stderr(samples[i]).mean;
    if (m > best_mean) {
      best_mean = m;
      best = i;
    }
  }
  for (size_t i = 0; i < samples.size(); ++i) {
    marks[i] = i == best || welch_p_less(samples[i], samples[best]) >= alpha;
  }
  return marks;
}

}  // namespace rl2
