// Statistical checks that print what they saw: each passes or fails as EXPECT_NEAR / EXPECT_GE would, and
// prints one line "[stat] NAME: observed O, bound B, clearance C se" where C is how many standard errors
// the observed value stands clear of the nearest bound. The suite's rule (docs/design.md,
// "Reproducibility"): C >= 2 on every CPU type and thread count we test, so no statistical test flakes
// on another machine; grep '\[stat\]' in a test log lists them all.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>

namespace rl2::test {

// |observed - expected| <= tol; se: the observed value's standard error.
inline ::testing::AssertionResult stat_near(const std::string& name, double observed, double expected, double tol,
                                            double se) {
  const double clearance = (tol - std::fabs(observed - expected)) / se;
  std::printf("[stat] %s: observed %.6g, bound %.6g +- %.6g, clearance %.2f se\n", name.c_str(), observed, expected,
              tol, clearance);
  if (std::fabs(observed - expected) <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << name << ": " << observed << " is not within " << tol << " of " << expected;
}

// observed >= bound (above = true) or observed <= bound (above = false).
inline ::testing::AssertionResult stat_bound(const std::string& name, double observed, double bound, bool above,
                                             double se) {
  const double clearance = (above ? observed - bound : bound - observed) / se;
  std::printf("[stat] %s: observed %.6g, %s %.6g, clearance %.2f se\n", name.c_str(), observed,
              above ? "at least" : "at most", bound, clearance);
  if (clearance >= 0.0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << name << ": " << observed << (above ? " < " : " > ") << bound;
}

}  // namespace rl2::test
