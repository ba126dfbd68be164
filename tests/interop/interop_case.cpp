// Writes an interop case for tests/interop/safetensors_policy.py: loads an exported policy, builds
// input sequences in the policy's layout (real rollout-like inputs: onehot actions, rewards, dones),
// runs the product's sequence forward (net_forward, the training path) and writes
// {"x": [T][B][I], "probs": [T][B][A]}.
// MDP: random onehot states and previous actions. Maze: trials 0..B-2 play real configurations (the
// rendered [3, 30, 40] CHW view in [-1, 1] from Maze::observe, random actions, the true rewards and
// dones); trial B-1 replaces the image with uniform noise in [-1, 1] so every pixel position and channel
// carries an independent value. Without an encoder net_forward is the GRU call bit for bit.
// With --trial the case is whole trials of the run's environment: T = its trial length (bandit: episodes;
// MDP and maze: episodes x horizon, the maze with the run's own horizon), the same trials and inputs
// otherwise (tests/interop/onnx_check.py runs an ONNX export over them step by step).
// usage: rl2_interop_case MODEL.safetensors CASE.json [--trial]
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <nlohmann/json.hpp>

#include "rl2/core/check.hpp"
#include "rl2/core/rng.hpp"
#include "rl2/env/maze.hpp"
#include "rl2/policy/network.hpp"
#include "rl2/policy/softmax.hpp"
#include "rl2/train/run.hpp"

namespace {

constexpr int64_t kSteps = 6, kTrials = 3;            // MDP case
constexpr int64_t kMazeSteps = 8, kMazeTrials = 4;    // maze case
constexpr int32_t kMazeCaseHorizon = 3;               // short episodes: the case sees dones and resets

// x: [T, B, I] for a tabular MDP (or a bandit: no obs).
void mdp_inputs(const rl2::InputLayout& layout, int32_t A, int64_t T, int64_t B, std::vector<float>& x) {
  const int64_t I = layout.size();
  rl2::RandomStream rs(123, 0, 0, rl2::Purpose::kAction);
  std::vector<float> obs(static_cast<size_t>(layout.obs));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t b = 0; b < B; ++b) {
      for (auto& o : obs) o = 0.0f;
      if (layout.obs > 0) obs[rl2::uniform_int(rs.next_u32(), static_cast<uint32_t>(layout.obs))] = 1.0f;
      const int32_t prev = t == 0 ? -1 : static_cast<int32_t>(rl2::uniform_int(rs.next_u32(), static_cast<uint32_t>(A)));
      rl2::encode_input(layout, obs.data(), prev, t == 0 ? 0.0f : rs.uniform(), t == 0 ? 0.0f : static_cast<float>(t % 2),
                        &x[(t * B + b) * I]);
    }
}

// x: [T, B, I] for the maze: B trials of random actions from the start of distinct configurations.
// whole_trial: the run's own horizon and episodes (T is its trial length), else short episodes.
void maze_inputs(const rl2::InputLayout& layout, rl2::MazeParams p, uint64_t seed, int64_t T, int64_t B,
                 bool whole_trial, std::vector<float>& x) {
  using rl2::Maze;
  const int64_t I = layout.size();
  if (!whole_trial) {
    p.horizon = kMazeCaseHorizon;
    p.episodes = static_cast<int32_t>(T);  // the trial never finishes inside the case
  }
  p.mazes = 0;  // trial b plays configuration b
  std::vector<float> task(static_cast<size_t>(Maze::task_size(p))), obs(static_cast<size_t>(layout.obs));
  rl2::RandomStream rs(seed, 0, 0, rl2::Purpose::kAction);
  for (int64_t b = 0; b < B; ++b) {
    Maze::sample_task(p, seed, static_cast<uint64_t>(b), task.data());
    Maze::State st{};
    Maze::reset(p, task.data(), st);
    int32_t prev = -1;
    float reward = 0.0f, done = 0.0f;
    for (int64_t t = 0; t < T; ++t) {
      Maze::observe(p, task.data(), st, obs.data());
      if (b == B - 1)
        for (auto& o : obs) o = static_cast<float>(rl2::uniform_signed(rs.next_u32()));
      rl2::encode_input(layout, obs.data(), prev, reward, done, &x[(t * B + b) * I]);
      prev = static_cast<int32_t>(rl2::uniform_int(rs.next_u32(), static_cast<uint32_t>(layout.actions)));
      const rl2::StepOut out = Maze::step(p, task.data(), st, prev, 0, 0);
      reward = out.reward;
      done = static_cast<float>(out.done);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool whole_trial = argc == 4 && std::string(argv[3]) == "--trial";
  if (argc != 3 && !whole_trial) {
    std::cerr << "usage: rl2_interop_case MODEL.safetensors CASE.json [--trial]\n";
    return 2;
  }
  try {
    const rl2::LoadedRun run = rl2::load_run(argv[1]);
    const rl2::InputLayout layout = run.cfg.input_layout();
    const rl2::NetShape shape = run.cfg.policy_shape();
    const bool maze = run.cfg.env.kind == rl2::EnvKind::kMaze || shape.encoder;
    const int64_t T = whole_trial ? run.cfg.env.trial_length() : maze ? kMazeSteps : kSteps;
    const int64_t B = maze ? kMazeTrials : kTrials, I = layout.size(), A = shape.gru.out;
    RL2_CHECK(shape.input() == I, "interop_case: the network's input size is not the input layout's");
    std::vector<float> x(static_cast<size_t>(T * B * I)), logits(static_cast<size_t>(T * B * A)), p(static_cast<size_t>(A));
    if (maze) {
      maze_inputs(layout, run.cfg.env.maze, 123, T, B, whole_trial, x);
    } else {
      mdp_inputs(layout, static_cast<int32_t>(A), T, B, x);
    }
    rl2::NetCache cache;
    rl2::net_forward(shape, run.state.policy.data(), x.data(), T, B, cache, logits.data());
    nlohmann::json jx = nlohmann::json::array(), jp = nlohmann::json::array();
    for (int64_t t = 0; t < T; ++t) {
      nlohmann::json xt = nlohmann::json::array(), pt = nlohmann::json::array();
      for (int64_t b = 0; b < B; ++b) {
        xt.push_back(std::vector<float>(&x[(t * B + b) * I], &x[(t * B + b) * I] + I));
        rl2::softmax(&logits[(t * B + b) * A], static_cast<int32_t>(A), p.data());
        pt.push_back(p);
      }
      jx.push_back(xt);
      jp.push_back(pt);
    }
    std::ofstream(argv[2]) << nlohmann::json{{"x", jx}, {"probs", jp}}.dump() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "rl2_interop_case: " << e.what() << "\n";
    return 1;
  }
}
