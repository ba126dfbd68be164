// Helpers shared by the numeric tests of the policy networks (test_gru.cpp, test_encoder.cpp): fixed-seed
// test data and norm-wise relative errors.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
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

}  // namespace rl2::test
