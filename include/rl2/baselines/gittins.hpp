// Gittins indices of a Bernoulli arm with a Beta(a, b) posterior, by calibration against a standard arm
// that pays λ per pull (DESIGN.md section 5; Gittins, Glazebrook & Weber 2011, sections 2.5 and 8.4):
//   discounted:      V(a,b;λ)   = max(λ/(1-γ), p + γ[p V(a+1,b;λ) + (1-p) V(a,b+1;λ)]),   p = a/(a+b)
//   finite horizon:  W(a,b,m;λ) = max(mλ, p[1 + W(a+1,b,m-1;λ)] + (1-p) W(a,b+1,m-1;λ)),  W(.,.,0;λ) = 0
// The index is the λ at which retiring (first term) and continuing (second term) tie. The discounted tree
// is cut at a depth where γ^depth is negligible and valued there as if p were known: max(λ, p)/(1-γ).
//
// The tables hold every state reachable within n pulls and are built once per setting. For a grid of λ
// values each table runs ONE backward DP over all states (the λ lanes vectorise), carrying the value and
// its right derivative in λ; f(λ) = continue - retire is convex, piecewise linear and strictly decreasing,
// so in the grid interval where f changes sign the larger of the two tangent-line roots is exact when the
// interval holds at most one kink of f (and a lower bound otherwise; measured errors in gittins.cpp). The
// bisection functions are slow, obvious references for the tests.
#pragma once

#include <cstdint>
#include <vector>

namespace rl2 {

// Depth below a state at which the discounted DP is cut: the smallest D with γ^D <= 1e-2.
int gittins_truncation_depth(double gamma);

// Discounted Gittins indices for all (a, b) with a, b >= 1 and a + b - 2 <= max_pulls.
class GittinsTable {
 public:
  GittinsTable(int max_pulls, double gamma);
  // a = 1 + successes, b = 1 + failures; a + b - 2 <= max_pulls.
  double index(int a, int b) const {
    const int64_t d = a + b - 2;
    return index_[d * (d + 1) / 2 + (a - 1)];
  }
  int max_pulls() const { return max_pulls_; }
  double gamma() const { return gamma_; }
  // Depth (a + b - 2) of the cut: every state's subtree reaches it, so it is >= its own truncation depth.
  int horizon() const { return horizon_; }

 private:
  int max_pulls_;
  double gamma_;
  int horizon_;
  std::vector<double> index_;  // [(n+1)(n+2)/2]: state (a, b) at d(d+1)/2 + a - 1, d = a + b - 2
};

// Finite-horizon (undiscounted) Gittins indices for all (a, b, m) with m >= 1 pulls left (this one
// included) and a + b - 2 + m <= max_pulls. Roughly max_pulls^3/6 floats (84 MB for 500 pulls).
class FiniteHorizonGittinsTable {
 public:
  explicit FiniteHorizonGittinsTable(int max_pulls);
  double index(int a, int b, int m) const {
    const int d = a + b - 2;
    const double p = static_cast<double>(a) / (a + b);
    return p + static_cast<double>(excess_[depth_offset_[d] + int64_t{a - 1} * (max_pulls_ - d) + (m - 1)]);
  }
  int max_pulls() const { return max_pulls_; }

 private:
  int max_pulls_;
  // Start of depth d's block; inside it arm state a - 1 owns max_pulls - d consecutive entries m = 1, 2, ...
  // so that a policy stepping m down one pull at a time reads neighbouring memory.
  std::vector<int64_t> depth_offset_;  // [max_pulls + 1]
  // index - a/(a+b) (>= 0): stored as a float offset from the exactly computed mean, so the one-pull
  // index is the posterior mean to double precision and the rest keeps ~1e-8 absolute precision.
  std::vector<float> excess_;
};

// Reference: discounted index of Beta(a, b) by bisection on λ, each λ valued by DP over the subtree of
// (a, b) cut `depth` pulls below it (depth >= 1; default gittins_truncation_depth(gamma)).
double gittins_index_bisect(int a, int b, double gamma, int depth = 0);

// Reference: finite-horizon index of Beta(a, b) with m >= 1 pulls left, by bisection on λ.
double finite_horizon_gittins_index_bisect(int a, int b, int m);

}  // namespace rl2
