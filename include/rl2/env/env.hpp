// Which task distribution, with its parameters: validation, sizes and a visitor that hands the
// concrete environment type to generic code (one template instead of per-environment copies).
#pragma once

#include <cstdint>
#include <string>

#include "rl2/env/bandit.hpp"
#include "rl2/env/maze.hpp"
#include "rl2/env/tabular_mdp.hpp"

namespace rl2 {

enum class EnvKind { kBandit, kMdp, kMaze };

struct EnvConfig {
  EnvKind kind = EnvKind::kBandit;
  BanditParams bandit;
  MdpParams mdp;
  MazeParams maze;

  // Throws InputError with a one-line reason when a size is zero, negative or absurd.
  void validate() const;
  std::string name() const;      // "bandit" | "mdp" | "maze"
  std::string describe() const;  // e.g. "bandit k=5 n=10", "maze 5x5 n=2 H=250 M=1000"
  int64_t task_size() const;     // floats of task data per trial
  int64_t obs_size() const;      // floats of observation per trial
  int32_t num_actions() const;
  int64_t trial_length() const;  // steps per trial
  int32_t episodes() const;
  // Host or device bytes one trial of a batch holds (task, state, obs, reward, done, action).
  int64_t bytes_per_trial() const;
};

EnvKind parse_env_kind(const std::string& name);  // throws InputError for an unknown name
// Maze layouts by name: "prim" (Maze::kPrim, the paper's mazes) and "corridor" (Maze::kCorridor).
int32_t parse_maze_layout(const std::string& name);  // throws InputError for an unknown name
std::string maze_layout_name(int32_t layout);

// Environments whose observation is drawn one column per thread (the maze): the CUDA kernels render their
// view with render_column (env_ops.hpp's EnvRender, one item per column) instead of calling observe() per trial.
template <class Env>
concept ColumnRendered = requires(const typename Env::Params& p, const float* task, const typename Env::State& s,
                                  float* obs) {
  Env::kWidth;
  Env::render_column(p, task, s, 0, obs);
};

// Calls f(Env{}, params) with the concrete environment type of `cfg`.
template <class F>
decltype(auto) visit_env(const EnvConfig& cfg, F&& f) {
  switch (cfg.kind) {
    case EnvKind::kMdp:
      return f(TabularMdp{}, cfg.mdp);
    case EnvKind::kMaze:
      return f(Maze{}, cfg.maze);
    case EnvKind::kBandit:
    default:
      return f(Bandit{}, cfg.bandit);
  }
}

}  // namespace rl2
