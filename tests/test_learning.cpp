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

#include <cmath>
#include <iostream>

#include "rl2/core/rng.hpp"
#include "rl2/stats/stats.hpp"
#include "rl2/train/learner.hpp"
#include "rl2/train/maze_eval.hpp"
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

// The maze ladder's first rung (docs/maze.md, "Training ladder"): a 5-cell corridor, the start at one end
// with a random heading, the target (red) at the other. The agent must turn until it sees the target and
// then walk to it: the encoder's gradient, the reward and the masking of finished trials at work. Held out,
// the untrained policy rarely gets there within the horizon (a random walk that bumps the walls), the
// trained one always, along a path near the shortest (at most 6 turns, then 14 steps forward).
// Observed (seed 1, 500 held-out configurations): untrained 5% of episodes 1, 77 steps per success;
// trained 100%, 18.2 steps (OpenBLAS SkylakeX kernels), 99.0% and 18.0 (OPENBLAS_CORETYPE=Haswell),
// 99.8% and 19.2 (Prescott): at least 4 standard errors clear of every bound.
TEST(Learning, MazeCorridorAgentWalksToTheTargetItSees) {
  TrainConfig cfg;
  cfg.env.kind = EnvKind::kMaze;
  cfg.env.maze = MazeParams{5, 2, 100, 1000, Maze::kCorridor};
  cfg.hidden = 64;
  cfg.steps_per_iter = 2000;
  cfg.iterations = 40;
  cfg.algo = "ppo";
  cfg.ppo.epochs = 4;
  cfg.gae_lambda = 0.95;
  cfg.entropy_coef = 0.01;
  cfg.seed = 1;
  auto learner = make_cpu_learner(cfg);
  const EnvConfig held_out = maze_eval_env(cfg.env, false);
  const int64_t n = 500;
  auto first_episode = [&](const char* what) {
    const MazeMetrics m = maze_metrics("trained", held_out, learner->evaluate(held_out, n, kEvalStream));
    const MazeEpisodeMetrics& e = m.episodes[0];
    std::cout << what << ": episode 1 success " << e.success_pct << "%, " << e.avg_len_success << " +- "
              << e.avg_len_se << " steps per success; improved " << m.improved_pct << "%\n";
    return e;
  };
  const MazeEpisodeMetrics before = first_episode("untrained");
  for (int64_t i = 0; i < cfg.iterations; ++i) {
    const IterationStats s = learner->iterate();
    ASSERT_NE(s.update.status, UpdateStatus::kNonFinite) << "iteration " << i;
  }
  const MazeEpisodeMetrics after = first_episode("trained");
  // Success proportions over n trials: standard error at most sqrt(0.25 / n) = 0.022.
  const double se_pct = 100.0 * std::sqrt(0.25 / static_cast<double>(n));
  EXPECT_TRUE(test::stat_bound("untrained corridor success % (a random walk)", before.success_pct, 50.0, false, se_pct));
  EXPECT_TRUE(test::stat_bound("trained corridor success %", after.success_pct, 90.0, true, se_pct));
  // Steps per successful episode: the shortest is at most 6 turns + 14 steps = 20, a random walk's over 50.
  EXPECT_TRUE(test::stat_bound("trained steps per success", after.avg_len_success, 25.0, false, after.avg_len_se));
}

}  // namespace
}  // namespace rl2
