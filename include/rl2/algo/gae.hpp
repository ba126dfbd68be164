// Generalised advantage estimation over whole trials (DESIGN.md section 4; Schulman et al. 2016).
//
// delta_t = r_t + gamma V_{t+1} - V_t, A_t = delta_t + gamma lambda A_{t+1}, with V_T = 0 at the trial's
// end and no cut at episode boundaries inside a trial (RL²'s hidden state spans the trial, so its
// value does too). Returns-to-go R_t = r_t + gamma R_{t+1} are the baseline's regression targets.
// One trial per call: the CPU loops over trials, a CUDA kernel can run one thread per trial.
#pragma once

#include <cstdint>

#include "rl2/core/hd.hpp"

namespace rl2 {

// Time-major arrays of one trial, element t at [t * stride]: rewards, values (in), adv, returns (out).
template <class Real>
RL2_HD void gae_trial(int64_t T, int64_t stride, const float* rewards, const float* values, Real gamma, Real lambda,
                      float* adv, float* returns) {
  Real next_value = 0, next_adv = 0, next_return = 0;
  for (int64_t t = T - 1; t >= 0; --t) {
    const Real r = rewards[t * stride];
    const Real v = values[t * stride];
    const Real delta = r + gamma * next_value - v;
    next_adv = delta + gamma * lambda * next_adv;
    next_return = r + gamma * next_return;
    adv[t * stride] = static_cast<float>(next_adv);
    returns[t * stride] = static_cast<float>(next_return);
    next_value = v;
  }
}

}  // namespace rl2
