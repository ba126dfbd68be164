// Batched bandit and tabular-MDP simulators on the CPU backend: the task distributions of DESIGN.md
// section 2, episode structure, determinism, batch-size independence and input errors.
// Statistical checks use fixed seeds; each states its margin in standard errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "env_test_util.hpp"
#include "rl2/core/check.hpp"
#include "rl2/env/batch.hpp"
#include "stat_check.hpp"

namespace rl2 {
namespace {

EnvConfig bandit_cfg(int arms, int episodes) {
  EnvConfig c;
  c.kind = EnvKind::kBandit;
  c.bandit = {arms, episodes};
  return c;
}
EnvConfig mdp_cfg(int states, int actions, int horizon, int episodes) {
  EnvConfig c;
  c.kind = EnvKind::kMdp;
  c.mdp = {states, actions, horizon, episodes};
  return c;
}

// p_i ~ U[0,1): 20000 trials x 5 arms, standard error of the mean 0.2887/sqrt(1e5) = 0.0009; margin 6 se.
// Reward - p_a has mean 0 and variance <= 1/4: 2e5 pulls give se <= 0.0011; margin 6 se.
TEST(BanditEnv, TaskAndRewardDistribution) {
  const EnvConfig cfg = bandit_cfg(5, 10);
  auto batch = make_cpu_env_batch(cfg, 20000);
  batch->reset(3, 0);
  const EnvSnapshot s0 = batch->snapshot();
  double sum_p = 0;
  for (float p : s0.tasks) {
    ASSERT_GE(p, 0.0f);
    ASSERT_LT(p, 1.0f);
    sum_p += p;
  }
  EXPECT_TRUE(test::stat_near("bandit p mean", sum_p / s0.tasks.size(), 0.5, 6 * 0.2887 / std::sqrt(1e5), 0.2887 / std::sqrt(1e5)));
  double excess = 0;
  int64_t pulls = 0;
  for (int t = 0; t < 10; ++t) {
    const auto a = test::pattern_actions(batch->trials(), t, 5);
    batch->step(a.data());
    const EnvSnapshot s = batch->snapshot();
    for (int64_t i = 0; i < batch->trials(); ++i) {
      ASSERT_TRUE(s.rewards[i] == 0.0f || s.rewards[i] == 1.0f);
      ASSERT_EQ(s.dones[i], 1);  // every pull is an episode
      ASSERT_EQ(s.states[i], t + 1);
      excess += s.rewards[i] - s0.tasks[i * 5 + a[i]];
      ++pulls;
    }
  }
  EXPECT_TRUE(test::stat_near("bandit reward - p", excess / pulls, 0.0, 6 * 0.5 / std::sqrt(static_cast<double>(pulls)),
                              0.5 / std::sqrt(static_cast<double>(pulls))));
  EXPECT_TRUE(batch->trial_over());
  const auto a = test::pattern_actions(batch->trials(), 10, 5);
  EXPECT_THROW(batch->step(a.data()), Error);
}

// mu ~ N(1,1): 4000 trials x 50 pairs = 2e5 draws; se of the mean 0.0022, of the variance 0.0032; margin 6 se.
// Dirichlet(1) over 10 states: each P_j has mean 0.1 and sd 0.09; 2e5 rows give se 0.0002; margin 6 se.
TEST(MdpEnv, TaskDistribution) {
  const EnvConfig cfg = mdp_cfg(10, 5, 10, 2);
  auto batch = make_cpu_env_batch(cfg, 4000);
  batch->reset(11, 0);
  const EnvSnapshot s = batch->snapshot();
  const int64_t ts = cfg.task_size();
  double sum = 0, sum2 = 0, p0 = 0;
  int64_t nmu = 0, nrows = 0;
  for (int64_t i = 0; i < batch->trials(); ++i) {
    const float* task = &s.tasks[i * ts];
    for (int k = 0; k < 50; ++k) {
      sum += task[k];
      sum2 += (task[k] - 1.0) * (task[k] - 1.0);
      ++nmu;
    }
    for (int k = 0; k < 50; ++k) {
      const float* cdf = task + 50 + k * 10;
      for (int j = 1; j < 10; ++j) ASSERT_LE(cdf[j - 1], cdf[j]);
      ASSERT_EQ(cdf[9], 1.0f);
      p0 += cdf[0];
      ++nrows;
    }
  }
  EXPECT_TRUE(test::stat_near("mdp mu mean", sum / nmu, 1.0, 6 / std::sqrt(static_cast<double>(nmu)), 1 / std::sqrt(static_cast<double>(nmu))));
  EXPECT_TRUE(test::stat_near("mdp mu variance", sum2 / nmu, 1.0, 6 * std::sqrt(2.0 / nmu), std::sqrt(2.0 / nmu)));
  EXPECT_TRUE(test::stat_near("mdp P(0) mean", p0 / nrows, 0.1, 6 * 0.0905 / std::sqrt(static_cast<double>(nrows)),
                              0.0905 / std::sqrt(static_cast<double>(nrows))));
}

// Episodes last exactly `horizon` steps and restart in state 0; obs is onehot(s); reward noise is N(0,1)
// (2000 trials x 40 steps = 8e4 draws: se 0.0035 for the mean, 0.005 for the variance; margin 6 se);
// next states follow the task's CDF row (1{next = 0} - P(0) has mean 0, se < 0.0018; margin 6 se).
TEST(MdpEnv, DynamicsAndEpisodes) {
  const EnvConfig cfg = mdp_cfg(10, 5, 4, 10);
  auto batch = make_cpu_env_batch(cfg, 2000);
  batch->reset(5, 0);
  EnvSnapshot prev = batch->snapshot();
  const int64_t ts = cfg.task_size();
  double noise = 0, noise2 = 0, trans = 0;
  int64_t n = 0, ntrans = 0;
  for (int t = 0; t < 40; ++t) {
    const auto a = test::pattern_actions(batch->trials(), t, 5);
    batch->step(a.data());
    const EnvSnapshot s = batch->snapshot();
    for (int64_t i = 0; i < batch->trials(); ++i) {
      const int32_t s_prev = prev.states[2 * i + 1];
      const int32_t s_next = s.states[2 * i + 1];
      ASSERT_EQ(s.states[2 * i], t + 1);
      const bool end = (t + 1) % 4 == 0;
      ASSERT_EQ(s.dones[i], end ? 1 : 0);
      if (end) {
        ASSERT_EQ(s_next, 0);
      }
      for (int j = 0; j < 10; ++j) ASSERT_EQ(s.obs[i * 10 + j], j == s_next ? 1.0f : 0.0f);
      const float* task = &s.tasks[i * ts];
      const double z = s.rewards[i] - task[s_prev * 5 + a[i]];
      noise += z;
      noise2 += z * z;
      ++n;
      if (!end) {
        // The indicator of landing in state 0 minus its probability has mean 0.
        const float* cdf = task + 50 + (s_prev * 5 + a[i]) * 10;
        trans += (s_next == 0 ? 1.0 : 0.0) - cdf[0];
        ntrans += 1;
      }
    }
    prev = s;
  }
  EXPECT_TRUE(test::stat_near("mdp reward noise mean", noise / n, 0.0, 6 / std::sqrt(static_cast<double>(n)), 1 / std::sqrt(static_cast<double>(n))));
  EXPECT_TRUE(test::stat_near("mdp reward noise variance", noise2 / n, 1.0, 6 * std::sqrt(2.0 / n), std::sqrt(2.0 / n)));
  EXPECT_TRUE(test::stat_near("mdp transition vs CDF", trans / ntrans, 0.0, 6 * 0.5 / std::sqrt(static_cast<double>(ntrans)),
                              0.5 / std::sqrt(static_cast<double>(ntrans))));
}

bool same_snapshot(const EnvSnapshot& a, const EnvSnapshot& b) {
  auto eq = [](const auto& x, const auto& y) {
    return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(x[0])) == 0;
  };
  return eq(a.tasks, b.tasks) && eq(a.states, b.states) && eq(a.obs, b.obs) && eq(a.rewards, b.rewards) &&
         eq(a.dones, b.dones);
}

// Same seed and actions: identical bits. Another seed: different tasks. The eval stream differs from
// the training stream. A trial's bits do not depend on the batch it runs in.
TEST(EnvBatch, DeterministicAndBatchIndependent) {
  for (const EnvConfig& cfg : {bandit_cfg(7, 6), mdp_cfg(6, 3, 3, 2)}) {
    auto run = [&](uint64_t seed, uint64_t first, int64_t trials) {
      auto b = make_cpu_env_batch(cfg, trials);
      b->reset(seed, first);
      std::vector<EnvSnapshot> snaps{b->snapshot()};
      for (int64_t t = 0; t < cfg.trial_length(); ++t) {
        std::vector<int32_t> a = test::pattern_actions(trials + static_cast<int64_t>(first), t, cfg.num_actions());
        a.erase(a.begin(), a.begin() + static_cast<int64_t>(first));
        b->step(a.data());
        snaps.push_back(b->snapshot());
      }
      return snaps;
    };
    const auto a = run(9, 0, 65), b = run(9, 0, 65), c = run(10, 0, 65), d = run(9, 7, 58);
    for (size_t t = 0; t < a.size(); ++t) EXPECT_TRUE(same_snapshot(a[t], b[t])) << cfg.describe() << " step " << t;
    EXPECT_NE(a[0].tasks, c[0].tasks);
    // Trials 7..64 of the big batch are trials 0..57 of the batch that starts at id 7.
    const int64_t ts = cfg.task_size();
    for (size_t t = 0; t < a.size(); ++t) {
      ASSERT_TRUE(std::equal(d[t].tasks.begin(), d[t].tasks.end(), a[t].tasks.begin() + 7 * ts));
      ASSERT_TRUE(std::equal(d[t].rewards.begin(), d[t].rewards.end(), a[t].rewards.begin() + 7));
    }
    auto eval = make_cpu_env_batch(cfg, 65);
    eval->reset(9, kEvalStream);
    EXPECT_NE(eval->snapshot().tasks, a[0].tasks);
  }
}

TEST(EnvBatch, RejectsBadInput) {
  EXPECT_THROW(make_env_batch(Device::kCpu, bandit_cfg(5, 10), 0), InputError);
  EXPECT_THROW(make_env_batch(Device::kCpu, bandit_cfg(0, 10), 10), InputError);
  EXPECT_THROW(make_env_batch(Device::kCpu, bandit_cfg(5, -1), 10), InputError);
  EXPECT_THROW(make_env_batch(Device::kCpu, mdp_cfg(10, 5, 0, 10), 10), InputError);
  EXPECT_THROW(parse_env_kind("cartpole"), InputError);
  try {
    make_env_batch(Device::kCpu, mdp_cfg(4000, 4000, 10, 10), 1000000);
    FAIL() << "an impossible batch was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("needs"), std::string::npos) << e.what();
  }
  auto batch = make_cpu_env_batch(bandit_cfg(3, 2), 4);
  batch->reset(1, 0);
  const std::vector<int32_t> bad{0, 1, 3, 2};
  EXPECT_THROW(batch->step(bad.data()), Error);
}

TEST(Device, CpuAlwaysResolvesAndCudaNeedsADevice) {
  std::string note;
  EXPECT_EQ(resolve_device("cpu", &note), Device::kCpu);
  EXPECT_FALSE(note.empty());
  const Device d = resolve_device("auto", &note);
  EXPECT_EQ(d == Device::kCuda, cuda_probe().usable) << note;
  if (!cuda_probe().usable) {
    EXPECT_THROW(resolve_device("cuda"), InputError);
  }
  EXPECT_THROW(resolve_device("tpu"), InputError);
}

}  // namespace
}  // namespace rl2
