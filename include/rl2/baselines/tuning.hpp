// The grid search every baseline shares: play each grid point on the tuning instances, keep the best
// mean, then play that point on the evaluation instances (DESIGN.md section 5).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "rl2/baselines/baselines.hpp"

namespace rl2 {

// Plays `instances` trials with ids first_trial .. first_trial + instances - 1 at one grid point and
// returns each trial's total reward: [instances].
using PlayFn = std::function<std::vector<double>(const GridPoint& point, uint64_t first_trial, int64_t instances)>;

// grid: the points to try (tune_mean is filled in); a grid of one point is evaluated without tuning.
// hyper_name empty means the policy has no hyperparameter.
BaselineResult tune_and_evaluate(const std::string& policy, const std::string& hyper_name, std::vector<GridPoint> grid,
                                 const BaselineOptions& opt, const PlayFn& play);

}  // namespace rl2
