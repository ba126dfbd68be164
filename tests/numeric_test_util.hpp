// Helpers shared by the numeric tests of the policy networks (test_gru.cpp, test_encoder.cpp): fixed-seed
// test data and norm-wise relative errors.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "rl2/core/rng.hpp"

namespace rl2::test {

using VecD = std::vector<double>;
using VecF = std::vector<float>;

// Test data: uniform in (-scale, scale), from a purpose value no library stream uses.
inline VecF random_vec(size_t n, uint64_t seed, float scale = 1.0f) {
  RandomStream rs(seed, 7, 0, static_cast<Purpose>(250));
  VecF v(n);
  for (auto& e : v) e = static_cast<float>(scale * uniform_signed(rs.next_u32()));
  return v;
}

inline VecD to_double(const VecF& v) { return VecD(v.begin(), v.end()); }

// ||a − b||₂ / max(||a||₂, ||b||₂, tiny).
template <class A, class B>
double rel_err(const A* a, const B* b, size_t n) {
  double d = 0, na = 0, nb = 0;
  for (size_t i = 0; i < n; ++i) {
    const double x = static_cast<double>(a[i]), y = static_cast<double>(b[i]);
    d += (x - y) * (x - y);
    na += x * x;
    nb += y * y;
  }
  return std::sqrt(d) / std::max({std::sqrt(na), std::sqrt(nb), 1e-30});
}
template <class A, class B>
double rel_err(const std::vector<A>& a, const std::vector<B>& b) {
  EXPECT_EQ(a.size(), b.size());
  return rel_err(a.data(), b.data(), std::min(a.size(), b.size()));
}

template <class Real>
double dot(const std::vector<Real>& a, const std::vector<Real>& b) {
  double s = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) s += static_cast<double>(a[i]) * static_cast<double>(b[i]);
  return s;
}

// Whether two Adam updates of the same parameters agree, element by element (PPO's policy steps on two
// backends). A parameter whose gradient is float noise moves by about lr per Adam step with the noise's
// sign, so two correct backends may disagree on it by up to 2 lr per step: a norm-wise tolerance on the
// whole step cannot tell that from a bug. The rule instead:
//   1. no element's steps differ by more than Adam's reach, 4 lr t (|m_hat / sqrt(v_hat)| stays below
//      about 3.2 even for a lone spike after zeros), t the Adam steps taken;
//   2. the elements that moved consistently (|step_b| >= lr t / 2: gradients of one sign, well above the
//      noise) are at least half of all, and there the steps agree norm-wise within rel_tol.
// Returns "" when they agree, else what failed.
inline std::string adam_steps_disagree(const VecF& step_a, const VecF& step_b, double lr, int64_t t,
                                       double rel_tol) {
  const double reach = 4.0 * lr * static_cast<double>(t), moved = 0.5 * lr * static_cast<double>(t);
  VecF a_moved, b_moved;
  for (size_t i = 0; i < step_a.size(); ++i) {
    const double d = std::fabs(static_cast<double>(step_a[i]) - step_b[i]);
    if (!(d <= reach)) return "element " + std::to_string(i) + " differs by " + std::to_string(d) + " > 4 lr t";
    if (std::fabs(step_b[i]) >= moved) {
      a_moved.push_back(step_a[i]);
      b_moved.push_back(step_b[i]);
    }
  }
  if (2 * b_moved.size() < step_b.size())
    return "only " + std::to_string(b_moved.size()) + " of " + std::to_string(step_b.size()) + " elements moved";
  const double e = rel_err(a_moved.data(), b_moved.data(), a_moved.size());
  return e <= rel_tol ? "" : "the consistently moved elements differ by " + std::to_string(e) + " relative";
}

}  // namespace rl2::test
