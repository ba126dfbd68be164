// The CUDA rollout (src/cuda/rollout_cuda.hpp) against a plain CPU loop rollout written here: the CPU
// environment batch, rl2::encode_input, the float64 reference GRU (gru_step_ref<double>) for the policy and
// the baseline, a float64 softmax and the same action counters as the CPU trainer
// (u01(philox_bits(seed, first_trial + i, t, kAction, 0).v[0]), inverse CDF).
// Tolerances: inputs x, rewards, dones and per-trial totals bit for bit; log-probabilities and probabilities
// within 1e-5 absolute; values within 1e-5 + 1e-4 |v|. Actions identical, except where the CPU's u lies
// within 1e-5 of a CDF boundary: such a step may draw the neighbouring action (float rounding of the
// GPU's probabilities); it is counted, must be rare, and the reference then follows the GPU's action so
// the environments stay comparable. Sizes 1, 7, 65, 1000 trials; GRU-16 and GRU-256; bandit k=5 n=10
// and mdp n=3. Also: graph replay = eager launch bit for bit, with new parameters and seeds after capture,
// and the optional TF32 path close to FP32 (its own, looser tolerances).
// GPU tests skip with the reason when no GPU is usable (label `gpu`); the validation tests run anywhere.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <tuple>

#include "rl2/core/check.hpp"
#include "rl2/core/device.hpp"
#include "rl2/core/rng.hpp"
#include "rl2/env/batch.hpp"
#include "rl2/policy/gru.hpp"
#include "rl2/policy/policy.hpp"
#if defined(RL2_WITH_CUDA)
#include "cuda/rollout_cuda.hpp"
#endif

