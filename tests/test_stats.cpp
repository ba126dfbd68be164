// Mean/standard error, the Student-t CDF and the one-sided Welch test against reference values
// (computed with scipy.stats 1.x: t.cdf and ttest_ind(equal_var=False, alternative='less')).
#include <gtest/gtest.h>

#include <cmath>

#include "rl2/stats/stats.hpp"

namespace rl2 {
namespace {

TEST(Stats, MeanStderr) {
  const MeanStderr m = mean_stderr({1, 2, 3, 4, 5});
  EXPECT_DOUBLE_EQ(m.mean, 3.0);
  EXPECT_NEAR(m.stderr_, std::sqrt(2.5 / 5), 1e-15);
  EXPECT_EQ(mean_stderr({7}).stderr_, 0.0);
}

TEST(Stats, StudentTCdfMatchesReference) {
  EXPECT_NEAR(student_t_cdf(2.0, 10), 0.9633059826146299, 1e-12);
  EXPECT_NEAR(student_t_cdf(-1.5, 5), 0.09695184012123664, 1e-12);
  EXPECT_NEAR(student_t_cdf(1.96, 1e6), 0.9750019662073651, 1e-10);
  EXPECT_NEAR(student_t_cdf(0.3, 1), 0.5927735790777423, 1e-12);
  EXPECT_NEAR(student_t_cdf(-4, 2.5), 0.019506487920659125, 1e-12);
  EXPECT_DOUBLE_EQ(student_t_cdf(0.0, 3), 0.5);
}

TEST(Stats, WelchOneSided) {
  EXPECT_NEAR(welch_p_less({1, 2, 3, 4, 5}, {2, 3, 4, 5, 6.5}), 0.16363019287120228, 1e-10);
  EXPECT_NEAR(welch_p_less({1, 2, 3}, {1, 2, 3}), 0.5, 1e-12);
  EXPECT_LT(welch_p_less({0, 1, 0, 1, 0, 1}, {10, 11, 10, 11, 10, 11}), 1e-6);
}

TEST(Stats, MarksTheBestAndTheIndistinguishable) {
  const std::vector<std::vector<double>> rows = {
      {10, 11, 10, 11, 10, 11}, {10, 11, 10, 11, 10, 11.5}, {0, 1, 0, 1, 0, 1}};
  const std::vector<bool> marks = mark_not_worse_than_best(rows);
  EXPECT_TRUE(marks[0]);   // not significantly below the best
  EXPECT_TRUE(marks[1]);   // the best
  EXPECT_FALSE(marks[2]);  // clearly worse
}

}  // namespace
}  // namespace rl2
