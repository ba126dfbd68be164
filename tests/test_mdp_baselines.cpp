// Tabular-MDP baselines: the planners against hand-computed values and brute force, UCRL2's inner
// maximisation, the conjugate posterior and the samplers, determinism, common random numbers with
// TabularMdp::step, and statistical checks of the policies (fixed seeds; margins stated per test).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "rl2/baselines/baselines.hpp"
#include "rl2/baselines/mdp_planning.hpp"
#include "rl2/core/check.hpp"
#include "rl2/core/rng.hpp"
#include "rl2/env/tabular_mdp.hpp"
#include "rl2/stats/stats.hpp"
#include "stat_check.hpp"

namespace rl2 {
namespace {

// Two states, two actions. State 0: a0 pays 1 and stays; a1 pays 0 and moves to state 1 w.p. 0.75.
// State 1: a0 pays 3 and stays; a1 pays 0 and returns to 0. Over 3 steps from state 0 the myopic a0
// is wrong: Q_0(0, .) = [1 + 2.5, 0.25 * 2.5 + 0.75 * 6] = [3.5, 5.125] (derivation in the test).
struct TinyMdp {
  std::vector<double> r = {1, 0, 3, 0};                   // [S*A]
  std::vector<double> p = {1, 0, 0.25, 0.75, 0, 1, 1, 0};  // [S*A*S]
};

TEST(MdpPlanning, BackwardInductionTinyMdp) {
  const TinyMdp m;
  FiniteHorizonPlanner planner(2, 2, 3);
  planner.solve(m.r.data(), m.p.data(), 3);
  // Last step: Q = r, so V_2 = [1, 3].
  EXPECT_DOUBLE_EQ(planner.q(2)[0], 1.0);
  EXPECT_DOUBLE_EQ(planner.q(2)[3], 0.0);
  // Middle: Q_1(0) = [1 + 1, 0.25 * 1 + 0.75 * 3] = [2, 2.5]; Q_1(1) = [3 + 3, 0 + 1] = [6, 1].
  EXPECT_DOUBLE_EQ(planner.q(1)[0], 2.0);
  EXPECT_DOUBLE_EQ(planner.q(1)[1], 2.5);
  EXPECT_DOUBLE_EQ(planner.q(1)[2], 6.0);
  EXPECT_DOUBLE_EQ(planner.q(1)[3], 1.0);
  // First: Q_0(0) = [1 + 2.5, 0.25 * 2.5 + 0.75 * 6]; Q_0(1) = [3 + 6, 0 + 2.5].
  EXPECT_DOUBLE_EQ(planner.q(0)[0], 3.5);
  EXPECT_DOUBLE_EQ(planner.q(0)[1], 5.125);
  EXPECT_DOUBLE_EQ(planner.q(0)[2], 9.0);
  EXPECT_DOUBLE_EQ(planner.q(0)[3], 2.5);
  EXPECT_DOUBLE_EQ(planner.value(0, 0), 5.125);
  // Two remaining steps give the same tables as the last two of three.
  planner.solve(m.r.data(), m.p.data(), 2);
  EXPECT_DOUBLE_EQ(planner.q(0)[1], 2.5);
  EXPECT_DOUBLE_EQ(planner.q(1)[2], 3.0);
}

// Expected total of a deterministic time-dependent policy (action[k*S + s]) by propagating the state
// distribution forward: independent of backward induction.
double policy_value(int S, int A, int T, const std::vector<double>& r, const std::vector<double>& p,
                    const std::vector<int>& action, int start) {
  std::vector<double> dist(S, 0.0), next(S);
  dist[start] = 1.0;
  double total = 0.0;
  for (int k = 0; k < T; ++k) {
    std::fill(next.begin(), next.end(), 0.0);
    for (int s = 0; s < S; ++s) {
      const int sa = s * A + action[k * S + s];
      total += dist[s] * r[sa];
      for (int j = 0; j < S; ++j) next[j] += dist[s] * p[sa * S + j];
    }
    dist.swap(next);
  }
  return total;
}

TEST(MdpPlanning, BackwardInductionMatchesBruteForceOverPolicies) {
  // A random MDP with S = 3, A = 2, T = 4: all 2^12 time-dependent deterministic policies.
  constexpr int S = 3, A = 2, T = 4;
  RandomStream rs(7, 0, 0, Purpose::kBaseline);
  MdpPosterior prior(S, A);
  std::vector<double> r(S * A), p(S * A * S);
  prior.sample_model(rs, r.data(), p.data());
  FiniteHorizonPlanner planner(S, A, T);
  planner.solve(r.data(), p.data(), T);
  for (int start = 0; start < S; ++start) {
    double best = -1e300;
    std::vector<int> action(T * S);
    for (int code = 0; code < (1 << (T * S)); ++code) {
      for (int i = 0; i < T * S; ++i) action[i] = (code >> i) & 1;
      best = std::max(best, policy_value(S, A, T, r, p, action, start));
    }
    EXPECT_NEAR(planner.value(0, start), best, 1e-12) << "start " << start;
  }
}

TEST(MdpPlanning, OptimisticTransitionHandCases) {
  const double v[3] = {1, 5, 3};
  const int32_t order[3] = {1, 2, 0};  // by v, highest first
  double out[3];
  // Radius 0.4: 0.2 moves onto state 1, taken from the worst state 0.
  const double p1[3] = {0.2, 0.3, 0.5};
  EXPECT_NEAR(optimistic_transition(3, p1, 0.4, v, order, out), 0.5 * 5 + 0.5 * 3, 1e-15);
  EXPECT_NEAR(out[0], 0.0, 1e-15);
  EXPECT_NEAR(out[1], 0.5, 1e-15);
  EXPECT_NEAR(out[2], 0.5, 1e-15);
  // Radius 0.6: 0.3 onto state 1; the worst state holds only 0.1, the rest comes from state 2.
  const double p2[3] = {0.1, 0.3, 0.6};
  EXPECT_NEAR(optimistic_transition(3, p2, 0.6, v, order, out), 0.6 * 5 + 0.4 * 3, 1e-15);
  EXPECT_NEAR(out[0], 0.0, 1e-15);
  EXPECT_NEAR(out[2], 0.4, 1e-15);
  // A radius of 2 or more allows any distribution: all mass on the best state.
  EXPECT_NEAR(optimistic_transition(3, p2, 3.0, v, order, out), 5.0, 1e-15);
  EXPECT_NEAR(out[1], 1.0, 1e-15);
}

TEST(MdpPlanning, OptimisticTransitionIsValidAndMaximal) {
  constexpr int S = 6;
  RandomStream rs(3, 1, 0, Purpose::kBaseline);
  for (int rep = 0; rep < 200; ++rep) {
    double p_hat[S], v[S], out[S];
    int32_t order[S];
    double total = 0.0;
    for (int j = 0; j < S; ++j) {
      p_hat[j] = sample_gamma(1.0, rs);
      total += p_hat[j];
      v[j] = 10.0 * rs.uniform();
      order[j] = j;
    }
    for (int j = 0; j < S; ++j) p_hat[j] /= total;
    std::sort(order, order + S, [&](int a, int b) { return v[a] > v[b]; });
    const double radius = 1.2 * rs.uniform();
    const double best = optimistic_transition(S, p_hat, radius, v, order, out);
    double sum = 0.0, l1 = 0.0, dot = 0.0, dot_hat = 0.0;
    for (int j = 0; j < S; ++j) {
      EXPECT_GE(out[j], 0.0);
      sum += out[j];
      l1 += std::fabs(out[j] - p_hat[j]);
      dot += out[j] * v[j];
      dot_hat += p_hat[j] * v[j];
    }
    EXPECT_NEAR(sum, 1.0, 1e-12);
    EXPECT_LE(l1, radius + 1e-12);
    EXPECT_NEAR(dot, best, 1e-12);
    EXPECT_GE(best, dot_hat - 1e-12);
    // No distribution obtained by moving mass between two states inside the ball does better.
    for (int trial = 0; trial < 50; ++trial) {
      const int from = static_cast<int>(uniform_int(rs.next_u32(), S));
      const int to = static_cast<int>(uniform_int(rs.next_u32(), S));
      const double moved = std::min(p_hat[from], 0.5 * radius * rs.uniform());
      const double other = dot_hat + moved * (v[to] - v[from]);
      EXPECT_LE(other, best + 1e-12);
    }
  }
}

TEST(MdpPlanning, ExtendedValueIterationWithoutSlackIsBackwardInduction) {
  const TinyMdp m;
  const std::vector<double> zero(4, 0.0);
  FiniteHorizonPlanner a(2, 2, 3), b(2, 2, 3);
  a.solve(m.r.data(), m.p.data(), 3);
  b.solve_extended(m.r.data(), zero.data(), m.p.data(), zero.data(), 3);
  for (int k = 0; k < 3; ++k) {
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(a.q(k)[i], b.q(k)[i], 1e-12);
  }
  // With a radius of 2 the optimistic model may jump to state 1 from anywhere: over 3 steps from
  // state 0, a0 (paying 1, then jumping) and a0 twice in state 1 collect 1 + 3 + 3.
  const std::vector<double> big(4, 2.0);
  b.solve_extended(m.r.data(), zero.data(), m.p.data(), big.data(), 3);
  EXPECT_NEAR(b.value(0, 0), 7.0, 1e-12);
  EXPECT_NEAR(b.value(2, 0), 1.0, 1e-12);
}

TEST(MdpPlanning, EnvelopeTakesTheLargestQ) {
  const TinyMdp m;
  TinyMdp m2;
  m2.r = {2, 0, 0, 0};  // a different model: staying in state 0 pays 2
  std::vector<double> r(m.r), p(m.p);
  r.insert(r.end(), m2.r.begin(), m2.r.end());
  p.insert(p.end(), m2.p.begin(), m2.p.end());
  FiniteHorizonPlanner one(2, 2, 3), two(2, 2, 3), env(2, 2, 3);
  one.solve(m.r.data(), m.p.data(), 3);
  two.solve(m2.r.data(), m2.p.data(), 3);
  env.solve_envelope(r.data(), p.data(), 2, 3);
  for (int k = 0; k < 3; ++k) {
    for (int i = 0; i < 4; ++i) EXPECT_DOUBLE_EQ(env.q(k)[i], std::max(one.q(k)[i], two.q(k)[i]));
  }
}

TEST(MdpPosteriorTest, HandComputedPosterior) {
  MdpPosterior post(2, 1);
  post.observe_reward(0, 0, 2.0);
  post.observe_reward(0, 0, 0.5);
  post.observe_reward(0, 0, -0.25);
  post.observe_transition(0, 0, 1);
  post.observe_transition(0, 0, 1);
  post.observe_transition(0, 0, 0);
  // Prior N(1, 1), three rewards summing to 2.25: mean (1 + 2.25) / 4, precision 4.
  EXPECT_DOUBLE_EQ(post.reward_mean(0, 0), 3.25 / 4.0);
  EXPECT_DOUBLE_EQ(post.reward_precision(0, 0), 4.0);
  EXPECT_DOUBLE_EQ(post.reward_mean(1, 0), 1.0);
  double r[2], p[4];
  post.mean_model(r, p);
  // Dirichlet(1 + [1, 2]) has mean [2, 3] / 5; the unvisited row stays uniform.
  EXPECT_DOUBLE_EQ(p[0], 0.4);
  EXPECT_DOUBLE_EQ(p[1], 0.6);
  EXPECT_DOUBLE_EQ(p[2], 0.5);
  EXPECT_DOUBLE_EQ(r[1], 1.0);

  // Samples: reward ~ N(0.8125, 1/4); p(.|0) ~ Dirichlet(2, 3) with Var p_1 = 3 * 2 / (25 * 6) = 0.04.
  // 20000 draws: tolerances are about 5 standard errors of each moment.
  RandomStream rs(11, 0, 0, Purpose::kBaseline);
  constexpr int kDraws = 20000;
  double sr = 0, sr2 = 0, sp = 0, sp2 = 0, su = 0;
  for (int i = 0; i < kDraws; ++i) {
    post.sample_model(rs, r, p);
    sr += r[0];
    sr2 += r[0] * r[0];
    sp += p[1];
    sp2 += p[1] * p[1];
    su += r[1];
    EXPECT_NEAR(p[0] + p[1], 1.0, 1e-12);
  }
  const double mr = sr / kDraws, mp = sp / kDraws;
  EXPECT_TRUE(test::stat_near("posterior reward mean", mr, 0.8125, 0.02, std::sqrt(0.25 / kDraws)));
  EXPECT_TRUE(test::stat_near("posterior reward variance", sr2 / kDraws - mr * mr, 0.25, 0.015, 0.25 * std::sqrt(2.0 / kDraws)));
  EXPECT_TRUE(test::stat_near("posterior p mean", mp, 0.6, 0.008, std::sqrt(0.04 / kDraws)));
  EXPECT_TRUE(test::stat_near("posterior p variance", sp2 / kDraws - mp * mp, 0.04, 0.003, 0.04 * std::sqrt(2.0 / kDraws)));
  EXPECT_TRUE(test::stat_near("prior reward mean", su / kDraws, 1.0, 0.04, std::sqrt(1.0 / kDraws)));  // unvisited: N(1, 1)
  post.clear();
  EXPECT_DOUBLE_EQ(post.reward_mean(0, 0), 1.0);
}

TEST(MdpPosteriorTest, GammaMoments) {
  // Mean and variance of Gamma(alpha) are both alpha; 40000 draws, tolerance about 5 standard errors.
  for (double alpha : {0.5, 1.0, 3.0, 8.0, 12.5}) {
    RandomStream rs(5, static_cast<uint64_t>(alpha * 10), 0, Purpose::kBaseline);
    constexpr int kDraws = 40000;
    double s = 0, s2 = 0;
    for (int i = 0; i < kDraws; ++i) {
      const double g = sample_gamma(alpha, rs);
      ASSERT_GT(g, 0.0);
      s += g;
      s2 += g * g;
    }
    const double m = s / kDraws, var = s2 / kDraws - m * m;
    EXPECT_TRUE(test::stat_near("gamma mean " + std::to_string(alpha), m, alpha, 5.0 * std::sqrt(alpha / kDraws), std::sqrt(alpha / kDraws)));
    EXPECT_TRUE(test::stat_near("gamma variance " + std::to_string(alpha), var, alpha, 5.0 * std::sqrt((2.0 * alpha * alpha + 6.0 * alpha) / kDraws),
                                std::sqrt((2.0 * alpha * alpha + 6.0 * alpha) / kDraws)));
  }
}

MdpParams small_mdp(int episodes) {
  MdpParams mp;
  mp.episodes = episodes;
  return mp;
}

TEST(MdpBaselines, PolicyNamesAndUnknownPolicy) {
  const std::vector<std::string> expected = {"random", "psrl", "opsrl", "ucrl2", "beb", "eps-greedy", "greedy"};
  EXPECT_EQ(mdp_policies(), expected);
  try {
    run_mdp_baseline(small_mdp(2), "ucrl", BaselineOptions{});
    FAIL() << "no exception";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("ucrl"), std::string::npos);
    EXPECT_NE(msg.find("ucrl2"), std::string::npos);
    EXPECT_NE(msg.find("eps-greedy"), std::string::npos);
  }
}

TEST(MdpBaselines, SameSeedSameTotals) {
  BaselineOptions opt;
  opt.instances = 40;
  opt.tune_instances = 20;
  for (const std::string& policy : mdp_policies()) {
    const BaselineResult a = run_mdp_baseline(small_mdp(3), policy, opt);
    const BaselineResult b = run_mdp_baseline(small_mdp(3), policy, opt);
    EXPECT_EQ(a.totals, b.totals) << policy;
    EXPECT_EQ(a.hyper, b.hyper) << policy;
    ASSERT_EQ(a.totals.size(), 40u);
    opt.seed = 2;
    EXPECT_NE(run_mdp_baseline(small_mdp(3), policy, opt).totals, a.totals) << policy;
    opt.seed = 1;
  }
}

TEST(MdpBaselines, RandomReplaysTheEnvironmentStream) {
  // Random's action at step t is uniform_int(word 2 of block 0 of (seed, trial, t, kBaseline)); replaying
  // those actions through TabularMdp::step on the evaluation trial ids must give the same totals, so the
  // baselines see the RL² evaluation's tasks, rewards and transitions.
  const MdpParams mp = small_mdp(4);
  BaselineOptions opt;
  opt.instances = 6;
  const BaselineResult res = run_mdp_baseline(mp, "random", opt);
  std::vector<float> task(static_cast<size_t>(TabularMdp::task_size(mp)));
  for (int64_t i = 0; i < opt.instances; ++i) {
    const uint64_t trial = kEvalStream + static_cast<uint64_t>(i);
    TabularMdp::sample_task(mp, opt.seed, trial, task.data());
    TabularMdp::State st;
    TabularMdp::reset(mp, task.data(), st);
    double total = 0.0;
    for (int64_t t = 0; t < TabularMdp::trial_length(mp); ++t) {
      const Bits4 b = philox_bits(opt.seed, trial, static_cast<uint32_t>(t), Purpose::kBaseline, 0);
      const int32_t a = static_cast<int32_t>(uniform_int(b.v[2], static_cast<uint32_t>(mp.actions)));
      total += TabularMdp::step(mp, task.data(), st, a, opt.seed, trial).reward;
    }
    EXPECT_EQ(res.totals[static_cast<size_t>(i)], total) << i;
  }
}

TEST(MdpBaselines, RandomEarnsOnePerStep) {
  // mu_sa ~ N(1, 1) independently of the transitions, so a policy that ignores rewards earns 1 per step
  // in expectation: n T = 100 for n = 10. Margin: 4 standard errors (500 instances, se about 0.9).
  BaselineOptions opt;
  opt.instances = 500;
  const BaselineResult r = run_mdp_baseline(small_mdp(10), "random", opt);
  EXPECT_TRUE(test::stat_near("mdp random mean", r.mean, 100.0, 4.0 * r.stderr_, r.stderr_));
  EXPECT_GT(r.stderr_, 0.0);
}

TEST(MdpBaselines, LearnersBeatRandom) {
  // n = 10, 200 evaluation instances (100 for tuning), seed 1. Random earns about 100 (se about 1.3);
  // on 1000 instances PSRL earns about 134 and Greedy, BEB and UCRL2 about 155. Margin: each learner
  // beats Random by at least 20, more than 10 combined standard errors.
  BaselineOptions opt;
  opt.instances = 200;
  opt.tune_instances = 100;
  const BaselineResult random = run_mdp_baseline(small_mdp(10), "random", opt);
  for (const char* policy : {"psrl", "greedy", "beb", "ucrl2"}) {
    const BaselineResult r = run_mdp_baseline(small_mdp(10), policy, opt);
    EXPECT_TRUE(test::stat_bound(std::string(policy) + " above random + 20", r.mean, random.mean + 20.0, true,
                                   std::hypot(r.stderr_, random.stderr_)));
  }
}

}  // namespace
}  // namespace rl2
