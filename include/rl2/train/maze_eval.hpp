// The maze's held-out evaluation and the paper's Table 3 (DESIGN.md section 6): per episode index, the
// average length of successful episodes with its standard error and the % of successful episodes; and
// the % of trials whose episode 2 reaches the target no later than episode 1 did ("improved"; a failed
// episode 1 counts as `horizon` steps, a failed episode 2 is never an improvement). Two settings: "small", the 5x5 mazes of training, and "large", 9x9 with a 4x horizon;
// 5 episodes each, on configurations drawn from the evaluation stream (mazes = 0: every trial its own
// configuration, ids kEvalStream + i), disjoint from training's pool.
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "rl2/stats/stats.hpp"
#include "rl2/train/learner.hpp"

namespace rl2 {

constexpr int32_t kMazeEvalEpisodes = 5;

struct MazeEpisodeMetrics {
  int64_t successes = 0;
  double avg_len_success = 0.0;  // NaN when no episode succeeded
  double avg_len_se = 0.0;       // standard error of that mean (sample sd / sqrt(successes))
  double success_pct = 0.0;
};

struct MazeMetrics {
  std::string name;  // "small" | "large" | "trained" (a ladder rung)
  EnvConfig env;     // what was evaluated
  int64_t instances = 0;
  MeanStderr total;  // total reward per trial
  std::vector<MazeEpisodeMetrics> episodes;
  double improved_pct = 0.0;  // NaN with fewer than 2 episodes
};

// A rung of the training ladder (docs/maze.md): the corridor or a 3x3 maze. Its evaluation is one setting,
// "trained": the trained layout, size and horizon on held-out configurations, with no paper numbers.
bool maze_ladder_rung(const EnvConfig& trained);
// The evaluation setting for a policy trained on the maze `trained`: small = 5x5 with the trained horizon
// (250 when it was trained on a larger maze), large = 9x9 with 4x the small horizon; kMazeEvalEpisodes
// episodes. For a ladder rung both are the trained setting.
EnvConfig maze_eval_env(const EnvConfig& trained, bool large);
// Table 3's numbers from an evaluation of `env`.
MazeMetrics maze_metrics(const std::string& name, const EnvConfig& env, const EvalResult& r);
// Evaluates `instances` held-out configurations of the small and (with `large`) the large setting; with
// log, one line per setting (what, and how long it took). A ladder rung has its one setting.
std::vector<MazeMetrics> evaluate_table3(Learner& learner, int64_t instances, std::ostream* log = nullptr,
                                         bool large = true);

// {"small": {...}, "large": {...}}: per setting size, horizon, episodes, instances, mean, stderr, improved_pct,
// per_episode [{episode, successes, avg_len_success, avg_len_success_se, success_pct}], and the paper's
// numbers beside them under "paper" (null where the paper has none).
nlohmann::json table3_json(const std::vector<MazeMetrics>& m);
// The same as a Markdown table, ours beside the paper's [in brackets].
std::string table3_markdown(const std::vector<MazeMetrics>& m);

}  // namespace rl2