namespace rl2 {
namespace {

#if defined(RL2_WITH_CUDA)
constexpr double kBoundary = 1e-5;  // |u - CDF| below this: the draw may go either way

EnvConfig bandit_config() {
  EnvConfig cfg;
  cfg.kind = EnvKind::kBandit;
  cfg.bandit = {5, 10};
  return cfg;
}

EnvConfig mdp_config() {
  EnvConfig cfg;
  cfg.kind = EnvKind::kMdp;
  cfg.mdp = {10, 5, 10, 3};
  return cfg;
}

struct Nets {
  GruShape pol, base;
  std::vector<float> pol_params, base_params;
};

// head_scale 3: the policy is far from uniform, so the draws exercise every part of the CDF.
Nets make_nets(const EnvConfig& cfg, int32_t hidden, uint64_t seed) {
  const InputLayout layout{static_cast<int32_t>(cfg.obs_size()), cfg.num_actions()};
  Nets n;
  n.pol = GruShape{layout.size(), hidden, cfg.num_actions()};
  n.base = GruShape{layout.size(), hidden, 1};
  n.pol_params.resize(static_cast<size_t>(gru_layout(n.pol).total));
  n.base_params.resize(static_cast<size_t>(gru_layout(n.base).total));
  gru_init(n.pol, seed, 0, 3.0f, n.pol_params.data());
  gru_init(n.base, seed, 1, 1.0f, n.base_params.data());
  return n;
}

struct Counts {
  int64_t near_boundary = 0;  // steps whose u lies within kBoundary of a CDF boundary
  int64_t flipped = 0;        // of those, steps where the GPU drew the other action
};

// Replays g (a GPU rollout of cfg with nets, seed, first_trial) through the CPU reference, step by step,
// and checks every logged quantity. Stops at the first failing step.
Counts check_against_reference(const EnvConfig& cfg, const Nets& nets, const RolloutHost& g, uint64_t seed,
                               uint64_t first_trial) {
  Counts c;
  const int64_t N = g.trials, T = g.steps, H = nets.pol.hidden;
  const int32_t A = cfg.num_actions();
  const InputLayout layout{static_cast<int32_t>(cfg.obs_size()), A};
  const int64_t I = layout.size(), obs_size = cfg.obs_size();
  EXPECT_EQ(T, cfg.trial_length());
  EXPECT_EQ(I, g.input);
  const std::vector<double> pd(nets.pol_params.begin(), nets.pol_params.end());
  const std::vector<double> bd(nets.base_params.begin(), nets.base_params.end());
  std::vector<double> hp(static_cast<size_t>(N * H), 0.0), hb(hp.size(), 0.0), hp_next(hp.size()), hb_next(hp.size());
  std::vector<double> logits(static_cast<size_t>(N * A)), value(static_cast<size_t>(N)), xd(static_cast<size_t>(N * I));
  std::vector<float> x(static_cast<size_t>(N * I));
  std::vector<int32_t> prev_a(static_cast<size_t>(N), -1), act(static_cast<size_t>(N));
  std::vector<float> prev_r(static_cast<size_t>(N), 0.0f), prev_d(static_cast<size_t>(N), 0.0f);
  std::vector<double> totals(static_cast<size_t>(N), 0.0), p(static_cast<size_t>(A));
  auto env = make_cpu_env_batch(cfg, N);
  env->reset(seed, first_trial);
  for (int64_t t = 0; t < T; ++t) {
    const float* obs = env->obs();
    for (int64_t i = 0; i < N; ++i) encode_input(layout, obs + i * obs_size, prev_a[i], prev_r[i], prev_d[i], &x[i * I]);
    for (int64_t e = 0; e < N * I; ++e) {
      EXPECT_EQ(std::memcmp(&x[e], &g.x[t * N * I + e], sizeof(float)), 0)
          << "x differs at step " << t << " trial " << e / I << " element " << e % I << ": cpu " << x[e] << " gpu "
          << g.x[t * N * I + e];
      if (::testing::Test::HasFailure()) return c;
    }
    for (int64_t e = 0; e < N * I; ++e) xd[e] = x[e];
    gru_step_ref<double>(nets.pol, pd.data(), xd.data(), hp.data(), N, hp_next.data(), logits.data());
    gru_step_ref<double>(nets.base, bd.data(), xd.data(), hb.data(), N, hb_next.data(), value.data());
    for (int64_t i = 0; i < N; ++i) {
      const int64_t k = t * N + i;
      const double* l = &logits[i * A];
      double m = l[0];
      for (int32_t a = 1; a < A; ++a) m = std::max(m, l[a]);
      double sum = 0.0;
      for (int32_t a = 0; a < A; ++a) sum += std::exp(l[a] - m);
      const double lse = m + std::log(sum);
      for (int32_t a = 0; a < A; ++a) p[a] = std::exp(l[a] - lse);
      const double u = u01(philox_bits(seed, first_trial + static_cast<uint64_t>(i), static_cast<uint32_t>(t),
                                       Purpose::kAction, 0)
                               .v[0]);
      int32_t a_ref = A - 1;  // inverse CDF, the last action absorbing rounding (as sample_categorical)
      bool drawn = false;
      double cum = 0.0, dist = 1.0;
      for (int32_t a = 0; a < A - 1; ++a) {
        cum += p[a];
        dist = std::min(dist, std::abs(u - cum));
        if (!drawn && u < cum) {
          a_ref = a;
          drawn = true;
        }
      }
      const int32_t a_gpu = g.actions[k];
      const bool near = dist < kBoundary;
      c.near_boundary += near;
      if (a_gpu != a_ref) {
        EXPECT_TRUE(near) << "action differs at step " << t << " trial " << i << ": cpu " << a_ref << " gpu " << a_gpu
                          << " (u " << u << ", nearest CDF boundary " << dist << " away)";
        c.flipped += 1;
      }
      EXPECT_TRUE(a_gpu >= 0 && a_gpu < A) << "GPU action out of range at step " << t << " trial " << i;
      if (::testing::Test::HasFailure()) return c;
      act[i] = a_gpu;  // the reference follows the GPU's draw (identical unless near a boundary)
      EXPECT_NEAR(g.logp[k], l[a_gpu] - lse, 1e-5) << "logp at step " << t << " trial " << i;
      for (int32_t a = 0; a < A; ++a)
        EXPECT_NEAR(g.probs[k * A + a], p[a], 1e-5) << "probs at step " << t << " trial " << i << " action " << a;
      EXPECT_NEAR(g.values[k], value[i], 1e-5 + 1e-4 * std::abs(value[i])) << "value at step " << t << " trial " << i;
      if (::testing::Test::HasFailure()) return c;
    }
    env->step(act.data());
    const float* r = env->rewards();
    const uint8_t* d = env->dones();
    for (int64_t i = 0; i < N; ++i) {
      const int64_t k = t * N + i;
      EXPECT_EQ(std::memcmp(&r[i], &g.rewards[k], sizeof(float)), 0)
          << "reward differs at step " << t << " trial " << i << ": cpu " << r[i] << " gpu " << g.rewards[k];
      EXPECT_EQ(d[i], g.dones[k]) << "done differs at step " << t << " trial " << i;
      if (::testing::Test::HasFailure()) return c;
      prev_a[i] = act[i];
      prev_r[i] = r[i];
      prev_d[i] = d[i];
      totals[i] += r[i];
    }
    std::swap(hp, hp_next);
    std::swap(hb, hb_next);
  }
  for (int64_t i = 0; i < N; ++i) EXPECT_EQ(totals[i], g.totals[i]) << "total of trial " << i;
  return c;
}

void check_parity(const EnvConfig& cfg, int64_t trials, int32_t hidden, uint64_t first_trial) {
  const uint64_t seed = 2024;
  const Nets nets = make_nets(cfg, hidden, 77);
  CudaRollout r(cfg, nets.pol, nets.base, trials);
  r.run(nets.pol_params.data(), nets.base_params.data(), seed, first_trial);
  const RolloutHost g = r.copy_to_host();
  ASSERT_EQ(g.trials, trials);
  const Counts c = check_against_reference(cfg, nets, g, seed, first_trial);
  const int64_t steps = trials * cfg.trial_length();
  std::cout << "  " << cfg.describe() << " N=" << trials << " H=" << hidden << ": " << steps << " steps, "
            << c.near_boundary << " within " << kBoundary << " of a CDF boundary, " << c.flipped << " drew the other action\n";
  // Expected near-boundary steps: about 2 kBoundary (A - 1) per step (8e-5 for A = 5).
  EXPECT_LE(c.near_boundary, 5 + steps / 1000) << "suspiciously many draws near a CDF boundary";
}

bool same_bits(const RolloutHost& a, const RolloutHost& b) {
  const auto eq = [](const auto& u, const auto& v) {
    return u.size() == v.size() && std::memcmp(u.data(), v.data(), u.size() * sizeof(u[0])) == 0;
  };
  return eq(a.x, b.x) && eq(a.actions, b.actions) && eq(a.logp, b.logp) && eq(a.probs, b.probs) &&
         eq(a.rewards, b.rewards) && eq(a.dones, b.dones) && eq(a.values, b.values) && eq(a.totals, b.totals);
}
#endif

class GpuRolloutParity : public ::testing::TestWithParam<std::tuple<int64_t, int32_t>> {
 protected:
  void SetUp() override {
    if (!cuda_probe().usable) GTEST_SKIP() << "no GPU: " << cuda_probe().reason;
  }
};

TEST_P(GpuRolloutParity, Bandit) {
#if defined(RL2_WITH_CUDA)
  const auto [trials, hidden] = GetParam();
  check_parity(bandit_config(), trials, hidden, 3 * static_cast<uint64_t>(trials));  // "iteration 3" of training
#endif
}

TEST_P(GpuRolloutParity, Mdp) {
#if defined(RL2_WITH_CUDA)
  const auto [trials, hidden] = GetParam();
  check_parity(mdp_config(), trials, hidden, kEvalStream + 12345);
#endif
}

INSTANTIATE_TEST_SUITE_P(Sizes, GpuRolloutParity,
                         ::testing::Combine(::testing::Values<int64_t>(1, 7, 65, 1000), ::testing::Values<int32_t>(16, 256)),
                         [](const ::testing::TestParamInfo<std::tuple<int64_t, int32_t>>& info) {
                           return "N" + std::to_string(std::get<0>(info.param)) + "_H" +
                                  std::to_string(std::get<1>(info.param));
                         });

class GpuRollout : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_probe().usable) GTEST_SKIP() << "no GPU: " << cuda_probe().reason;
  }
};

