// Gittins index tables against the published Beta(1,1) value and the bisection references, their shape
// (monotone in successes, failures and pulls left), and the exact Bayes-optimal bandit value.
#include <gtest/gtest.h>

#include <cmath>

#include "rl2/baselines/bayes_optimal.hpp"
#include "rl2/baselines/gittins.hpp"
#include "rl2/core/check.hpp"

namespace rl2 {
namespace {

// Gittins, Glazebrook & Weber (2011), table of Bernoulli indices: Beta(1,1) at γ = 0.9 is 0.7029.
TEST(Gittins, PublishedIndexOfUniformPriorAtDiscount09) {
  EXPECT_NEAR(gittins_index_bisect(1, 1, 0.9), 0.7029, 5e-4);
  const GittinsTable table(20, 0.9);
  EXPECT_NEAR(table.index(1, 1), 0.7029, 5e-4);
}

// With one pull left there is nothing to learn for: the index is the posterior mean.
TEST(Gittins, FiniteHorizonOnePullIsPosteriorMean) {
  const int n = 40;
  const FiniteHorizonGittinsTable table(n);
  for (int d = 0; d < n; ++d) {
    for (int a = 1; a <= d + 1; ++a) {
      const int b = d + 2 - a;
      const double mean = static_cast<double>(a) / (a + b);
      EXPECT_NEAR(table.index(a, b, 1), mean, 1e-9) << a << "," << b;
      EXPECT_NEAR(finite_horizon_gittins_index_bisect(a, b, 1), mean, 1e-9) << a << "," << b;
    }
  }
}

// The λ-grid table and the per-state bisection solve the same truncated problem (the reference is cut
// at the table's depth), so they differ only by the grid's interpolation: measured max 3e-5 here.
TEST(Gittins, DiscountedTableMatchesBisection) {
  const int n = 40;
  for (double gamma : {0.7, 0.9, 0.99}) {
    const GittinsTable table(n, gamma);
    for (int d = 0; d <= n; d += 3) {
      for (int a = 1; a <= d + 1; a += 1 + d / 5) {
        const int b = d + 2 - a;
        EXPECT_NEAR(table.index(a, b), gittins_index_bisect(a, b, gamma, table.horizon() - d), 1e-4)
            << "gamma " << gamma << " state " << a << "," << b;
      }
    }
  }
}

// Same for the finite-horizon table (measured max over all states of this table: 2e-5).
TEST(Gittins, FiniteHorizonTableMatchesBisection) {
  const int n = 60;
  const FiniteHorizonGittinsTable table(n);
  for (int m : {1, 2, 3, 5, 8, 13, 21, 34, 60}) {
    for (int d = 0; d + m <= n; d += 4) {
      for (int a = 1; a <= d + 1; a += 1 + d / 4) {
        const int b = d + 2 - a;
        EXPECT_NEAR(table.index(a, b, m), finite_horizon_gittins_index_bisect(a, b, m), 1e-4)
            << "state " << a << "," << b << " pulls left " << m;
      }
    }
  }
}

// A success raises the index and a failure lowers it. Neighbouring indices differ by > 1e-3 at these
// depths, far above the table error, so strict inequalities are safe.
TEST(Gittins, IndexIncreasesWithSuccessesAndDecreasesWithFailures) {
  const int n = 40;
  const GittinsTable discounted(n, 0.95);
  const FiniteHorizonGittinsTable finite(n);
  for (int d = 0; d < n; ++d) {
    for (int a = 1; a <= d + 1; ++a) {
      const int b = d + 2 - a;
      EXPECT_GT(discounted.index(a + 1, b), discounted.index(a, b)) << a << "," << b;
      EXPECT_LT(discounted.index(a, b + 1), discounted.index(a, b)) << a << "," << b;
      for (int m = 1; d + 1 + m <= n; ++m) {
        EXPECT_GT(finite.index(a + 1, b, m), finite.index(a, b, m)) << a << "," << b << " m " << m;
        EXPECT_LT(finite.index(a, b + 1, m), finite.index(a, b, m)) << a << "," << b << " m " << m;
      }
    }
  }
}

// More pulls left make learning worth more: the index is at least the one-pull index (the mean), and
// at the prior it grows strictly with the horizon.
TEST(Gittins, MoreRemainingPullsRaiseTheIndex) {
  const int n = 40;
  const FiniteHorizonGittinsTable table(n);
  for (int d = 0; d < n; ++d) {
    for (int a = 1; a <= d + 1; ++a) {
      const int b = d + 2 - a;
      for (int m = 2; d + m <= n; ++m) EXPECT_GE(table.index(a, b, m), table.index(a, b, 1)) << a << "," << b;
    }
  }
  for (int m = 2; m <= n; ++m) EXPECT_GT(table.index(1, 1, m), table.index(1, 1, m - 1)) << m;
}

TEST(BayesOptimal, FiveArmsTenPulls) {
  // DESIGN.md section 5: the ceiling for the k = 5, n = 10 bandit is 6.660.
  EXPECT_NEAR(bayes_optimal_bandit_total(5, 10), 6.660, 5e-4);
}

TEST(BayesOptimal, HandCheckableCases) {
  // One arm: every pull pays E[p] = 1/2 whatever was seen (the posterior mean averages back to 1/2).
  EXPECT_NEAR(bayes_optimal_bandit_total(1, 7), 3.5, 1e-12);
  // Two arms, one pull: 1/2.
  EXPECT_NEAR(bayes_optimal_bandit_total(2, 1), 0.5, 1e-12);
  // Two arms, two pulls: the first pays 1/2. After a success (prob 1/2) stay: mean 2/3; after a failure
  // switch to the fresh arm: 1/2 (staying would give 1/3). Total 1/2 + 1/2 * 2/3 + 1/2 * 1/2 = 13/12.
  EXPECT_NEAR(bayes_optimal_bandit_total(2, 2), 13.0 / 12.0, 1e-12);
  EXPECT_EQ(bayes_optimal_bandit_total(3, 0), 0.0);
}

TEST(BayesOptimal, ArmsBeyondThePullsChangeNothing) {
  // Solved with every arm in the state, the value for arms > pulls equals the arms = pulls value.
  for (int pulls = 1; pulls <= 4; ++pulls)
    for (int arms = pulls + 1; arms <= pulls + 3; ++arms)
      EXPECT_DOUBLE_EQ(detail::bayes_optimal_bandit_total_all_arms(arms, pulls), bayes_optimal_bandit_total(pulls, pulls))
          << arms << " arms, " << pulls << " pulls";
  // ...and more arms than that do help while arms < pulls.
  EXPECT_GT(bayes_optimal_bandit_total(3, 4), bayes_optimal_bandit_total(2, 4));
  // The ceilings of the paper's n = 10 bandits (the reproduce issue): k = 10 and k = 50 share 6.714.
  EXPECT_NEAR(bayes_optimal_bandit_total(10, 10), 6.714, 5e-4);
  EXPECT_EQ(bayes_optimal_bandit_total(50, 10), bayes_optimal_bandit_total(10, 10));
}

TEST(BayesOptimal, RejectsLargeProblems) {
  EXPECT_THROW(bayes_optimal_bandit_total(50, 500), InputError);
  EXPECT_THROW(bayes_optimal_bandit_total(0, 5), InputError);
}

}  // namespace
}  // namespace rl2
