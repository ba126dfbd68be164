// The CUDA backend on the maze (docs/cuda_training.md, "The maze"): the rollout with the rendered view and
// the cuDNN conv encoder, the network encoder -> GRU -> head (the CUDA backend's make_net), one iteration of
// the trainer on the CUDA backend with the finished-step mask, and evaluation, each against the CPU backend
// (network.hpp's net_step, the CPU backend's make_net, make_cpu_learner) from the same parameters.
// Tolerances (FP32 on both sides; cuDNN's convolutions and OpenBLAS's im2col GEMMs sum in different orders):
//   a rollout vs a CPU loop (CPU environment batch, encode_input, net_step for the policy and the baseline,
//     the CPU's action counters): inputs x (the rendered image and the extras), rewards, dones and the mask
//     bit for bit while actions agree; logp and probabilities within 1e-4 absolute, values within
//     1e-4 + 1e-4 |v|; an action may differ only where u lies within 1e-4 of a CDF boundary (counted; the
//     reference then follows the GPU). Sizes 1, 7, 65 trials of 5x5 (2 episodes, horizon 89, GRU-32) and
//     3 trials of 9x9 (1 episode, horizon 265). A second run repeats the first bit for bit; a rollout that
//     keeps only two steps of inputs (evaluation's) gives the same actions, logp, values, rewards, dones, mask.
//   b the CUDA backend's net with the encoder vs the CPU backend's (net_forward / net_backward): outputs
//     relative L2 <= 1e-4 (and 1e-4 absolute);
//     gradient relative L2 <= 1e-4 for the GRU + head part and for each encoder tensor; also at a smaller
//     batch than the GRU's maximum (the PPO / baseline minibatch path).
//   c one iterate() of the CUDA and CPU learners from one seed (5x5, 2 episodes, horizon 89, 4 mazes, 24 trials,
//     GRU-16; TRPO and PPO): env data and mask bit for bit (the rollout: a CudaRollout run with the learner's
//     state before the iteration, whose mean return equals the learner's to 1e-12 relative), at least one
//     finished trial (masked steps), <= 1
//     differing action; mean return exact when none differs; entropy and explained variance within 1e-4;
//     the policy step relative L2 <= 1e-2 (TRPO) / per element as tests/gpu_learner_parity.cpp (PPO); parameters
//     after the step within 1e-3 relative L2; the baseline's step <= 1e-2.
//   d evaluate() on the small (5x5, 5 episodes) and large (9x9, 4x horizon) settings: per-trial totals,
//     episode lengths and successes identical on every trial whose actions agree; at most n/8 trials differ.
// GPU tests skip with the reason when no GPU (or no cuDNN) is usable (label `gpu`); the validation tests
// run anywhere.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <numeric>
#include <string>
#include <tuple>

#include "gpu_test_util.hpp"
#include "objective_test_util.hpp"
#include "numeric_test_util.hpp"
#include "rl2/core/check.hpp"
#include "rl2/core/device.hpp"
#include "rl2/core/rng.hpp"
#include "rl2/env/batch.hpp"
#include "rl2/policy/network.hpp"
#include "rl2/policy/policy.hpp"
#include "rl2/policy/softmax.hpp"
#include "rl2/train/learner.hpp"
#include "rl2/train/maze_eval.hpp"
#if defined(RL2_WITH_CUDA)
#include "cuda/backend_cuda.hpp"
#include "cuda/encoder_cudnn.hpp"
#include "cuda/rollout_cuda.hpp"
#include "rl2/train/backend.hpp"
#endif

