// Table 3 of the paper from maze evaluations (include/rl2/train/maze_eval.hpp), as JSON and Markdown.
#include "rl2/train/maze_eval.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <ostream>
#include <sstream>

#include "rl2/core/check.hpp"
#include "rl2/core/rng.hpp"
#include "rl2/io/paper.hpp"

namespace rl2 {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

nlohmann::json number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
nlohmann::json number(const std::optional<double>& v) { return v ? number(*v) : nlohmann::json(nullptr); }

std::string fmt(const char* f, double v) {
  if (!std::isfinite(v)) return "-";
  char buf[48];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

bool maze_ladder_rung(const EnvConfig& trained) {
  return trained.kind == EnvKind::kMaze && (trained.maze.layout != Maze::kPrim || trained.maze.size < 5);
}

EnvConfig maze_eval_env(const EnvConfig& trained, bool large) {
  RL2_CHECK(trained.kind == EnvKind::kMaze, "maze_eval_env: not a maze");
  EnvConfig e = trained;
  if (maze_ladder_rung(trained)) {
    e.maze.episodes = kMazeEvalEpisodes;
    e.maze.mazes = 0;
  } else {
    const int32_t small_horizon = trained.maze.size == 5 ? trained.maze.horizon : 250;
    e.maze = MazeParams{large ? 9 : 5, kMazeEvalEpisodes, large ? 4 * small_horizon : small_horizon, 0};
  }
  e.validate();
  return e;
}

MazeMetrics maze_metrics(const std::string& name, const EnvConfig& env, const EvalResult& r) {
  const int64_t n = static_cast<int64_t>(r.totals.size());
  const int32_t E = r.episodes;
  RL2_CHECK(static_cast<int64_t>(r.lengths.size()) == n * E && r.success.size() == r.lengths.size(),
            "maze_metrics: episode arrays do not match the trials");
  MazeMetrics m;
  m.name = name;
  m.env = env;
  m.instances = n;
  m.total = mean_stderr(r.totals);
  for (int32_t e = 0; e < E; ++e) {
    std::vector<double> lengths;
    for (int64_t i = 0; i < n; ++i)
      if (r.success[i * E + e]) lengths.push_back(r.lengths[i * E + e]);
    MazeEpisodeMetrics em;
    em.successes = static_cast<int64_t>(lengths.size());
    const MeanStderr ms = mean_stderr(lengths);
    em.avg_len_success = lengths.empty() ? kNaN : ms.mean;
    em.avg_len_se = lengths.size() < 2 ? kNaN : ms.stderr_;
    em.success_pct = n > 0 ? 100.0 * static_cast<double>(em.successes) / static_cast<double>(n) : kNaN;
    m.episodes.push_back(em);
  }
  // lengths already count a failed episode as `horizon` steps (it ran out of time). Episode 2 must have
  // reached the target: two failures of equal length are not an improvement.
  int64_t improved = 0;
  for (int64_t i = 0; i < n && E >= 2; ++i)
    improved += r.success[i * E + 1] && r.lengths[i * E + 1] <= r.lengths[i * E];
  m.improved_pct = E >= 2 && n > 0 ? 100.0 * static_cast<double>(improved) / static_cast<double>(n) : kNaN;
  return m;
}

std::vector<MazeMetrics> evaluate_table3(Learner& learner, int64_t instances, std::ostream* log, bool large_too) {
  std::vector<MazeMetrics> out;
  const bool rung = maze_ladder_rung(learner.config().env);
  for (bool large : {false, true}) {
    if (large && (rung || !large_too)) break;
    const EnvConfig env = maze_eval_env(learner.config().env, large);
    const auto t0 = std::chrono::steady_clock::now();
    if (log) *log << "evaluating " << instances << " held-out configurations of " << env.describe() << " ..." << std::flush;
    out.push_back(maze_metrics(rung ? "trained" : large ? "large" : "small", env,
                               learner.evaluate(env, instances, kEvalStream)));
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (log) *log << " " << fmt("%.0f", secs) << " s\n";
  }
  return out;
}

nlohmann::json table3_json(const std::vector<MazeMetrics>& ms) {
  nlohmann::json j = nlohmann::json::object();
  for (const MazeMetrics& m : ms) {
    const std::string se = m.name + "_se";
    nlohmann::json per = nlohmann::json::array();
    for (size_t e = 0; e < m.episodes.size(); ++e) {
      const MazeEpisodeMetrics& em = m.episodes[e];
      const int ep = static_cast<int>(e) + 1;
      per.push_back({{"episode", ep},
                     {"successes", em.successes},
                     {"avg_len_success", number(em.avg_len_success)},
                     {"avg_len_success_se", number(em.avg_len_se)},
                     {"success_pct", number(em.success_pct)},
                     {"paper",
                      {{"avg_len_success", number(paper_maze_value("avg_len_success", ep, m.name))},
                       {"avg_len_success_se", number(paper_maze_value("avg_len_success", ep, se))},
                       {"success_pct", number(paper_maze_value("success_pct", ep, m.name))}}}});
    }
    j[m.name] = {{"size", m.env.maze.size},
                 {"layout", maze_layout_name(m.env.maze.layout)},
                 {"horizon", m.env.maze.horizon},
                 {"episodes", m.env.maze.episodes},
                 {"instances", m.instances},
                 {"mean", number(m.total.mean)},
                 {"stderr", number(m.total.stderr_)},
                 {"improved_pct", number(m.improved_pct)},
                 {"paper_improved_pct", number(paper_maze_value("improved_pct", 0, m.name))},
                 {"per_episode", per}};
  }
  return j;
}

std::string table3_markdown(const std::vector<MazeMetrics>& ms) {
  auto paper = [](const std::string& metric, int ep, const std::string& col, const char* f) {
    const auto v = paper_maze_value(metric, ep, col);
    return v ? fmt(f, *v) : std::string("-");
  };
  std::ostringstream o;
  o << "Table 3 (maze): RL² on held-out configurations, " << kMazeEvalEpisodes
    << " episodes per trial; the paper's numbers (ViZDoom) in brackets.\n\n| episode |";
  for (const MazeMetrics& m : ms)
    o << " " << m.name << " " << (m.env.maze.layout == Maze::kCorridor ? "corridor " : "") << m.env.maze.size << "x"
      << m.env.maze.size << " (H=" << m.env.maze.horizon << ", "
      << m.instances << " mazes): avg length of successes | success % |";
  o << "\n| --- |";
  for (size_t k = 0; k < ms.size(); ++k) o << " --- | --- |";
  o << "\n";
  const size_t rows = ms.empty() ? 0 : ms.front().episodes.size();
  for (size_t e = 0; e < rows; ++e) {
    const int ep = static_cast<int>(e) + 1;
    o << "| " << ep << " |";
    for (const MazeMetrics& m : ms) {
      const MazeEpisodeMetrics& em = m.episodes[e];
      o << " " << fmt("%.1f", em.avg_len_success) << " ± " << fmt("%.1f", em.avg_len_se) << " ["
        << paper("avg_len_success", ep, m.name, "%.1f") << " ± " << paper("avg_len_success", ep, m.name + "_se", "%.1f")
        << "] | " << fmt("%.1f", em.success_pct) << " [" << paper("success_pct", ep, m.name, "%.1f") << "] |";
    }
    o << "\n";
  }
  o << "| improved % |";
  for (const MazeMetrics& m : ms)
    o << " " << fmt("%.1f", m.improved_pct) << " [" << paper("improved_pct", 0, m.name, "%.1f") << "] | |";
  o << "\n| total reward per trial |";
  for (const MazeMetrics& m : ms) o << " " << fmt("%.3f", m.total.mean) << " ± " << fmt("%.3f", m.total.stderr_) << " | |";
  o << "\n";
  return o.str();
}

}  // namespace rl2