// After the first run captures the graph, replays must follow new parameters, seeds and trial ids: each
// equals, bit for bit, an eager rollout (graphs off) of the same inputs.
TEST_F(GpuRollout, GraphReplayEqualsEagerWithNewInputs) {
#if defined(RL2_WITH_CUDA)
  for (const EnvConfig& cfg : {bandit_config(), mdp_config()}) {
    const Nets a = make_nets(cfg, 32, 1), b = make_nets(cfg, 32, 2);
    CudaRollout graph(cfg, a.pol, a.base, 65);
    CudaRollout eager(cfg, a.pol, a.base, 65, RolloutOptions{false, false});
    graph.run(a.pol_params.data(), a.base_params.data(), 5, 0);  // eager launch, then capture
    const RolloutHost first = graph.copy_to_host();
    ASSERT_TRUE(graph.graph_captured());
    graph.run(b.pol_params.data(), b.base_params.data(), 6, kEvalStream + 1);  // replay
    eager.run(b.pol_params.data(), b.base_params.data(), 6, kEvalStream + 1);
    EXPECT_FALSE(eager.graph_captured());
    const RolloutHost replayed = graph.copy_to_host(), expected = eager.copy_to_host();
    EXPECT_TRUE(same_bits(replayed, expected)) << cfg.describe() << ": graph replay differs from an eager rollout";
    EXPECT_FALSE(same_bits(first, replayed)) << cfg.describe() << ": new parameters and seed changed nothing";
    graph.run(a.pol_params.data(), a.base_params.data(), 5, 0);  // the first inputs again, through the graph
    EXPECT_TRUE(same_bits(graph.copy_to_host(), first)) << cfg.describe() << ": a replay is not reproducible";
  }
#endif
}

