// The RL² policy's input (DESIGN.md section 3): phi_t = [obs_t, onehot(a_{t-1}), r_{t-1}, d_{t-1}], with
// a, r, d zero at the start of a trial; d is 1 when step t-1 ended an episode. obs is empty for bandits
// and onehot(s_t) for MDPs. The policy and the baseline are GRUs of the same shape over this input.
#pragma once

#include <cstdint>
#include <string>

#include "rl2/core/hd.hpp"

namespace rl2 {

struct InputLayout {
  int32_t obs = 0;      // obs_size of the environment
  int32_t actions = 0;  // |A|
  RL2_HD int32_t size() const { return obs + actions + 2; }
  std::string describe() const {
    return "[obs(" + std::to_string(obs) + "), onehot(prev_action)(" + std::to_string(actions) +
           "), prev_reward(1), prev_done(1)]";
  }
};

// Writes phi (size layout.size()) for one trial. prev_action < 0 means "none" (trial start).
RL2_HD inline void encode_input(const InputLayout& layout, const float* obs, int32_t prev_action, float prev_reward,
                                float prev_done, float* phi) {
  for (int32_t i = 0; i < layout.obs; ++i) phi[i] = obs[i];
  for (int32_t a = 0; a < layout.actions; ++a) phi[layout.obs + a] = a == prev_action ? 1.0f : 0.0f;
  phi[layout.obs + layout.actions] = prev_reward;
  phi[layout.obs + layout.actions + 1] = prev_done;
}

}  // namespace rl2
