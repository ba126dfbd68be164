// The bandit baselines: determinism, the random policy's known mean, the Bayes-optimal ceiling, a clear
// margin over random for the good policies, and input errors. Fixed seeds; each margin is stated.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "rl2/baselines/baselines.hpp"
#include "rl2/baselines/bayes_optimal.hpp"
#include "rl2/core/check.hpp"
#include "stat_check.hpp"

namespace rl2 {
namespace {

BaselineOptions small_options(int64_t instances, uint64_t seed = 1) {
  BaselineOptions opt;
  opt.seed = seed;
  opt.instances = instances;
  opt.tune_instances = instances;
  return opt;
}

TEST(BanditBaselines, PolicyNamesFollowThePaperColumns) {
  const std::vector<std::string> expected = {"random", "gittins", "ts", "ots", "ucb1", "eps-greedy", "greedy"};
  EXPECT_EQ(bandit_policies(), expected);
}

TEST(BanditBaselines, SameSeedGivesIdenticalTotals) {
  const BanditParams params{5, 20};
  for (const auto& policy : bandit_policies()) {
    const BaselineResult a = run_bandit_baseline(params, policy, small_options(64));
    const BaselineResult b = run_bandit_baseline(params, policy, small_options(64));
    const BaselineResult other = run_bandit_baseline(params, policy, small_options(64, 2));
    EXPECT_EQ(a.totals, b.totals) << policy;
    EXPECT_EQ(a.hyper, b.hyper) << policy;
    EXPECT_EQ(a.hyper_note, b.hyper_note) << policy;
    EXPECT_NE(a.totals, other.totals) << policy;  // other tasks: 64 equal totals by chance is impossible
    EXPECT_EQ(a.totals.size(), 64u) << policy;
  }
}

TEST(BanditBaselines, RandomAveragesHalfThePulls) {
  // E[p] = 1/2 for p ~ U[0,1], so a random policy's expected total is n/2 exactly. Margin: 4 stderr.
  const BaselineResult r = run_bandit_baseline(BanditParams{5, 10}, "random", small_options(300));
  EXPECT_TRUE(test::stat_near("bandit random mean", r.mean, 5.0, 4.0 * r.stderr_, r.stderr_));
  EXPECT_TRUE(r.hyper_name.empty());
}

TEST(BanditBaselines, NoPolicyBeatsTheBayesOptimalCeiling) {
  const BanditParams params{5, 10};
  const double ceiling = bayes_optimal_bandit_total(5, 10);  // 6.660
  const BaselineResult random = run_bandit_baseline(params, "random", small_options(300));
  for (const auto& policy : bandit_policies()) {
    const BaselineResult r = run_bandit_baseline(params, policy, small_options(300));
    // The evaluation instances are not the tuning ones, so a mean above the ceiling by more than 3 stderr
    // (~0.2 here) would mean an evaluation bug.
    EXPECT_TRUE(test::stat_bound(policy + " below the ceiling", r.mean, ceiling + 3.0 * r.stderr_, false, r.stderr_));
    if (policy == "gittins" || policy == "ucb1" || policy == "greedy") {
      // These reach ~6.6 against random's 5.0; a 1.0 margin is > 5 stderr of the difference (~0.18).
      EXPECT_TRUE(test::stat_bound(policy + " above random + 1", r.mean, random.mean + 1.0, true,
                                   std::hypot(r.stderr_, random.stderr_)));
    }
  }
}

TEST(BanditBaselines, GittinsTriesBothVariants) {
  const BaselineResult r = run_bandit_baseline(BanditParams{5, 10}, "gittins", small_options(100));
  ASSERT_EQ(r.grid.size(), 10u);  // nine discounts and the finite-horizon variant
  const auto finite =
      std::count_if(r.grid.begin(), r.grid.end(), [](const GridPoint& g) { return g.note == "finite-horizon"; });
  EXPECT_EQ(finite, 1);
  const auto best = std::max_element(r.grid.begin(), r.grid.end(),
                                     [](const GridPoint& x, const GridPoint& y) { return x.tune_mean < y.tune_mean; });
  EXPECT_EQ(r.hyper, best->value);
  EXPECT_EQ(r.hyper_note, best->note);
}

TEST(BanditBaselines, UnknownPolicyThrowsInputError) {
  try {
    run_bandit_baseline(BanditParams{5, 10}, "softmax", small_options(10));
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("softmax"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("eps-greedy"), std::string::npos);  // lists the valid names
  }
  EXPECT_THROW(run_bandit_baseline(BanditParams{0, 10}, "random", small_options(10)), InputError);
}

}  // namespace
}  // namespace rl2