namespace rl2 {
namespace {

using test::to_host;
using test::rel_err;
using test::to_buffer;

class GpuMaze : public test::CudnnTest {};

// 5x5, 2 episodes of the shortest valid horizon (89), a pool of 4 mazes. Seed 7 with GRU-16 was chosen on
// the CPU so that 6 of its first 24 trials finish early (332 masked steps): the mask is exercised.
TrainConfig tiny_maze(const std::string& algo = "trpo") {
  TrainConfig c;
  c.env.kind = EnvKind::kMaze;
  c.env.maze = MazeParams{5, 2, Maze::max_shortest_path(MazeParams{}), 4};
  c.hidden = 16;
  c.steps_per_iter = 24 * c.env.trial_length();
  c.iterations = 1;
  c.algo = algo;
  c.entropy_coef = 0.01;
  c.seed = 7;
  return c;
}

#if defined(RL2_WITH_CUDA)
std::vector<float> minus(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return d;
}

constexpr double kBoundary = 1e-4;  // |u - CDF| below this: the draw may go either way

struct MazeNets {
  NetShape pol, base;
  std::vector<float> pol_params, base_params;
};

// net_init with head scale 3 for the policy: far from uniform, so the draws exercise the whole CDF.
MazeNets maze_nets(const EnvConfig& env, int32_t hidden, uint64_t seed) {
  TrainConfig c;
  c.env = env;
  c.hidden = hidden;
  MazeNets n{c.policy_shape(), c.baseline_shape(), {}, {}};
  n.pol_params.resize(static_cast<size_t>(n.pol.size()));
  n.base_params.resize(static_cast<size_t>(n.base.size()));
  net_init(n.pol, seed, 0, 3.0f, n.pol_params.data());
  net_init(n.base, seed, 1, 1.0f, n.base_params.data());
  return n;
}

struct Counts {
  int64_t near_boundary = 0, flipped = 0, inactive = 0;
};

// Replays g (a GPU rollout of env with nets, seed, first_trial) through the CPU, step by step, and checks
// every logged quantity. Stops at the first failing step.
Counts check_maze_rollout(const EnvConfig& env, const MazeNets& nets, const RolloutHost& g, uint64_t seed,
                          uint64_t first_trial) {
  Counts c;
  const int64_t N = g.trials, T = g.steps, H = nets.pol.gru.hidden;
  const int32_t A = env.num_actions(), E = env.episodes();
  const InputLayout layout{static_cast<int32_t>(env.obs_size()), A};
  const int64_t I = layout.size(), obs_size = env.obs_size();
  EXPECT_EQ(T, env.trial_length());
  EXPECT_EQ(I, g.input);
  EXPECT_EQ(g.x.size(), static_cast<size_t>(T * N * I)) << "the rollout must keep every step's input";
  EXPECT_EQ(g.mask.size(), static_cast<size_t>(T * N));
  std::vector<float> x(static_cast<size_t>(N * I)), hp(static_cast<size_t>(N * H), 0.0f), hb(hp.size(), 0.0f),
      hp_next(hp.size()), hb_next(hp.size()), logits(static_cast<size_t>(N * A)), value(static_cast<size_t>(N)),
      p(static_cast<size_t>(A));
  std::vector<int32_t> prev_a(static_cast<size_t>(N), -1), act(static_cast<size_t>(N)), done_eps(static_cast<size_t>(N), 0);
  std::vector<float> prev_r(static_cast<size_t>(N), 0.0f), prev_d(static_cast<size_t>(N), 0.0f);
  std::vector<double> totals(static_cast<size_t>(N), 0.0);
  NetCache pc, bc;
  auto cpu = make_cpu_env_batch(env, N);
  cpu->reset(seed, first_trial);
  for (int64_t t = 0; t < T; ++t) {
    const float* obs = cpu->obs();
    for (int64_t i = 0; i < N; ++i) encode_input(layout, obs + i * obs_size, prev_a[i], prev_r[i], prev_d[i], &x[i * I]);
    for (int64_t e = 0; e < N * I; ++e) {
      EXPECT_EQ(std::memcmp(&x[e], &g.x[t * N * I + e], sizeof(float)), 0)
          << "x differs at step " << t << " trial " << e / I << " element " << e % I
          << (e % I < obs_size ? " (image)" : " (extra)") << ": cpu " << x[e] << " gpu " << g.x[t * N * I + e];
      if (::testing::Test::HasFailure()) return c;
    }
    net_step(nets.pol, nets.pol_params.data(), x.data(), hp.data(), N, pc, hp_next.data(), logits.data());
    net_step(nets.base, nets.base_params.data(), x.data(), hb.data(), N, bc, hb_next.data(), value.data());
    for (int64_t i = 0; i < N; ++i) {
      const int64_t k = t * N + i;
      const float lse = softmax(&logits[i * A], A, p.data());
      const float u = u01(philox_bits(seed, first_trial + static_cast<uint64_t>(i), static_cast<uint32_t>(t),
                                      Purpose::kAction, 0)
                              .v[0]);
      const int32_t a_cpu = sample_categorical(p.data(), A, u);
      double cum = 0.0, dist = 1.0;
      for (int32_t a = 0; a < A - 1; ++a) {
        cum += p[a];
        dist = std::min(dist, std::abs(static_cast<double>(u) - cum));
      }
      const int32_t a_gpu = g.actions[k];
      c.near_boundary += dist < kBoundary;
      if (a_gpu != a_cpu) {
        EXPECT_LT(dist, kBoundary) << "action differs at step " << t << " trial " << i << ": cpu " << a_cpu << " gpu "
                                   << a_gpu << " (u " << u << ", nearest CDF boundary " << dist << " away)";
        c.flipped += 1;
      }
      EXPECT_TRUE(a_gpu >= 0 && a_gpu < A) << "GPU action out of range at step " << t << " trial " << i;
      if (::testing::Test::HasFailure()) return c;
      act[i] = a_gpu;  // the reference follows the GPU's draw (identical unless near a boundary)
      EXPECT_NEAR(g.logp[k], logits[i * A + a_gpu] - lse, 1e-4) << "logp at step " << t << " trial " << i;
      for (int32_t a = 0; a < A; ++a)
        EXPECT_NEAR(g.probs[k * A + a], p[a], 1e-4) << "probs at step " << t << " trial " << i << " action " << a;
      EXPECT_NEAR(g.values[k], value[i], 1e-4 + 1e-4 * std::abs(value[i])) << "value at step " << t << " trial " << i;
      const float live = done_eps[i] < E ? 1.0f : 0.0f;  // the CPU rollout's mask (play_trials)
      EXPECT_EQ(g.mask[k], live) << "mask at step " << t << " trial " << i;
      c.inactive += live == 0.0f;
      if (::testing::Test::HasFailure()) return c;
    }
    cpu->step(act.data());
    const float* r = cpu->rewards();
    const uint8_t* d = cpu->dones();
    for (int64_t i = 0; i < N; ++i) {
      const int64_t k = t * N + i;
      EXPECT_EQ(std::memcmp(&r[i], &g.rewards[k], sizeof(float)), 0)
          << "reward differs at step " << t << " trial " << i << ": cpu " << r[i] << " gpu " << g.rewards[k];
      EXPECT_EQ(d[i], g.dones[k]) << "done differs at step " << t << " trial " << i;
      if (::testing::Test::HasFailure()) return c;
      if (done_eps[i] < E && d[i]) done_eps[i] += 1;
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

bool same_bits(const void* a, const void* b, size_t bytes) { return std::memcmp(a, b, bytes) == 0; }
template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && same_bits(a.data(), b.data(), a.size() * sizeof(T));
}
#endif

// ---- a: the maze rollout against the CPU -------------------------------------------------------------------
// (size, episodes, horizon, mazes, trials)
class GpuMazeRollout : public test::CudnnTestWithParam<std::tuple<int32_t, int32_t, int32_t, int32_t, int64_t>> {};

TEST_P(GpuMazeRollout, MatchesCpuLoopWithNetStep) {
#if defined(RL2_WITH_CUDA)
  const auto [size, episodes, horizon, mazes, trials] = GetParam();
  EnvConfig env;
  env.kind = EnvKind::kMaze;
  env.maze = MazeParams{size, episodes, horizon, mazes};
  const MazeNets nets = maze_nets(env, 32, 5);
  const uint64_t seed = 7, first = 1000;
  CudaRollout r(env, nets.pol, nets.base, trials, RolloutOptions{true, false});
  r.run(nets.pol_params.data(), nets.base_params.data(), seed, first);
  const RolloutHost g = r.copy_to_host();
  EXPECT_FALSE(r.graph_captured()) << "the maze rollout launches eagerly";
  const Counts c = check_maze_rollout(env, nets, g, seed, first);
  std::cout << "  " << env.describe() << ", " << trials << " trials: " << c.near_boundary << " near-boundary draws, "
            << c.flipped << " flipped; " << c.inactive << " inactive (finished) steps of " << g.steps * trials << "\n";
  EXPECT_LE(c.flipped, 1 + g.steps * trials / 2000) << "flipped draws should be rare";

  // A second run repeats the first bit for bit (state is reset on the device, nothing carries over).
  r.run(nets.pol_params.data(), nets.base_params.data(), seed, first);
  const RolloutHost g2 = r.copy_to_host();
  EXPECT_TRUE(same_bits(g2.x, g.x) && same_bits(g2.actions, g.actions) && same_bits(g2.logp, g.logp) &&
              same_bits(g2.values, g.values) && same_bits(g2.mask, g.mask))
      << "a second run of the same rollout differs";
  // Evaluation's rollout (two steps of inputs kept) plays the same trials.
  CudaRollout e(env, nets.pol, nets.base, trials, RolloutOptions{false, false, false});
  e.run(nets.pol_params.data(), nets.base_params.data(), seed, first);
  const RolloutHost ge = e.copy_to_host();
  EXPECT_EQ(ge.x.size(), static_cast<size_t>(std::min<int64_t>(g.steps, 2) * trials * g.input));
  EXPECT_TRUE(same_bits(ge.actions, g.actions) && same_bits(ge.logp, g.logp) && same_bits(ge.probs, g.probs) &&
              same_bits(ge.values, g.values) && same_bits(ge.rewards, g.rewards) && same_bits(ge.dones, g.dones) &&
              same_bits(ge.mask, g.mask))
      << "keep_inputs = false changed the rollout";
#endif
}

INSTANTIATE_TEST_SUITE_P(Sizes, GpuMazeRollout,
                         ::testing::Values(std::make_tuple(5, 2, 89, 4, int64_t{1}), std::make_tuple(5, 2, 89, 4, int64_t{7}),
                                           std::make_tuple(5, 2, 89, 4, int64_t{65}),
                                           std::make_tuple(9, 1, 265, 0, int64_t{3})),
                         [](const auto& info) {
                           return "size" + std::to_string(std::get<0>(info.param)) + "_n" +
                                  std::to_string(std::get<1>(info.param)) + "_H" +
                                  std::to_string(std::get<2>(info.param)) + "_trials" +
                                  std::to_string(std::get<4>(info.param));
                         });

// ---- b: the network with the encoder -------------------------------------------------------------------------
TEST_F(GpuMaze, NetForwardBackwardMatchCpu) {
#if defined(RL2_WITH_CUDA)
  TrainConfig cfg = tiny_maze();
  cfg.hidden = 32;
  const int64_t T = 6, Nmax = 5;
  for (const int32_t out : {3, 1}) {  // the policy's head, the baseline's
    NetShape shape = out == 3 ? cfg.policy_shape() : cfg.baseline_shape();
    std::vector<float> params(static_cast<size_t>(shape.size()));
    net_init(shape, 11, out == 3 ? 0 : 1, 1.0f, params.data());
    auto gpu = make_cuda_backend();
    auto cpu = make_cpu_backend();
    auto net = gpu->make_net(shape, T, Nmax);
    auto cnet = cpu->make_net(shape, T, Nmax);
    const Buffer<float> dp = to_buffer(*gpu, params);
    for (const int64_t N : {Nmax, int64_t{2}}) {
      // Images and extras in [-1, 1] (the maze's range).
      const std::vector<float> x = test::random_vec(static_cast<size_t>(T * N * shape.input()), 21 + N);
      const std::vector<float> d_out = test::random_vec(static_cast<size_t>(T * N * out), 31 + N);
      const Buffer<float> dx = to_buffer(*gpu, x), dd = to_buffer(*gpu, d_out);
      Buffer<float> o(*gpu, T * N * out), grad(*gpu, shape.size());
      net->forward(dp.data(), dx.data(), N, o.data());
      net->backward(dp.data(), dx.data(), N, dd.data(), grad.data());
      const std::vector<float> go = to_host(*gpu, o), gg = to_host(*gpu, grad);
      std::vector<float> co(go.size()), cg(params.size());
      cnet->forward(params.data(), x.data(), N, co.data());
      cnet->backward(params.data(), x.data(), N, d_out.data(), cg.data());
      double worst = 0.0;
      for (size_t e = 0; e < go.size(); ++e) worst = std::max(worst, std::abs(static_cast<double>(go[e]) - co[e]));
      const double out_rel = rel_err(go, co);
      const int64_t G = shape.gru_size();
      const double gru_rel = rel_err(gg.data(), cg.data(), static_cast<size_t>(G));
      const EncoderLayout l = encoder_layout(shape.enc);
      const struct {
        const char* name;
        int64_t at, end;
      } parts[] = {{"conv1.weight", l.conv1_w, l.conv1_b},       {"conv1.bias", l.conv1_b, l.conv2_w},
                   {"conv2.weight", l.conv2_w, l.conv2_b},       {"conv2.bias", l.conv2_b, l.image_fc_w},
                   {"image_fc.weight", l.image_fc_w, l.image_fc_b}, {"image_fc.bias", l.image_fc_b, l.extra_fc_w},
                   {"extra_fc.weight", l.extra_fc_w, l.extra_fc_b}, {"extra_fc.bias", l.extra_fc_b, l.total}};
      std::string enc_parts;
      double enc_worst = 0.0;
      for (const auto& p : parts) {
        const double e = rel_err(gg.data() + G + p.at, cg.data() + G + p.at, static_cast<size_t>(p.end - p.at));
        enc_worst = std::max(enc_worst, e);
        enc_parts += std::string(" ") + p.name + " " + std::to_string(e);
      }
      std::cout << "  out " << out << ", T " << T << ", batch " << N << " of " << Nmax << ": output rel " << out_rel
                << " (max abs " << worst << "), GRU+head gradient rel " << gru_rel << ", encoder:" << enc_parts << "\n";
      EXPECT_LE(out_rel, 1e-4);
      EXPECT_LE(worst, 1e-4);
      EXPECT_LE(gru_rel, 1e-4);
      EXPECT_LE(enc_worst, 1e-4) << enc_parts;
    }
  }
#endif
}

// ---- c: one learner iteration with finished trials ------------------------------------------------------------
#if defined(RL2_WITH_CUDA)
// The rollout a CUDA learner ran in an iteration (the CUDA backend's make_rollout is a CudaRollout of the
// config's networks with default options): the same networks run from the learner's state before it.
RolloutHost learner_rollout(const TrainConfig& cfg, const TrainState& before, uint64_t first_trial) {
  CudaRollout r(cfg.env, cfg.policy_shape(), cfg.baseline_shape(), cfg.trials_per_iter());
  r.run(before.policy.data(), before.baseline.data(), cfg.seed, first_trial);
  return r.copy_to_host();
}

// Replays the CUDA rollout's actions through the CPU environment batch: inputs, rewards, dones and the
// mask bit for bit. Returns the number of inactive steps.
int64_t expect_maze_data_bitwise(const EnvConfig& env, uint64_t seed, uint64_t first_trial, const RolloutHost& r) {
  const int64_t T = r.steps, N = r.trials;
  const InputLayout layout{static_cast<int32_t>(env.obs_size()), env.num_actions()};
  const int64_t I = layout.size();
  const int32_t E = env.episodes();
  auto cpu = make_cpu_env_batch(env, N);
  cpu->reset(seed, first_trial);
  std::vector<int32_t> prev_a(static_cast<size_t>(N), -1), act(static_cast<size_t>(N)), done_eps(static_cast<size_t>(N), 0);
  std::vector<float> prev_r(static_cast<size_t>(N), 0.0f), prev_d(static_cast<size_t>(N), 0.0f), x(static_cast<size_t>(I));
  int64_t inactive = 0;
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t i = 0; i < N; ++i) {
      encode_input(layout, cpu->obs() + i * env.obs_size(), prev_a[i], prev_r[i], prev_d[i], x.data());
      EXPECT_EQ(std::memcmp(x.data(), &r.x[(t * N + i) * I], static_cast<size_t>(I) * sizeof(float)), 0)
          << "input differs at step " << t << " trial " << i;
      const float live = done_eps[i] < E ? 1.0f : 0.0f;
      EXPECT_EQ(r.mask[t * N + i], live) << "mask differs at step " << t << " trial " << i;
      inactive += live == 0.0f;
      if (::testing::Test::HasFailure()) return inactive;
      act[i] = r.actions[t * N + i];
    }
    cpu->step(act.data());
    for (int64_t i = 0; i < N; ++i) {
      EXPECT_EQ(std::memcmp(&cpu->rewards()[i], &r.rewards[t * N + i], sizeof(float)), 0)
          << "reward differs at step " << t << " trial " << i;
      EXPECT_EQ(cpu->dones()[i], r.dones[t * N + i]) << "done differs at step " << t << " trial " << i;
      if (::testing::Test::HasFailure()) return inactive;
      if (done_eps[i] < E && cpu->dones()[i]) done_eps[i] += 1;
      prev_a[i] = act[i];
      prev_r[i] = cpu->rewards()[i];
      prev_d[i] = cpu->dones()[i];
    }
  }
  return inactive;
}
#endif

class GpuMazeIteration : public test::CudnnTestWithParam<std::string> {};

TEST_P(GpuMazeIteration, OneIterationMatchesTheCpuLearner) {
#if defined(RL2_WITH_CUDA)
  const TrainConfig cfg = tiny_maze(GetParam());
  auto cpu = make_cpu_learner(cfg);
  auto gpu = make_learner(Device::kCuda, cfg);
  ASSERT_EQ(gpu->device(), Device::kCuda);
  ASSERT_EQ(gpu->state().policy, cpu->state().policy) << "the same seed must give the same initial parameters";
  ASSERT_EQ(gpu->state().baseline, cpu->state().baseline);
  const int64_t T = cfg.env.trial_length(), N = cfg.trials_per_iter();
  const TrainState before = cpu->state();
  // The CPU learner's training actions: its evaluation of the same trial ids with the same parameters
  // (-1 once a trial finished; the rollout keeps drawing there, masked).
  const EvalResult cpu_play = cpu->evaluate(cfg.env, N, 0, true);
  const IterationStats sc = cpu->iterate();
  const IterationStats sg = gpu->iterate();
  const RolloutHost r = learner_rollout(cfg, before, 0);
  ASSERT_EQ(r.trials, N);
  const double replay_return = std::accumulate(r.totals.begin(), r.totals.end(), 0.0) / static_cast<double>(N);
  ASSERT_NEAR(replay_return, sg.mean_return, 1e-12 * (1.0 + std::abs(sg.mean_return)))
      << "the replayed rollout is not the one the learner trained on";
  const int64_t inactive = expect_maze_data_bitwise(cfg.env, cfg.seed, 0, r);
  int64_t differ = 0;
  for (int64_t i = 0; i < N; ++i)
    for (int64_t t = 0; t < T; ++t) {
      const int32_t a = cpu_play.actions[i * T + t];
      differ += a >= 0 && a != r.actions[t * N + i];
    }
  const TrainState& ac = cpu->state();
  const TrainState& ag = gpu->state();
  const double pol_step = rel_err(minus(ag.policy, before.policy), minus(ac.policy, before.policy));
  const double pol_after = rel_err(ag.policy, ac.policy);
  const double base_step = rel_err(minus(ag.baseline, before.baseline), minus(ac.baseline, before.baseline));
  std::cout << "  " << cfg.algo << ": " << inactive << " inactive steps of " << N * T << "; " << differ
            << " actions differ; mean return cpu " << sc.mean_return << " gpu " << sg.mean_return << "; entropy "
            << sc.entropy << " / " << sg.entropy << "; ev " << sc.explained_variance << " / " << sg.explained_variance
            << "; update " << update_status_name(sc.update.status) << " / " << update_status_name(sg.update.status) << ", KL "
            << sc.update.kl << " / " << sg.update.kl << "; baseline loss " << sc.baseline_loss << " / "
            << sg.baseline_loss << "; mismatch " << sc.rollout_mismatch << " / " << sg.rollout_mismatch
            << "; policy step rel " << pol_step << ", policy after rel " << pol_after << ", baseline step rel "
            << base_step << "\n";
  EXPECT_GT(inactive, 0) << "this configuration was chosen (on the CPU) so that some trials finish early";
  EXPECT_LE(differ, 1) << "actions should agree except at a draw within rounding of a CDF boundary";
  if (differ == 0) {
    EXPECT_EQ(sg.mean_return, sc.mean_return);
    EXPECT_NEAR(ag.return_mean, ac.return_mean, 1e-9 * (1.0 + std::abs(ac.return_mean)));
    EXPECT_NEAR(ag.return_std, ac.return_std, 1e-9 * ac.return_std);
  } else {
    EXPECT_NEAR(sg.mean_return, sc.mean_return, 0.1);
  }
  EXPECT_NEAR(sg.entropy, sc.entropy, 1e-4);
  EXPECT_NEAR(sg.explained_variance, sc.explained_variance, 1e-4);
  EXPECT_EQ(sg.update.status, sc.update.status);
  EXPECT_EQ(sg.update.steps, sc.update.steps);
  EXPECT_NEAR(sg.update.kl, sc.update.kl, 2e-2 * sc.update.kl + 1e-9);
  EXPECT_NEAR(sg.baseline_loss, sc.baseline_loss, 1e-3 * sc.baseline_loss);
  EXPECT_LT(sg.rollout_mismatch, 1e-4);
  EXPECT_EQ(ag.iteration, 1);
  EXPECT_EQ(ag.baseline_adam.t, ac.baseline_adam.t);
  EXPECT_EQ(ag.policy_adam.t, ac.policy_adam.t);
  if (cfg.algo == "ppo")  // per element (numeric_test_util.hpp: noise-gradient parameters may step apart)
    EXPECT_EQ(test::adam_steps_disagree(minus(ag.policy, before.policy), minus(ac.policy, before.policy), cfg.ppo.lr,
                                        ac.policy_adam.t - before.policy_adam.t, 2e-3),
              "");
  else
    EXPECT_LE(pol_step, 1e-2);
  EXPECT_LE(pol_after, 1e-3);
  EXPECT_LE(base_step, 1e-2);
#endif
}

INSTANTIATE_TEST_SUITE_P(Algos, GpuMazeIteration, ::testing::Values("trpo", "ppo"));

// ---- d: evaluation ------------------------------------------------------------------------------------------
TEST_F(GpuMaze, EvaluateMatchesCpu) {
#if defined(RL2_WITH_CUDA)
  const TrainConfig cfg = tiny_maze();
  auto cpu = make_cpu_learner(cfg);
  auto gpu = make_learner(Device::kCuda, cfg);
  for (const bool large : {false, true}) {
    const EnvConfig env = maze_eval_env(cfg.env, large);
    const int64_t n = large ? 16 : 64, T = env.trial_length();
    const int32_t E = env.episodes();
    const EvalResult ec = cpu->evaluate(env, n, kEvalStream, true);
    const EvalResult eg = gpu->evaluate(env, n, kEvalStream, true);
    ASSERT_EQ(eg.totals.size(), ec.totals.size());
    ASSERT_EQ(eg.lengths.size(), ec.lengths.size());
    ASSERT_EQ(eg.actions.size(), ec.actions.size());
    EXPECT_EQ(eg.episodes, ec.episodes);
    int64_t differ = 0, finished_early = 0, successes = 0;
    for (int64_t i = 0; i < n; ++i) {
      const bool same = std::equal(ec.actions.begin() + i * T, ec.actions.begin() + (i + 1) * T, eg.actions.begin() + i * T);
      differ += !same;
      if (!same) continue;
      finished_early += ec.actions[static_cast<size_t>(i * T + T - 1)] < 0;
      EXPECT_EQ(eg.totals[i], ec.totals[i]) << env.describe() << " trial " << i;
      for (int32_t e = 0; e < E; ++e) {
        EXPECT_EQ(eg.lengths[i * E + e], ec.lengths[i * E + e]) << "trial " << i << " episode " << e;
        EXPECT_EQ(eg.success[i * E + e], ec.success[i * E + e]) << "trial " << i << " episode " << e;
        successes += ec.success[i * E + e];
      }
    }
    std::cout << "  " << env.describe() << ": " << differ << " of " << n << " trials drew a different action; of the "
              << "others " << finished_early << " finished early, " << successes << " successful episodes\n";
    EXPECT_LE(differ, std::max<int64_t>(1, n / 8));
  }
#endif
}

// ---- memory and validation ------------------------------------------------------------------------------------
TEST_F(GpuMaze, AbsurdStepsPerIterIsAnInputErrorNamingTheEncoder) {
#if defined(RL2_WITH_CUDA)
  TrainConfig cfg = tiny_maze();
  cfg.steps_per_iter = int64_t{1} << 36;
  try {
    make_learner(Device::kCuda, cfg);
    FAIL() << "2^36 maze steps per iteration should not fit";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    std::cout << "  " << msg << "\n";
    EXPECT_NE(msg.find("conv encoder"), std::string::npos) << msg;
    EXPECT_NE(msg.find("steps per iteration fit"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line";
  }
#endif
}

// No GPU needed: the estimates count the maze's inputs, mask and encoder; the rollout accepts the maze's
// networks and refuses the wrong ones; the CUDA learner takes the maze as far as the GPU check.
TEST(GpuMazeValidation, EstimatesShapesAndTheNoGpuPath) {
#if defined(RL2_WITH_CUDA)
  const TrainConfig cfg = tiny_maze();
  const NetShape ps = cfg.policy_shape(), bs = cfg.baseline_shape();
  const int64_t T = cfg.env.trial_length();
  const double per = static_cast<double>(rollout_bytes_per_trial(cfg.env, ps));
  EXPECT_GE(per, static_cast<double>(T) * (4.0 * 3605 + 4.0)) << "x (3605 floats per step) and the mask";
  EXPECT_GE(per, static_cast<double>(T) * 4.0 * 3605 + CudnnEncoder::bytes(ps.enc, 4096) / 4096.0);
  EXPECT_LT(static_cast<double>(rollout_bytes_per_trial(cfg.env, ps, false)), per / 10) << "evaluation keeps 2 steps";
  const CudaLearnerBytes b = cuda_learner_bytes(cfg, CudnnTempBytes{}, 1);
  EXPECT_GE(b.per_trial, per + CudnnEncoder::bytes(ps.enc, T)) << "the training encoder's activations";
  EXPECT_NO_THROW(validate_rollout(cfg.env, ps, bs, 7));
  const int32_t I = static_cast<int32_t>(ps.input());
  EXPECT_THROW(validate_rollout(cfg.env, GruShape{I, 16, 3}, GruShape{I, 16, 1}, 7), InputError);  // no encoder
  EnvConfig bandit;
  bandit.kind = EnvKind::kBandit;
  EXPECT_THROW(validate_rollout(bandit, ps, bs, 7), InputError);  // an encoder without an image
#endif
  TrainConfig maze = tiny_maze();
  if (cuda_probe().usable) GTEST_SKIP() << "a GPU is present; the no-GPU path is not reachable";
  try {
    make_learner(Device::kCuda, maze);
    FAIL() << "without a GPU the CUDA learner cannot be built";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find("maze"), std::string::npos) << "the maze is no longer refused: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace rl2
