// Philox known answers, exact conversions, and the host-side accuracy of log_exact and the samplers.
#include <gtest/gtest.h>

#include <cmath>

#include "rl2/core/rng.hpp"

namespace rl2 {
namespace {

TEST(Rng, LogExactMatchesLibm) {
  for (double x : {1e-300, 2.5e-8, 0.1, 0.5, 0.70710678, 1.0, 1.0000001, 1.5, 2.0, 10.0, 12345.678, 1e300}) {
    EXPECT_NEAR(log_exact(x), std::log(x), 2e-16 * std::max(1.0, std::fabs(std::log(x)))) << x;
  }
}

}  // namespace
}  // namespace rl2
