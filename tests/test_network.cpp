// The network of include/rl2/policy/network.hpp and the trainer with the maze's encoder: without an
// encoder every call is the GRU's (bit for bit); with one, the policy objective's Fisher-vector product
// against a float64 reference built from the *_ref functions of both parts, its surrogate gradient against
// float64 central differences, and the finished-step mask (inactive steps change nothing; an all-ones
// mask is bit-identical to none). Then the maze end to end on a tiny run: rollout/training parity, a
// checkpoint round trip with the encoder's torch-named tensors, the evaluation's per-episode results
// (replayed on the host), and Table 3's arithmetic. Fixed seeds.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>
#include <tuple>

#include "numeric_test_util.hpp"
#include "objective_test_util.hpp"
#include "rl2/core/rng.hpp"
#include "rl2/io/paper.hpp"
#include "rl2/policy/network.hpp"
#include "rl2/policy/softmax.hpp"
#include "rl2/train/maze_eval.hpp"
#include "rl2/train/objective.hpp"
#include "rl2/train/run.hpp"

namespace fs = std::filesystem;

namespace rl2 {
namespace {

using test::random_vec;
using test::rel_err;
using test::to_double;
using test::VecD;
using test::VecF;

TEST(Network, WithoutEncoderIsExactlyTheGru) {
  const NetShape s{GruShape{6, 9, 4}, false, {}};
  const int64_t T = 5, B = 7;
  VecF p(static_cast<size_t>(s.size()));
  net_init(s, 3, 0, 0.5f, p.data());
  VecF q(p.size());
  gru_init(s.gru, 3, 0, 0.5f, q.data());
  EXPECT_EQ(p, q);
  const VecF x = random_vec(static_cast<size_t>(T * B * 6), 1), d = random_vec(static_cast<size_t>(T * B * 4), 2),
             v = random_vec(p.size(), 3);
  NetCache nc;
  GruCache<float> gc;
  VecF a(d.size()), b(d.size()), ga(p.size(), 0.0f), gb(p.size(), 0.0f);
  net_forward(s, p.data(), x.data(), T, B, nc, a.data());
  gru_forward(s.gru, p.data(), x.data(), T, B, gc, b.data());
  EXPECT_EQ(a, b);
  net_backward(s, p.data(), x.data(), T, B, nc, d.data(), ga.data());
  gru_backward(s.gru, p.data(), x.data(), T, B, gc, d.data(), gb.data(), nullptr);
  EXPECT_EQ(ga, gb);
  net_jvp(s, p.data(), x.data(), T, B, nc, v.data(), a.data());
  gru_jvp(s.gru, p.data(), x.data(), T, B, gc, v.data(), b.data());
  EXPECT_EQ(a, b);
  const VecF h = random_vec(static_cast<size_t>(B * 9), 4);
  VecF h1(h.size()), h2(h.size()), o1(static_cast<size_t>(B * 4)), o2(o1.size());
  net_step(s, p.data(), x.data(), h.data(), B, nc, h1.data(), o1.data());
  gru_step(s.gru, p.data(), x.data(), h.data(), B, h2.data(), o2.data());
  EXPECT_EQ(h1, h2);
  EXPECT_EQ(o1, o2);
}

// A small encoder (3×18×21 images, 4 filters, f2 4×2×3) before a GRU-7 with 3 actions: T = 4 steps of
// N = 3 trials; trial 1 finished after step 2 and trial 2 after step 1 (their later steps inactive).
struct EncFixture {
  NetShape shape;
  int64_t T = 4, N = 3;
  int32_t A = 3;
  VecF params, x, logp_old, probs_old, adv, mask;
  std::vector<int32_t> actions;
  double entropy_coef = 0.0;
  EncFixture() {
    shape.encoder = true;
    shape.enc = EncoderShape{3, 18, 21, 4, 5, 2, 8, 5, 6};
    shape.gru = GruShape{shape.enc.out(), 7, A};
    params.resize(static_cast<size_t>(shape.size()));
    net_init(shape, 3, 0, 1.0f, params.data());
    x = random_vec(static_cast<size_t>(T * N * shape.input()), 4);
    adv = random_vec(static_cast<size_t>(T * N), 5);
    mask.assign(static_cast<size_t>(T * N), 1.0f);
    mask[3 * N + 1] = mask[2 * N + 2] = mask[3 * N + 2] = 0.0f;
    VecF logits(static_cast<size_t>(T * N * A));
    NetCache c;
    net_forward(shape, params.data(), x.data(), T, N, c, logits.data());
    probs_old.resize(logits.size());
    for (int64_t k = 0; k < T * N; ++k) {
      const float lse = softmax(&logits[k * A], A, &probs_old[k * A]);
      const uint32_t bits = philox_bits(9, static_cast<uint64_t>(k), 0, Purpose::kAction, 0).v[0];
      const int32_t act = static_cast<int32_t>(uniform_int(bits, 3));
      actions.push_back(act);
      logp_old.push_back(logits[k * A + act] - lse);
    }
  }
  PolicyBatch batch(bool with_mask = true) const {
    return PolicyBatch{T,          N, A, x.data(), actions.data(), logp_old.data(), probs_old.data(),
                       adv.data(), entropy_coef, with_mask ? mask.data() : nullptr};
  }
  double active() const { return std::accumulate(mask.begin(), mask.end(), 0.0); }
};

// The float64 chain encoder -> GRU from the references: logits [T, N, A].
struct RefChain {
  const EncFixture& f;
  VecD x, y, logits;
  EncoderCache<double> ec;
  GruCache<double> gc;
  RefChain(const EncFixture& fx, const VecD& p) : f(fx), x(to_double(fx.x)) {
    const int64_t M = f.T * f.N, G = f.shape.gru_size();
    y.resize(static_cast<size_t>(M * f.shape.enc.out()));
    logits.resize(static_cast<size_t>(M * f.A));
    encoder_forward_ref(f.shape.enc, p.data() + G, x.data(), M, ec, y.data());
    gru_forward_ref(f.shape.gru, p.data(), y.data(), f.T, f.N, gc, logits.data());
  }
  VecD probs(int64_t k) const {
    double mx = -1e300, z = 0;
    for (int a = 0; a < f.A; ++a) mx = std::max(mx, logits[k * f.A + a]);
    VecD pr(static_cast<size_t>(f.A));
    for (int a = 0; a < f.A; ++a) z += pr[a] = std::exp(logits[k * f.A + a] - mx);
    for (double& e : pr) e /= z;
    return pr;
  }
};

// F v = Jᵀ M J v / M over the active steps, in float64.
VecD fvp_ref(const EncFixture& f, const VecD& p, const VecD& v) {
  RefChain c(f, p);
  const int64_t M = f.T * f.N, G = f.shape.gru_size(), A = f.A;
  VecD ty(c.y.size()), dl(c.logits.size()), u(c.logits.size(), 0.0), dy(c.y.size());
  encoder_jvp_ref(f.shape.enc, p.data() + G, c.x.data(), M, c.ec, v.data() + G, ty.data());
  gru_jvp_ref(f.shape.gru, p.data(), c.y.data(), f.T, f.N, c.gc, v.data(), dl.data(), ty.data());
  for (int64_t k = 0; k < M; ++k) {
    if (f.mask[k] == 0.0f) continue;
    const VecD pr = c.probs(k);
    double s = 0;
    for (int a = 0; a < A; ++a) s += pr[a] * dl[k * A + a];
    for (int a = 0; a < A; ++a) u[k * A + a] = pr[a] * (dl[k * A + a] - s) / f.active();
  }
  VecD out(p.size(), 0.0);
  gru_backward_ref(f.shape.gru, p.data(), c.y.data(), f.T, f.N, c.gc, u.data(), out.data(), dy.data());
  encoder_backward_ref(f.shape.enc, p.data() + G, c.x.data(), M, c.ec, dy.data(), out.data() + G);
  return out;
}

// The surrogate mean over active steps of [ratio A + beta H], in float64.
double surrogate_ref(const EncFixture& f, const VecD& p) {
  RefChain c(f, p);
  double sum = 0;
  for (int64_t k = 0; k < f.T * f.N; ++k) {
    if (f.mask[k] == 0.0f) continue;
    const VecD pr = c.probs(k);
    double h = 0;
    for (double e : pr) h -= e * std::log(e);
    sum += std::exp(std::log(pr[f.actions[k]]) - f.logp_old[k]) * f.adv[k] + f.entropy_coef * h;
  }
  return sum / f.active();
}

struct Objective : test::CpuObjective {
  Objective(const EncFixture& f, const PolicyBatch& b) : CpuObjective(f.shape, f.params, b) {}
};

TEST(NetworkObjective, EncoderFisherVectorProductMatchesFloat64Reference) {
  EncFixture f;
  const VecF vf = random_vec(f.params.size(), 6);
  const VecD ref = fvp_ref(f, to_double(f.params), to_double(vf));
  Objective o(f, f.batch());
  EXPECT_EQ(o.obj.active_steps(), 9.0);
  Buffer<float> grad = o.obj.make_vec(), out = o.obj.make_vec();
  o.obj.surrogate_grad(grad);
  EXPECT_LT(o.obj.rollout_mismatch(), 1e-5);  // pi_old came from the same parameters
  o.obj.fvp(o.vec(vf), out);
  EXPECT_LE(rel_err(o.host(out), ref), 1e-3);
  // The encoder's block is not negligible: the check covers the chain, not just the GRU.
  const VecD enc_part(ref.begin() + f.shape.gru_size(), ref.end());
  EXPECT_GT(test::dot(enc_part, enc_part), 1e-4 * test::dot(ref, ref));
}

TEST(NetworkObjective, EncoderSurrogateGradientMatchesFiniteDifferences) {
  for (double beta : {0.0, 0.1}) {
    EncFixture f;
    f.entropy_coef = beta;
    Objective o(f, f.batch());
    Buffer<float> grad = o.obj.make_vec();
    const double l0 = o.obj.surrogate_grad(grad);
    EXPECT_NEAR(o.obj.surrogate_kl().surrogate, l0, 1e-6);
    EXPECT_NEAR(surrogate_ref(f, to_double(f.params)), l0, 1e-5);
    const VecD v = to_double(random_vec(f.params.size(), 8));
    const double eps = 1e-6;
    VecD pp = to_double(f.params), pm = pp;
    for (size_t i = 0; i < v.size(); ++i) {
      pp[i] += eps * v[i];
      pm[i] -= eps * v[i];
    }
    const double fd = (surrogate_ref(f, pp) - surrogate_ref(f, pm)) / (2 * eps);
    const double an = test::dot(to_double(o.host(grad)), v);
    EXPECT_NEAR(an, fd, 1e-4 * std::max(1.0, std::fabs(fd))) << "beta " << beta;
  }
}

// Inactive steps change nothing; an all-ones mask is bit-identical to no mask.
TEST(NetworkObjective, MaskedStepsChangeNothing) {
  auto results = [](const EncFixture& f, bool with_mask) {
    Objective o(f, f.batch(with_mask));
    Buffer<float> grad = o.obj.make_vec(), fv = o.obj.make_vec();
    const double l = o.obj.surrogate_grad(grad);
    o.obj.fvp(o.vec(random_vec(f.params.size(), 6)), fv);
    const SurrogateKl skl = o.obj.surrogate_kl();
    const int64_t ids[2] = {2, 0};
    Buffer<float> mb = o.obj.make_vec();
    const double lm = o.obj.minibatch_grad(ids, 2, 0.2, mb);
    return std::tuple{l, o.host(grad), o.host(fv), skl.surrogate, skl.kl, lm, o.host(mb)};
  };
  EncFixture a, b;
  for (int64_t k = 0; k < a.T * a.N; ++k) {
    if (a.mask[k] != 0.0f) continue;
    b.actions[k] = (b.actions[k] + 1) % 3;
    b.adv[k] = 100.0f;
    b.logp_old[k] = -7.0f;
    for (int64_t i = 0; i < b.shape.input(); ++i) b.x[k * b.shape.input() + i] = 0.5f;
  }
  EXPECT_EQ(results(a, true), results(b, true));
  EncFixture ones;
  std::fill(ones.mask.begin(), ones.mask.end(), 1.0f);
  EXPECT_EQ(results(ones, true), results(ones, false));
}

// ---- the maze end to end ----------------------------------------------------------------------------

TrainConfig tiny_maze() {
  TrainConfig c;
  c.env.kind = EnvKind::kMaze;
  c.env.maze = MazeParams{5, 2, Maze::max_shortest_path(MazeParams{}), 4};
  c.hidden = 8;
  c.steps_per_iter = 2 * c.env.trial_length();
  c.iterations = 1;
  c.seed = 3;
  return c;
}

TEST(MazeTraining, OneIterationThenCheckpointRoundTrip) {
  const TrainConfig cfg = tiny_maze();
  const NetShape ps = cfg.policy_shape();
  ASSERT_TRUE(ps.encoder);
  EXPECT_EQ(ps.gru.input, 288);
  EXPECT_EQ(ps.input(), 3605);
  const fs::path dir = fs::temp_directory_path() / ("rl2_maze_ckpt_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto learner = make_cpu_learner(cfg);
  RunOptions opt;
  opt.dir = dir.string();
  std::ostringstream log;
  train_run(*learner, cfg, opt, log, false);
  const LoadedRun r = load_run(opt.dir);
  EXPECT_EQ(r.state.policy, learner->state().policy);
  EXPECT_EQ(r.state.baseline, learner->state().baseline);
  EXPECT_EQ(r.state.baseline_adam.m, learner->state().baseline_adam.m);
  EXPECT_EQ(r.cfg.env.maze.size, 5);
  EXPECT_EQ(r.cfg.env.maze.mazes, 4);
  EXPECT_EQ(r.cfg.env.maze.horizon, cfg.env.maze.horizon);
  EXPECT_EQ(r.cfg.env.maze.episodes, 2);
  const auto metrics = nlohmann::json::parse(std::ifstream(dir / "metrics.jsonl"));
  EXPECT_LT(metrics.at("rollout_logp_mismatch").get<double>(), 1e-4);  // rollout and training paths agree
  EXPECT_GT(metrics.at("entropy").get<double>(), 0.0);
  const SafetensorsFile f = read_safetensors((dir / "checkpoint.safetensors").string());
  const std::pair<const char*, std::vector<int64_t>> shapes[] = {
      {"policy.encoder.conv1.weight", {16, 3, 5, 5}},  {"policy.encoder.conv1.bias", {16}},
      {"policy.encoder.conv2.weight", {16, 16, 5, 5}}, {"policy.encoder.image_fc.weight", {256, 560}},
      {"policy.encoder.image_fc.bias", {256}},         {"policy.encoder.extra_fc.weight", {32, 5}},
      {"baseline.encoder.extra_fc.bias", {32}},        {"policy.gru.weight_ih_l0", {24, 288}},
      {"baseline.head.weight", {1, 8}}};
  for (const auto& [name, shape] : shapes) {
    ASSERT_NE(f.find(name), nullptr) << name;
    EXPECT_EQ(f.find(name)->shape, shape) << name;
  }
  fs::remove_all(dir);
}

// Per-episode results agree with the totals and with a host replay of the recorded actions.
TEST(MazeTraining, EvaluationEpisodesAreConsistent) {
  auto learner = make_cpu_learner(tiny_maze());
  const EnvConfig env = maze_eval_env(learner->config().env, false);
  ASSERT_EQ(env.maze.mazes, 0);
  ASSERT_EQ(env.maze.episodes, kMazeEvalEpisodes);
  const int64_t n = 4, T = env.trial_length(), E = env.episodes();
  const EvalResult r = learner->evaluate(env, n, kEvalStream, true);
  ASSERT_EQ(r.lengths.size(), static_cast<size_t>(n * E));
  for (int64_t i = 0; i < n; ++i) {
    int64_t steps = 0, wins = 0;
    for (int64_t e = 0; e < E; ++e) {
      const int32_t len = r.lengths[i * E + e];
      EXPECT_GE(len, 1);
      EXPECT_LE(len, env.maze.horizon);
      if (!r.success[i * E + e]) {
        EXPECT_EQ(len, env.maze.horizon);
      }
      steps += len;
      wins += r.success[i * E + e];
    }
    // Every step costs 0.04 (0.041 into a wall), a success pays 1.
    EXPECT_LE(r.totals[i], wins - 0.04 * steps + 1e-3);
    EXPECT_GE(r.totals[i], wins - 0.041 * steps - 1e-3);
    // The actions stop where the trial finished, and replaying them gives the same total.
    for (int64_t t = 0; t < T; ++t) EXPECT_EQ(r.actions[i * T + t] >= 0, t < steps) << "trial " << i << " step " << t;
    std::vector<float> task(static_cast<size_t>(env.task_size()));
    Maze::sample_task(env.maze, learner->config().seed, kEvalStream + i, task.data());
    Maze::State st;
    Maze::reset(env.maze, task.data(), st);
    double total = 0;
    for (int64_t t = 0; t < steps; ++t) total += Maze::step(env.maze, task.data(), st, r.actions[i * T + t], 0, 0).reward;
    EXPECT_EQ(total, r.totals[i]);
  }
}

TEST(MazeTraining, Table3Arithmetic) {
  EnvConfig env;
  env.kind = EnvKind::kMaze;
  env.maze = MazeParams{5, 2, 100, 0};
  EvalResult r;
  r.episodes = 2;
  r.totals = {0.5, 0.2, -8.0};
  r.lengths = {30, 40, 100, 60, 100, 100};  // trial 1 failed episode 1 (100 = horizon), trial 2 failed both
  r.success = {1, 1, 0, 1, 0, 0};
  const MazeMetrics m = maze_metrics("small", env, r);
  ASSERT_EQ(m.episodes.size(), 2u);
  EXPECT_EQ(m.episodes[0].successes, 1);
  EXPECT_DOUBLE_EQ(m.episodes[0].avg_len_success, 30.0);
  EXPECT_TRUE(std::isnan(m.episodes[0].avg_len_se));  // one success: no spread
  EXPECT_NEAR(m.episodes[0].success_pct, 100.0 / 3, 1e-12);
  EXPECT_NEAR(m.episodes[1].avg_len_success, 50.0, 1e-12);
  EXPECT_NEAR(m.episodes[1].avg_len_se, 10.0, 1e-12);  // sd 14.14 / sqrt 2
  EXPECT_NEAR(m.episodes[1].success_pct, 200.0 / 3, 1e-12);
  EXPECT_NEAR(m.improved_pct, 100.0 / 3, 1e-12);  // 40 > 30: no; 60 <= 100: yes; both failed: no
  const nlohmann::json j = table3_json({m});
  EXPECT_EQ(j["small"]["per_episode"][0]["paper"]["avg_len_success"].get<double>(), 52.4);
  EXPECT_EQ(j["small"]["paper_improved_pct"].get<double>(), 91.7);
  EXPECT_TRUE(j["small"]["per_episode"][0]["avg_len_success_se"].is_null());
  EXPECT_EQ(paper_maze_value("avg_len_success", 2, "large_se"), 5.9);
  EXPECT_EQ(paper_maze_value("success_pct", 5, "large"), 96.1);
  EXPECT_FALSE(paper_maze_value("success_pct", 1, "small_se").has_value());
  EXPECT_NE(table3_markdown({m}).find("| improved % | 33.3 [91.7] |"), std::string::npos) << table3_markdown({m});
}

}  // namespace
}  // namespace rl2
