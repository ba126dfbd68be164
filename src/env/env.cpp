// EnvConfig: validation with one-line messages, sizes, and the device-dispatching batch factory.
#include "rl2/env/env.hpp"

#include "rl2/core/check.hpp"
#include "rl2/env/batch.hpp"

namespace rl2 {
namespace {

// Limits that keep counters and indices inside their fields (rng.hpp): steps are 32-bit counter words.
constexpr int64_t kMaxTrialSteps = int64_t{1} << 30;
constexpr int32_t kMaxArms = 1 << 20;
constexpr int32_t kMaxStates = 4096;
constexpr int32_t kMaxActions = 4096;

void require_positive(int64_t v, const char* what) {
  RL2_REQUIRE(v >= 1, std::string("--") + what + " must be at least 1 (got " + std::to_string(v) + ")");
}

}  // namespace

EnvKind parse_env_kind(const std::string& name) {
  if (name == "bandit") return EnvKind::kBandit;
  if (name == "mdp") return EnvKind::kMdp;
  if (name == "maze") return EnvKind::kMaze;
  throw InputError("unknown --env '" + name + "' (expected bandit, mdp or maze)");
}

int32_t parse_maze_layout(const std::string& name) {
  if (name == "prim") return Maze::kPrim;
  if (name == "corridor") return Maze::kCorridor;
  throw InputError("unknown --layout '" + name + "' (expected prim or corridor)");
}

std::string maze_layout_name(int32_t layout) { return layout == Maze::kCorridor ? "corridor" : "prim"; }

void EnvConfig::validate() const {
  if (kind == EnvKind::kBandit) {
    require_positive(bandit.arms, "arms");
    require_positive(bandit.episodes, "episodes");
    RL2_REQUIRE(bandit.arms <= kMaxArms, "--arms " + std::to_string(bandit.arms) + " is too large (at most " +
                                             std::to_string(kMaxArms) + ")");
  } else if (kind == EnvKind::kMdp) {
    require_positive(mdp.states, "states");
    require_positive(mdp.actions, "actions");
    require_positive(mdp.horizon, "horizon");
    require_positive(mdp.episodes, "episodes");
    RL2_REQUIRE(mdp.states <= kMaxStates,
                "--states " + std::to_string(mdp.states) + " is too large (at most " + std::to_string(kMaxStates) + ")");
    RL2_REQUIRE(mdp.actions <= kMaxActions, "--actions " + std::to_string(mdp.actions) + " is too large (at most " +
                                                std::to_string(kMaxActions) + ")");
  } else {
    RL2_REQUIRE(maze.size >= 3 && maze.size <= 9 && maze.size % 2 == 1,
                "--size must be 3, 5, 7 or 9 (cells inside the outer wall; the paper's are 5 and 9; got " +
                    std::to_string(maze.size) + ")");
    RL2_REQUIRE(maze.layout == Maze::kPrim || maze.layout == Maze::kCorridor,
                "maze layout " + std::to_string(maze.layout) + " is unknown");
    require_positive(maze.episodes, "episodes");
    // 0 is the evaluation's "every trial its own configuration"; the CLI asks for at least 1.
    RL2_REQUIRE(maze.mazes >= 0, "--mazes must be at least 1 (got " + std::to_string(maze.mazes) + ")");
    const int32_t need = Maze::max_shortest_path(maze);
    RL2_REQUIRE(maze.horizon >= need, "--horizon " + std::to_string(maze.horizon) +
                                          " is too small to reach a target in a size-" + std::to_string(maze.size) +
                                          " maze (needs at least " + std::to_string(need) + " steps)");
  }
  RL2_REQUIRE(trial_length() <= kMaxTrialSteps, "a trial of " + std::to_string(trial_length()) +
                                                    " steps is too long (at most " + std::to_string(kMaxTrialSteps) + ")");
}

std::string EnvConfig::name() const {
  return kind == EnvKind::kBandit ? "bandit" : kind == EnvKind::kMdp ? "mdp" : "maze";
}

std::string EnvConfig::describe() const {
  if (kind == EnvKind::kBandit)
    return "bandit k=" + std::to_string(bandit.arms) + " n=" + std::to_string(bandit.episodes);
  if (kind == EnvKind::kMaze)
    return std::string(maze.layout == Maze::kCorridor ? "corridor " : "maze ") + std::to_string(maze.size) + "x" +
           std::to_string(maze.size) + " n=" + std::to_string(maze.episodes) +
           " H=" + std::to_string(maze.horizon) + " M=" + std::to_string(maze.mazes);
  return "mdp S=" + std::to_string(mdp.states) + " A=" + std::to_string(mdp.actions) + " T=" +
         std::to_string(mdp.horizon) + " n=" + std::to_string(mdp.episodes);
}

int64_t EnvConfig::task_size() const {
  return visit_env(*this, [](auto env, const auto& p) { return decltype(env)::task_size(p); });
}
int64_t EnvConfig::obs_size() const {
  return visit_env(*this, [](auto env, const auto& p) { return decltype(env)::obs_size(p); });
}
int32_t EnvConfig::num_actions() const {
  return visit_env(*this, [](auto env, const auto& p) { return decltype(env)::num_actions(p); });
}
int64_t EnvConfig::trial_length() const {
  return visit_env(*this, [](auto env, const auto& p) { return decltype(env)::trial_length(p); });
}
int32_t EnvConfig::episodes() const {
  return visit_env(*this, [](auto, const auto& p) { return p.episodes; });
}

int64_t EnvConfig::bytes_per_trial() const {
  const int64_t state_bytes = visit_env(*this, [](auto env, const auto&) {
    return static_cast<int64_t>(sizeof(typename decltype(env)::State));
  });
  return 4 * (task_size() + obs_size()) + state_bytes + 4 /*reward*/ + 1 /*done*/ + 4 /*action*/;
}

void check_batch_fits(Device device, const EnvConfig& cfg, int64_t trials) {
  cfg.validate();
  RL2_REQUIRE(trials >= 1, "the number of trials must be at least 1 (got " + std::to_string(trials) + ")");
  const double need = static_cast<double>(cfg.bytes_per_trial()) * static_cast<double>(trials);
  const bool gpu = device == Device::kCuda;
  const int64_t avail = gpu ? cuda_probe().free_bytes : host_available_bytes();
  if (avail <= 0 && !gpu) return;  // unknown host memory: let the allocation decide
  const double usable = 0.9 * static_cast<double>(avail);
  if (need <= usable) return;
  const int64_t fit = static_cast<int64_t>(usable / static_cast<double>(cfg.bytes_per_trial()));
  throw InputError("a batch of " + std::to_string(trials) + " " + cfg.describe() + " trials needs " + format_bytes(need) +
                   " of " + (gpu ? "GPU memory; " : "memory; ") + format_bytes(static_cast<double>(avail)) +
                   (gpu ? " is free" : " is available") +
                   (fit > 0 ? " (at most " + std::to_string(fit) + " trials fit)" : ""));
}

}  // namespace rl2
