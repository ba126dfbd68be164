// RL² learns: a small GRU trained by TRPO on bandits k=5, n=10 (fixed seed) must beat what any policy
// could reach with a broken gradient or a broken hidden-state carry.
//
// Bounds for this setting (1000+ instances each, docs/results/rl2_cpu.md): random 5.0; no learning
// (broken gradient) stays at 5.0; a policy whose hidden state does not carry sees only (a, r) of the
// last pull, and the best such rule (win-stay, lose-shift to another arm; simulated over 200k trials)
// reaches 6.29; greedy 6.63 and the Bayes-optimal ceiling 6.66. We require the held-out mean over 10000
// instances (standard error ~0.023) to clear 6.45, 7 standard errors above the memoryless bound, by at
// least 2 standard errors. The run is the same bytes on any thread count (core/chunks.hpp); across BLAS
// kernels it differs in the last bits and then in its trajectory. Observed (held-out mean ± stderr):
// OPENBLAS_CORETYPE Haswell and Zen 6.573 ± 0.023, Prescott 6.551 ± 0.023, at 1 and 2 threads alike
// (docs/design.md, "Reproducibility").
#include <gtest/gtest.h>

#include <iostream>

#include "rl2/core/rng.hpp"
#include "rl2/stats/stats.hpp"
#include "rl2/train/learner.hpp"
#include "stat_check.hpp"

namespace rl2 {
namespace {

TEST(Learning, SmallBanditPolicyBeatsEveryMemorylessPolicy) {
  TrainConfig cfg;
  cfg.env.kind = EnvKind::kBandit;
  cfg.env.bandit = {5, 10};
  cfg.hidden = 64;
  cfg.steps_per_iter = 5000;
  cfg.iterations = 60;
  cfg.seed = 1;
  auto learner = make_cpu_learner(cfg);
  double first_return = 0.0, last_return = 0.0;
  for (int64_t i = 0; i < cfg.iterations; ++i) {
    const IterationStats s = learner->iterate();
    ASSERT_NE(s.update.status, UpdateStatus::kNonFinite) << "iteration " << i;
    if (i == 0) first_return = s.mean_return;
    last_return = s.mean_return;
  }
  const MeanStderr eval = mean_stderr(learner->evaluate(10000, kEvalStream));
  std::cout << "held-out mean " << eval.mean << " +- " << eval.stderr_ << " (first batch " << first_return
            << ", last batch " << last_return << ")\n";
  EXPECT_LT(first_return, 5.5);  // it starts near random
  EXPECT_GT(last_return, first_return + 1.0);
  EXPECT_TRUE(test::stat_bound("RL2 held-out mean - 2 se", eval.mean - 2.0 * eval.stderr_, 6.45, true, eval.stderr_));
  EXPECT_TRUE(test::stat_bound("RL2 below the ceiling", eval.mean, 6.66 + 4 * eval.stderr_, false, eval.stderr_));
}

}  // namespace
}  // namespace rl2
