// What one policy update reports, for TRPO (trpo.hpp) and PPO (ppo.hpp) alike, and the surrogate/KL pair
// both evaluate. A header of its own so neither algorithm's file owns the other's result.
#pragma once

#include <string>

namespace rl2 {

struct SurrogateKl {
  double surrogate = 0.0;
  double kl = 0.0;
};

enum class UpdateStatus { kAccepted, kRejected, kNonFinite };

struct UpdateStats {
  UpdateStatus status = UpdateStatus::kRejected;
  double surrogate_before = 0.0;
  double surrogate_gain = 0.0;  // L(new) - L(old), 0 when not accepted
  double kl = 0.0;              // mean KL of the accepted step (0 when none)
  double expected_gain = 0.0;   // g . step of the full step
  int steps = 0;                // TRPO: line-search tries used; PPO: epochs run
  int cg_iterations = 0;
  double cg_residual = 0.0;
  std::string reason;           // why a step was skipped or rejected
  // Wall time of the phases (TRPO; 0 for PPO): the surrogate's gradient, conjugate gradient with its
  // Fisher-vector products (and the step's curvature), the line search with its surrogate/KL passes.
  double seconds_gradient = 0.0, seconds_cg = 0.0, seconds_line_search = 0.0;
};

inline const char* update_status_name(UpdateStatus s) {
  return s == UpdateStatus::kAccepted ? "accepted" : s == UpdateStatus::kRejected ? "rejected" : "non-finite";
}

}  // namespace rl2
