// What one environment step returns, for every environment.
#pragma once

#include <cstdint>

namespace rl2 {

struct StepOut {
  float reward;
  uint8_t done;  // 1 if this step ended an episode (the trial goes on until its last episode)
};

}  // namespace rl2
