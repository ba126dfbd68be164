// Shared flag definitions and output helpers for the commands.
#include "commands/common.hpp"

#include <omp.h>

#include <iostream>

#include "rl2/core/check.hpp"

namespace rl2 {

std::ostream& GlobalFlags::human() const { return json() ? std::cerr : std::cout; }

void add_global_flags(CLI::App& app, GlobalFlags& g) {
  app.add_option("--device", g.device, "auto: the GPU when one is usable, else the CPU; cpu; cuda (an error without a GPU)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  app.add_option("--seed", g.seed, "seed of every random number (tasks, rewards, actions); same seed, same numbers")
      ->capture_default_str();
  app.add_option("--format", g.format, "table: text for people; json: one JSON object on stdout")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  app.add_option("--threads", g.threads, "CPU threads (0: every core)")->check(CLI::Range(0, 4096))->capture_default_str();
}

void add_env_flags(CLI::App& app, EnvFlags& f) {
  app.add_option("--env", f.env, "task distribution: bandit | mdp | maze")->capture_default_str();
  app.add_option("--arms", f.arms, "bandit: number of arms k (paper: 5, 10, 50)")->capture_default_str();
  app.add_option("--episodes", f.episodes,
                 "episodes per trial n (bandit: pulls; paper: 10, 100, 500 / 10..100; default 10, maze 2)");
  app.add_option("--states", f.states, "mdp: number of states (paper: 10)")->capture_default_str();
  app.add_option("--actions", f.actions, "mdp: number of actions (paper: 5)")->capture_default_str();
  app.add_option("--horizon", f.horizon, "mdp, maze: steps per episode (default: mdp 10, maze 250, 9x9 maze 1000)");
  app.add_option("--size", f.size, "maze: 5 or 9 (5x5 or 9x9 cells inside the outer wall)")->capture_default_str();
  app.add_option("--mazes", f.mazes, "maze: training configurations (layout, start, target) drawn from the seed")
      ->capture_default_str();
}

EnvConfig EnvFlags::to_config() const {
  EnvConfig c;
  c.kind = parse_env_kind(env);
  auto narrow = [](int64_t v, const char* name) {
    RL2_REQUIRE(v >= 1, std::string("--") + name + " must be at least 1 (got " + std::to_string(v) + ")");
    RL2_REQUIRE(v <= (int64_t{1} << 30), std::string("--") + name + " " + std::to_string(v) + " is absurdly large");
    return static_cast<int32_t>(v);
  };
  if (c.kind == EnvKind::kBandit) {
    c.bandit = {narrow(arms, "arms"), narrow(episodes.value_or(10), "episodes")};
  } else if (c.kind == EnvKind::kMdp) {
    c.mdp = {narrow(states, "states"), narrow(actions, "actions"), narrow(horizon.value_or(10), "horizon"),
             narrow(episodes.value_or(10), "episodes")};
  } else {
    // The paper evaluates 9x9 mazes with 4x the 5x5 horizon.
    const int32_t s = narrow(size, "size");
    c.maze = {s, narrow(episodes.value_or(2), "episodes"), narrow(horizon.value_or(s == 9 ? 1000 : 250), "horizon"),
              narrow(mazes, "mazes")};
  }
  c.validate();
  return c;
}

void apply_threads(const GlobalFlags& g) {
  if (g.threads > 0) omp_set_num_threads(g.threads);
}

void require_host_memory(double count, double bytes_each, const std::string& what) {
  const double need = count * bytes_each;
  const int64_t avail = host_available_bytes();
  if (avail <= 0) return;
  RL2_REQUIRE(need <= 0.9 * static_cast<double>(avail),
              what + " needs " + format_bytes(need) + " of memory; " + format_bytes(static_cast<double>(avail)) +
                  " is available");
}

}  // namespace rl2
