// The CUDA rollout's per-trial and per-unit bodies (env_ops.hpp, rollout_ops.hpp, gru_gates.hpp) run on the
// CPU backend, so these tests execute every custom kernel body of the fused rollout:
//  - EnvReset, RolloutRecord, EnvStep and EnvRender chained exactly as src/cuda/rollout_cuda.cpp's EnvPartT
//    does, fed the actions of a CPU rollout, replay that rollout's inputs x, rewards and mask bit for bit
//    (bandit, MDP, and a maze whose trials partly finish early, so the mask's zeros are replayed too);
//  - GruGates equals gru_unit per unit bit for bit and the float64 gate equations of gru.hpp within a
//    measured tolerance; exp_approx against std::exp, and NaN for NaN and +-inf;
//  - EnvRender equals Maze::observe on random poses; EnvStep flags an out-of-range action and leaves its
//    trial as it was.
#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "numeric_test_util.hpp"
#include "rl2/core/rng.hpp"
#include "rl2/env/env_ops.hpp"
#include "rl2/policy/gru_gates.hpp"
#include "rl2/policy/rollout_ops.hpp"
#include "rl2/train/backend.hpp"
#include "rl2/train/learner.hpp"

namespace rl2 {
namespace {

using test::random_vec;
using test::VecF;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kSentinel = -777.0f;

// Counts the elements of a and b whose bytes differ; reports the first.
template <class T>
int64_t bit_mismatches(const T* a, const T* b, int64_t n, const std::string& what) {
  int64_t bad = 0;
  for (int64_t k = 0; k < n; ++k) {
    if (std::memcmp(&a[k], &b[k], sizeof(T)) == 0) continue;
    if (bad++ == 0) ADD_FAILURE() << what << ": first bit mismatch at " << k << ": " << +a[k] << " vs " << +b[k];
  }
  return bad;
}

// ---- 1. RolloutRecord + the env ops replay the CPU rollout -------------------------------------------

struct Replayed {
  VecF x, rewards, mask;  // [T, N, I], [T, N], [T, N]
};

// The trials first .. first + N - 1 of `seed`, stepped with the recorded actions [T, N], through the ops in
// the order of rollout_cuda.cpp's EnvPartT: reset -> record(x_0) [-> render]; per step t: step -> record(mask_t,
// x_{t+1}) [-> render], no x after the last step. Host buffers, the CPU backend's run().
template <class Env>
Replayed replay(Backend& be, const EnvConfig& cfg, const typename Env::Params& p, int64_t N, uint64_t seed,
                uint64_t first, const int32_t* actions) {
  constexpr bool rendered = ColumnRendered<Env>;
  const InputLayout layout{static_cast<int32_t>(cfg.obs_size()), cfg.num_actions()};
  const int64_t T = cfg.trial_length(), I = layout.size();
  const RunIds run{seed, first};
  VecF tasks(static_cast<size_t>(N * Env::task_size(p))), obs(rendered ? 0 : static_cast<size_t>(N * Env::obs_size(p)));
  std::vector<typename Env::State> states(static_cast<size_t>(N));
  std::vector<int32_t> episodes_done(static_cast<size_t>(N), -1);
  std::vector<uint8_t> dones(static_cast<size_t>(T * N), 0xee);
  float* obs_p = obs.empty() ? nullptr : obs.data();
  Replayed out{VecF(static_cast<size_t>(T * N * I), kSentinel), VecF(static_cast<size_t>(T * N), kSentinel),
               VecF(static_cast<size_t>(T * N), kSentinel)};
  const auto record = [&](const int32_t* a, const float* r, const uint8_t* d, float* m, float* x_next) {
    be.run(ops::RolloutRecord{layout, N, cfg.episodes(), rendered, obs_p, a, r, d, episodes_done.data(), m, x_next});
    if constexpr (rendered)
      if (x_next) be.run(ops::EnvRender<Env>{p, N, tasks.data(), states.data(), x_next, I});
  };
  be.run(ops::EnvReset<Env>{p, N, &run, tasks.data(), states.data(), obs_p, nullptr, nullptr});
  record(nullptr, nullptr, nullptr, nullptr, out.x.data());
  for (int64_t t = 0; t < T; ++t) {
    const int64_t k = t * N;
    be.run(ops::EnvStep<Env>{p, N, &run, tasks.data(), states.data(), actions + k, obs_p, out.rewards.data() + k,
                             dones.data() + k, nullptr});
    record(actions + k, out.rewards.data() + k, dones.data() + k, out.mask.data() + k,
           t + 1 < T ? out.x.data() + (k + N) * I : nullptr);
  }
  return out;
}

// Plays N trials with the CPU backend's rollout, replays them with the ops, compares; returns the number of
// trials that finished before their last step (mask 0 at t = T - 1).
int64_t check_replay(const EnvConfig& env, int64_t N) {
  SCOPED_TRACE(env.describe() + ", N = " + std::to_string(N));
  TrainConfig tc;
  tc.env = env;
  tc.hidden = 8;
  const NetShape ps = tc.policy_shape(), bs = tc.baseline_shape();
  VecF pol(static_cast<size_t>(ps.size())), base(static_cast<size_t>(bs.size()));
  net_init(ps, 5, 0, 1.0f, pol.data());
  net_init(bs, 5, 1, 1.0f, base.data());
  const uint64_t seed = 7, first = 3;
  auto be = make_cpu_backend();
  auto ro = be->make_rollout(env, ps, bs, N);
  ro->run(pol.data(), base.data(), seed, first);
  const int64_t T = env.trial_length(), I = ps.input();
  const Replayed r = visit_env(env, [&](auto e, const auto& p) {
    return replay<decltype(e)>(*be, env, p, N, seed, first, ro->actions());
  });
  EXPECT_EQ(bit_mismatches(r.x.data(), ro->x(), T * N * I, "x"), 0);
  EXPECT_EQ(bit_mismatches(r.rewards.data(), ro->rewards(), T * N, "rewards"), 0);
  if (ro->mask() == nullptr) {
    ADD_FAILURE() << "the CPU rollout keeps a mask";
    return 0;
  }
  EXPECT_EQ(bit_mismatches(r.mask.data(), ro->mask(), T * N, "mask"), 0);
  return std::count(ro->mask() + (T - 1) * N, ro->mask() + T * N, 0.0f);
}

EnvConfig bandit_cfg() {
  EnvConfig c;
  c.kind = EnvKind::kBandit;
  c.bandit = BanditParams{5, 10};
  return c;
}
EnvConfig mdp_cfg() {
  EnvConfig c;
  c.kind = EnvKind::kMdp;
  c.mdp = MdpParams{10, 5, 10, 3};
  return c;
}
// 5x5 Prim mazes, a pool of 4, 2 episodes of the shortest valid horizon (89, as gpu_maze_parity's tiny_maze):
// with this seed and policy 11 of the 65 trials (1 of the first 7) reach the target twice before step 178.
EnvConfig maze_cfg() {
  EnvConfig c;
  c.kind = EnvKind::kMaze;
  c.maze = MazeParams{5, 2, Maze::max_shortest_path(MazeParams{}), 4};
  return c;
}

TEST(RolloutOpsReplay, Bandit) {
  for (int64_t N : {1, 7, 65}) EXPECT_EQ(check_replay(bandit_cfg(), N), 0);
}
TEST(RolloutOpsReplay, Mdp) {
  for (int64_t N : {1, 7, 65}) EXPECT_EQ(check_replay(mdp_cfg(), N), 0);
}
TEST(RolloutOpsReplay, MazeWithTrialsFinishingEarly) {
  int64_t early = 0;
  for (int64_t N : {1, 7, 65}) early += check_replay(maze_cfg(), N);
  EXPECT_GT(early, 0) << "no maze trial finished early: the mask's zeros went untested";
  std::printf("[          ] maze trials finished early (N = 1, 7, 65 together): %lld\n", static_cast<long long>(early));
}

// ---- 2. GruGates and exp_approx ----------------------------------------------------------------------

// Measured max |h' - float64| over these cases: 2.26e-7 (gi, gh in (-2, 2), biases and h in (-1, 1)); bound 1e-6.
constexpr double kGateTol = 1e-6;

double sigmoid_d(double a) { return 1.0 / (1.0 + std::exp(-a)); }

TEST(RolloutOpsGruGates, EqualsGruUnitBitForBitAndFloat64Gates) {
  auto be = make_cpu_backend();
  double worst = 0.0;
  for (int32_t H : {1, 7, 65}) {
    for (int64_t N : {1, 5}) {
      SCOPED_TRACE("H = " + std::to_string(H) + ", N = " + std::to_string(N));
      const int64_t H3 = 3 * H;
      const uint64_t s = 100 * H + N;
      const VecF gi = random_vec(N * 2 * H3, s, 2.0f), gh = random_vec(2 * N * H3, s + 1, 2.0f);
      const VecF h = random_vec(2 * N * H, s + 2), b_ih = random_vec(2 * H3, s + 3), b_hh = random_vec(2 * H3, s + 4);
      VecF h_next(static_cast<size_t>(2 * N * H), kNaN), direct(h_next.size());
      be->run(ops::GruGates{N, H, gi.data(), gh.data(), h.data(), h_next.data(), {b_ih.data(), b_ih.data() + H3},
                            {b_hh.data(), b_hh.data() + H3}});
      for (int net = 0; net < 2; ++net)
        for (int64_t i = 0; i < N; ++i)
          for (int64_t j = 0; j < H; ++j) {
            const int64_t e = (net * N + i) * H + j;
            const float* gi_t = gi.data() + (i * 2 + net) * H3;
            const float* gh_t = gh.data() + (net * N + i) * H3;
            const float* bi = b_ih.data() + net * H3;
            const float* bh = b_hh.data() + net * H3;
            float r, z, n, hn;
            direct[e] = gru_unit(H, j, gi_t, gh_t, bi, bh, h[e], r, z, n, hn);
            // gru.hpp in double: r, z = σ(W x + b_W + R h + b_R), n = tanh(W_n x + b_Wn + r (R_n h + b_Rn)).
            const auto pre = [&](int64_t g) { return double{gi_t[g]} + bi[g] + gh_t[g] + bh[g]; };
            const double rd = sigmoid_d(pre(j)), zd = sigmoid_d(pre(H + j));
            const double nd = std::tanh(double{gi_t[2 * H + j]} + bi[2 * H + j] + rd * (double{gh_t[2 * H + j]} + bh[2 * H + j]));
            worst = std::max(worst, std::fabs((1.0 - zd) * nd + zd * h[e] - h_next[e]));
          }
      EXPECT_EQ(bit_mismatches(h_next.data(), direct.data(), 2 * N * H, "GruGates vs gru_unit"), 0);
    }
  }
  EXPECT_LT(worst, kGateTol);
  std::printf("[          ] GruGates max |h' - float64| = %.3g (tolerance %.0e)\n", worst, kGateTol);
}

// gru_gates.hpp promises relative error below 1e-7 on [-87, 87]; measured max 8.2e-8 (at x = -16.98) over
// this sweep (a uniform grid of 2e6 + 1 points, and every 211th float bit pattern of either sign): bound 2e-7.
TEST(RolloutOpsGruGates, ExpApproxAccuracyAndNonFinite) {
  double worst = 0.0;
  float worst_x = 0.0f;
  const auto check = [&](float x) {
    const double want = std::exp(static_cast<double>(x));
    const double err = std::fabs(static_cast<double>(exp_approx(x)) - want) / want;
    if (!(err <= worst)) worst = err, worst_x = x;
  };
  constexpr int64_t kGrid = 2000000;
  for (int64_t k = 0; k <= kGrid; ++k) check(static_cast<float>(-87.0 + 174.0 * static_cast<double>(k) / kGrid));
  const uint32_t top = float_bits(87.0f);
  for (uint32_t u = 0; u <= top; u += 211) check(bits_float(u)), check(-bits_float(u));
  EXPECT_LT(worst, 2e-7) << "at x = " << worst_x;
  std::printf("[          ] exp_approx max relative error on [-87, 87] = %.3g at x = %.9g\n", worst, worst_x);
  for (float x : {kNaN, std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()}) {
    EXPECT_TRUE(std::isnan(exp_approx(x))) << x;
    EXPECT_TRUE(std::isnan(sigmoid_approx(x))) << x;
    EXPECT_TRUE(std::isnan(tanh_approx(x))) << x;
  }
}

// ---- 3. EnvRender and EnvStep's out-of-range actions -------------------------------------------------

TEST(RolloutOpsEnv, MazeRenderEqualsObserve) {
  auto be = make_cpu_backend();
  for (int32_t size : {5, 9}) {
    const MazeParams p{size, 2, 250, 0};
    const int64_t N = 9, ts = Maze::task_size(p), os = Maze::obs_size(p), stride = os + 3;
    const int32_t g = Maze::grid(p);
    VecF tasks(static_cast<size_t>(N * ts));
    std::vector<Maze::State> states(static_cast<size_t>(N));
    RandomStream rs(11, static_cast<uint64_t>(size), 0, static_cast<Purpose>(251));
    for (int64_t i = 0; i < N; ++i) {
      float* task = tasks.data() + i * ts;
      Maze::sample_task(p, 3, static_cast<uint64_t>(i), task);
      int32_t cx, cy;  // a random non-wall cell, a random point inside it away from its edges
      do {
        cx = static_cast<int32_t>(uniform_int(rs.next_u32(), static_cast<uint32_t>(g)));
        cy = static_cast<int32_t>(uniform_int(rs.next_u32(), static_cast<uint32_t>(g)));
      } while (Maze::cell_at(p, task, cx, cy) == Maze::kWall);
      states[i] = Maze::State{cx + 0.2f + 0.6f * rs.uniform(), cy + 0.2f + 0.6f * rs.uniform(),
                              static_cast<int32_t>(uniform_int(rs.next_u32(), Maze::kHeadings)), 0, 0};
    }
    VecF rendered(static_cast<size_t>(N * stride), kSentinel), observed(rendered.size(), kSentinel);
    be->run(ops::EnvRender<Maze>{p, N, tasks.data(), states.data(), rendered.data(), stride});
    for (int64_t i = 0; i < N; ++i) Maze::observe(p, tasks.data() + i * ts, states[i], observed.data() + i * stride);
    EXPECT_EQ(bit_mismatches(rendered.data(), observed.data(), N * stride, "maze size " + std::to_string(size)), 0);
    EXPECT_EQ(std::count(rendered.begin(), rendered.end(), kSentinel), 3 * N) << "only the rows' gaps stay unwritten";
  }
}

TEST(RolloutOpsEnv, StepFlagsOutOfRangeActionsAndLeavesTheirTrials) {
  auto be = make_cpu_backend();
  for (const EnvConfig& cfg : {bandit_cfg(), mdp_cfg(), maze_cfg()}) {
    SCOPED_TRACE(cfg.describe());
    visit_env(cfg, [&](auto env, const auto& p) {
      using Env = decltype(env);
      using State = typename Env::State;
      const int32_t A = Env::num_actions(p);
      const std::vector<int32_t> actions{-1, 0, A, A - 1, INT_MIN, 1, INT_MAX};
      const int64_t N = static_cast<int64_t>(actions.size()), os = Env::obs_size(p);
      const RunIds run{9, 40};
      VecF tasks(static_cast<size_t>(N * Env::task_size(p))), obs(static_cast<size_t>(N * os));
      std::vector<State> states(static_cast<size_t>(N));
      be->run(ops::EnvReset<Env>{p, N, &run, tasks.data(), states.data(), obs.data(), nullptr, nullptr});
      if constexpr (ColumnRendered<Env>) be->run(ops::EnvRender<Env>{p, N, tasks.data(), states.data(), obs.data(), os});
      const std::vector<State> states0 = states;
      const VecF obs0 = obs;
      VecF rewards(static_cast<size_t>(N), kSentinel);
      std::vector<uint8_t> dones(static_cast<size_t>(N), 0xee);
      std::vector<int32_t> bad(static_cast<size_t>(N), 0);
      be->run(ops::EnvStep<Env>{p, N, &run, tasks.data(), states.data(), actions.data(), obs.data(), rewards.data(),
                                dones.data(), bad.data()});
      for (int64_t i = 0; i < N; ++i) {
        const bool out_of_range = actions[i] < 0 || actions[i] >= A;
        EXPECT_EQ(bad[i], out_of_range ? 1 : 0) << "trial " << i << ", action " << actions[i];
        if (!out_of_range) continue;
        EXPECT_EQ(std::memcmp(&states[i], &states0[i], sizeof(State)), 0) << "trial " << i << ": state changed";
        EXPECT_EQ(rewards[i], kSentinel) << "trial " << i;
        EXPECT_EQ(dones[i], 0xee) << "trial " << i;
        EXPECT_EQ(bit_mismatches(obs.data() + i * os, obs0.data() + i * os, os, "obs"), 0) << "trial " << i;
      }
    });
  }
}


// The rollout's heads (what the CUDA rollout draws with) against the same heads in double: probabilities
// within 1e-6, log-probability and value within 1e-5, and the drawn action the inverse CDF of the double
// probabilities at the same u (unless u lies within 1e-5 of a CDF boundary, where float rounding may tip it).
TEST(RolloutOpsHeads, MatchFloat64HeadsAndTheDraw) {
  std::unique_ptr<Backend> be = make_cpu_backend();
  int64_t checked_draws = 0;
  for (const auto& [N, H, A] : {std::tuple<int64_t, int32_t, int32_t>{1, 1, 2}, {7, 16, 5}, {65, 33, 3}}) {
    const std::vector<float> h = test::random_vec(static_cast<size_t>(2 * N * H), 11), w = test::random_vec(A * H, 12),
                             b = test::random_vec(A, 13), vw = test::random_vec(H, 14), vb = test::random_vec(1, 15);
    const RunIds ids{5, 40};
    const int32_t t = 3;
    std::vector<int32_t> act(static_cast<size_t>(N), -1);
    std::vector<float> logp(static_cast<size_t>(N)), probs(static_cast<size_t>(N * A)), value(static_cast<size_t>(N));
    be->run(ops::RolloutHeads{N, H, A, t, &ids, h.data(), w.data(), b.data(), vw.data(), vb.data(), act.data(),
                              logp.data(), probs.data(), value.data()});
    for (int64_t i = 0; i < N; ++i) {
      std::vector<double> z(static_cast<size_t>(A));
      double mx = -1e300, sum = 0.0;
      for (int32_t o = 0; o < A; ++o) {
        z[o] = b[o];
        for (int32_t j = 0; j < H; ++j) z[o] += static_cast<double>(w[o * H + j]) * h[i * H + j];
        mx = std::max(mx, z[o]);
      }
      for (double v : z) sum += std::exp(v - mx);
      double v_ref = vb[0];
      for (int32_t j = 0; j < H; ++j) v_ref += static_cast<double>(vw[j]) * h[(N + i) * H + j];
      EXPECT_NEAR(value[i], v_ref, 1e-5);
      const double u = u01(philox_bits(ids.seed, ids.first_trial + static_cast<uint64_t>(i), t, Purpose::kAction, 0).v[0]);
      double cdf = 0.0, gap = 1.0;
      int32_t ref_act = A - 1;
      for (int32_t o = 0; o < A; ++o) {
        const double p = std::exp(z[o] - mx) / sum;
        EXPECT_NEAR(probs[i * A + o], p, 1e-6);
        cdf += p;
        gap = std::min(gap, std::fabs(u - cdf));
        if (u < cdf && ref_act == A - 1 && o < A - 1) ref_act = o;
      }
      ASSERT_GE(act[i], 0);
      ASSERT_LT(act[i], A);
      EXPECT_NEAR(logp[i], z[act[i]] - mx - std::log(sum), 1e-5);
      if (gap > 1e-5) {
        EXPECT_EQ(act[i], ref_act) << "trial " << i;
        ++checked_draws;
      }
    }
  }
  EXPECT_GT(checked_draws, 60);  // nearly every draw is far from a boundary
}

}  // namespace
}  // namespace rl2
