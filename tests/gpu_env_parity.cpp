// CPU vs CUDA batched simulators, bit for bit (DESIGN.md section 2): same seeds and actions give
// identical tasks, states, observations, rewards and dones at every step, at awkward batch sizes
// (bandit, tabular MDP, and the maze with its rendered view).
// Skips with the reason when no GPU is usable (label `gpu`).
#include <gtest/gtest.h>

#include <cstring>

#include "env_test_util.hpp"
#include "rl2/core/check.hpp"
#include "rl2/env/batch.hpp"

namespace rl2 {
namespace {

#if defined(RL2_WITH_CUDA)
template <class T>
void expect_bits_equal(const std::vector<T>& cpu, const std::vector<T>& gpu, const char* what, int64_t step) {
  ASSERT_EQ(cpu.size(), gpu.size()) << what;
  if (std::memcmp(cpu.data(), gpu.data(), cpu.size() * sizeof(T)) == 0) return;
  for (size_t i = 0; i < cpu.size(); ++i) {
    ASSERT_EQ(std::memcmp(&cpu[i], &gpu[i], sizeof(T)), 0)
        << what << " differs at element " << i << " after step " << step << ": cpu " << +cpu[i] << " gpu " << +gpu[i];
  }
}

void check_parity(const EnvConfig& cfg, int64_t trials) {
  auto cpu = make_env_batch(Device::kCpu, cfg, trials);
  auto gpu = make_env_batch(Device::kCuda, cfg, trials);
  for (uint64_t first : {uint64_t{0}, kEvalStream + 12345}) {
    cpu->reset(2024, first);
    gpu->reset(2024, first);
    for (int64_t t = 0; t <= cfg.trial_length(); ++t) {
      const EnvSnapshot a = cpu->snapshot(), b = gpu->snapshot();
      expect_bits_equal(a.tasks, b.tasks, "tasks", t);
      expect_bits_equal(a.states, b.states, "states", t);
      expect_bits_equal(a.obs, b.obs, "obs", t);
      expect_bits_equal(a.rewards, b.rewards, "rewards", t);
      expect_bits_equal(a.dones, b.dones, "dones", t);
      if (t % 7 == 3) {  // observe() alone (the bench's render-only pass) rewrites the same view
        gpu->observe();
        expect_bits_equal(a.obs, gpu->snapshot().obs, "obs after observe()", t);
      }
      if (t == cfg.trial_length()) break;
      const auto host_actions = test::pattern_actions(trials, t, cfg.num_actions());
      cpu->step(host_actions.data());
      gpu->copy_actions_from_host(host_actions.data());
      gpu->step(gpu->action_buffer());
    }
  }
}
#endif

class GpuEnvParity : public ::testing::TestWithParam<int64_t> {
 protected:
  void SetUp() override {
    if (!cuda_probe().usable) GTEST_SKIP() << "no GPU: " << cuda_probe().reason;
  }
};

TEST_P(GpuEnvParity, Bandit) {
#if defined(RL2_WITH_CUDA)
  EnvConfig cfg;
  cfg.kind = EnvKind::kBandit;
  cfg.bandit = {5, 10};
  check_parity(cfg, GetParam());
  cfg.bandit = {50, 3};
  check_parity(cfg, GetParam());
#endif
}

TEST_P(GpuEnvParity, Mdp) {
#if defined(RL2_WITH_CUDA)
  EnvConfig cfg;
  cfg.kind = EnvKind::kMdp;
  cfg.mdp = {10, 5, 10, 3};
  check_parity(cfg, GetParam());
  cfg.mdp = {3, 2, 1, 4};
  check_parity(cfg, GetParam());
#endif
}

INSTANTIATE_TEST_SUITE_P(AwkwardSizes, GpuEnvParity, ::testing::Values(1, 7, 65, 1000, 4097));

// The maze: Prim layouts, dynamics and the per-column render kernel against the CPU's observe() loop.
// Shortest valid horizons keep the per-step snapshots (3600 floats a trial) quick.
class GpuMazeParity : public GpuEnvParity {};

TEST_P(GpuMazeParity, Maze) {
#if defined(RL2_WITH_CUDA)
  EnvConfig cfg;
  cfg.kind = EnvKind::kMaze;
  cfg.maze = {5, 2, Maze::max_shortest_path(MazeParams{}), 1000};  // a training pool
  check_parity(cfg, GetParam());
  cfg.maze = {9, 1, Maze::max_shortest_path(MazeParams{9, 1, 0, 0}), 0};  // one configuration per trial
  check_parity(cfg, GetParam());
#endif
}

INSTANTIATE_TEST_SUITE_P(AwkwardSizes, GpuMazeParity, ::testing::Values(1, 7, 65));

TEST(GpuEnv, CudaRequestWithoutDeviceIsAnInputError) {
  if (cuda_probe().usable) GTEST_SKIP() << "a GPU is present; this checks the no-GPU path";
  EnvConfig cfg;
  EXPECT_THROW(make_env_batch(Device::kCuda, cfg, 10), InputError);
  EXPECT_THROW(resolve_device("cuda"), InputError);
}

}  // namespace
}  // namespace rl2