TEST_F(GpuRollout, SeedAndTrialIdsChangeTheDraws) {
#if defined(RL2_WITH_CUDA)
  const EnvConfig cfg = bandit_config();
  const Nets n = make_nets(cfg, 16, 3);
  CudaRollout r(cfg, n.pol, n.base, 257);
  r.run(n.pol_params.data(), n.base_params.data(), 1, 0);
  const RolloutHost a = r.copy_to_host();
  r.run(n.pol_params.data(), n.base_params.data(), 2, 0);
  const RolloutHost b = r.copy_to_host();
  r.run(n.pol_params.data(), n.base_params.data(), 1, 257);
  const RolloutHost c = r.copy_to_host();
  EXPECT_NE(a.actions, b.actions);
  EXPECT_NE(a.actions, c.actions);
#endif
}

TEST_F(GpuRollout, TooManyTrialsIsAnInputErrorSayingWhatFits) {
#if defined(RL2_WITH_CUDA)
  const EnvConfig cfg = bandit_config();
  const Nets n = make_nets(cfg, 256, 1);
  try {
    CudaRollout r(cfg, n.pol, n.base, int64_t{1} << 30);
    FAIL() << "a 2^30-trial GRU-256 rollout should not fit";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("trials fit"), std::string::npos) << e.what();
  }
#endif
}

