// The paper's Tables 1, 2 and 3 (src/data/paper/*.csv, compiled into the binary) for side-by-side reports.
#pragma once

#include <optional>
#include <string>

#include "rl2/env/env.hpp"

namespace rl2 {

// The paper's number for `column` in the setting of `cfg`, if the paper has that cell.
// Columns use our policy names ("random", "gittins", "ts", "ots", "ucb1", "eps-greedy", "greedy",
// "psrl", "opsrl", "ucrl2", "beb", "rl2"). MDP cells exist only for S=10, A=5, T=10.
std::optional<double> paper_value(const EnvConfig& cfg, const std::string& column);

// Table 3 (the maze): `metric` avg_len_success | success_pct (per episode 1..5) | improved_pct (episode 0),
// `column` small | large | small_se | large_se; nullopt where the paper's cell is empty.
std::optional<double> paper_maze_value(const std::string& metric, int episode, const std::string& column);

}  // namespace rl2
