// The paper's Tables 1 and 2 (src/data/paper/*.csv, compiled into the binary) for side-by-side reports.
#pragma once

#include <optional>
#include <string>

#include "rl2/env/env.hpp"

namespace rl2 {

// The paper's number for `column` in the setting of `cfg`, if the paper has that cell.
// Columns use our policy names ("random", "gittins", "ts", "ots", "ucb1", "eps-greedy", "greedy",
// "psrl", "opsrl", "ucrl2", "beb", "rl2"). MDP cells exist only for S=10, A=5, T=10.
std::optional<double> paper_value(const EnvConfig& cfg, const std::string& column);

}  // namespace rl2