// The optional TF32 path (RolloutOptions::allow_tf32, the bench's cuda-tf32 rows) against the FP32 default
// on the same parameters, seed and trials. TF32 keeps 10 mantissa bits (relative rounding 2^-11 ~ 5e-4 per
// operand), so the two agree to about 1e-3 in probability, not to float rounding: the first step's
// probabilities (identical inputs) within 5e-3, log-probabilities within 2e-2 at every step of a trial
// whose actions have all agreed so far, and most trials (>= 75%; a TF32 draw flips only when u falls
// within ~1e-3 of a CDF boundary, about 1% of steps here) agreeing to the end. cuBLAS may still pick FP32
// kernels for some shapes in TF32 mode, so identical results pass too (the printed numbers tell).
TEST_F(GpuRollout, Tf32StaysCloseToFp32) {
#if defined(RL2_WITH_CUDA)
  const EnvConfig cfg = bandit_config();
  const Nets n = make_nets(cfg, 256, 9);
  const int64_t N = 1000;
  CudaRollout fp32(cfg, n.pol, n.base, N), tf32(cfg, n.pol, n.base, N, RolloutOptions{true, true});
  fp32.run(n.pol_params.data(), n.base_params.data(), 4, 0);
  tf32.run(n.pol_params.data(), n.base_params.data(), 4, 0);
  const RolloutHost a = fp32.copy_to_host(), b = tf32.copy_to_host();
  const int64_t T = a.steps, A = a.actions_count;
  double first_probs = 0.0, logp = 0.0;
  for (int64_t k = 0; k < N * A; ++k) first_probs = std::max(first_probs, std::fabs(double{a.probs[k]} - b.probs[k]));
  int64_t agreeing = 0;
  for (int64_t i = 0; i < N; ++i) {
    bool same = true;
    for (int64_t t = 0; t < T && same; ++t) {
      logp = std::max(logp, std::fabs(double{a.logp[t * N + i]} - b.logp[t * N + i]));
      same = a.actions[t * N + i] == b.actions[t * N + i];
    }
    agreeing += same;
  }
  std::cout << "  TF32 vs FP32: first-step probabilities " << first_probs << ", log-probabilities " << logp << ", "
            << agreeing << "/" << N << " trials draw the same actions throughout\n";
  EXPECT_LE(first_probs, 5e-3);
  EXPECT_LE(logp, 2e-2);
  EXPECT_GE(agreeing, N * 3 / 4);
#endif
}

// ---- validation: no CUDA call, runs on every machine -----------------------------------------------
// The GruShape forms describe networks without an encoder: they refuse the maze (its NetShape form has one).
TEST(GpuRolloutValidation, EncoderlessMazeAndMismatchedNetworksAreRejected) {
#if defined(RL2_WITH_CUDA)
  EnvConfig maze;
  maze.kind = EnvKind::kMaze;
  const GruShape any{10, 16, 3};
  EXPECT_THROW(validate_rollout(maze, any, any, 10), InputError);
  const EnvConfig cfg = bandit_config();  // I = 0 + 5 + 2
  EXPECT_NO_THROW(validate_rollout(cfg, GruShape{7, 16, 5}, GruShape{7, 16, 1}, 10));
  EXPECT_THROW(validate_rollout(cfg, GruShape{8, 16, 5}, GruShape{8, 16, 1}, 10), Error);   // wrong input size
  EXPECT_THROW(validate_rollout(cfg, GruShape{7, 16, 4}, GruShape{7, 16, 1}, 10), Error);   // wrong action count
  EXPECT_THROW(validate_rollout(cfg, GruShape{7, 16, 5}, GruShape{7, 16, 2}, 10), Error);   // baseline not scalar
  EXPECT_THROW(validate_rollout(cfg, GruShape{7, 16, 5}, GruShape{7, 32, 1}, 10), Error);   // hidden sizes differ
  EXPECT_THROW(validate_rollout(cfg, GruShape{7, 16, 5}, GruShape{7, 16, 1}, 0), InputError);
  EnvConfig wide = cfg;
  wide.bandit.arms = kRolloutMaxActions + 1;
  EXPECT_THROW(validate_rollout(wide, GruShape{wide.bandit.arms + 2, 16, wide.bandit.arms},
                                GruShape{wide.bandit.arms + 2, 16, 1}, 10),
               InputError);
#else
  GTEST_SKIP() << "built without the CUDA backend";
#endif
}

TEST(GpuRolloutValidation, NoGpuIsAnInputError) {
#if defined(RL2_WITH_CUDA)
  if (cuda_probe().usable) GTEST_SKIP() << "a GPU is present; this checks the no-GPU path";
  const EnvConfig cfg = bandit_config();
  EXPECT_THROW({ CudaRollout r(cfg, GruShape{7, 16, 5}, GruShape{7, 16, 1}, 10); }, InputError);
#else
  GTEST_SKIP() << "built without the CUDA backend";
#endif
}

}  // namespace
}  // namespace rl2
