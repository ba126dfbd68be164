// The fused CUDA rollout's per-trial and per-unit bodies besides the environments' (env_ops.hpp), written
// once (RL2_HD) so the CPU tests run them: the bookkeeping of a step and the next input (RolloutRecord; the
// CPU rollout, play_trials, keeps the same books), the GRU gate update (gru_gates.hpp's GruGates) and the
// heads with the action draw (RolloutHeads).
#pragma once

#include <cstdint>

#include "rl2/core/hd.hpp"
#include "rl2/env/env_ops.hpp"
#include "rl2/policy/gru_gates.hpp"
#include "rl2/core/rng.hpp"
#include "rl2/policy/policy.hpp"
#include "rl2/policy/softmax.hpp"

namespace rl2 {

// The most actions the CUDA rollout handles (a bound on one thread's head work).
constexpr int32_t kRolloutMaxActions = 1024;

namespace ops {

// The rollout's bookkeeping of step t and trial i's next input (the CPU rollout's play_trials does the same):
// mask[i] = 1 while the trial had not finished before the step (its E episodes done), and the step's done
// counts an episode; x_next = encode_input(obs, a, r, d) (a rendered view: only [onehot(a), r, d] after the
// image part, which EnvRender draws). After a reset (actions nullptr): episodes 0, a = -1, r = d = 0.
struct RolloutRecord {
  InputLayout layout;
  int64_t trials;
  int32_t episodes;
  bool rendered;
  const float* obs;        // [N, layout.obs] (not rendered)
  const int32_t* actions;  // [N] of step t, or nullptr after a reset
  const float* rewards;    // [N]
  const uint8_t* dones;    // [N]
  int32_t* episodes_done;  // [N]
  float* mask;             // [N] of step t (unused after a reset)
  float* x_next;           // [N, I] or nullptr after the last step
  int64_t count() const { return trials; }
  RL2_HD void operator()(int64_t i) const {
    int32_t act = -1;
    float reward = 0.0f, done = 0.0f;
    if (actions == nullptr) {
      episodes_done[i] = 0;
    } else {
      act = actions[i];
      reward = rewards[i];
      done = static_cast<float>(dones[i]);
      const int32_t before = episodes_done[i];
      const bool live = before < episodes;
      mask[i] = live ? 1.0f : 0.0f;
      if (live && dones[i] != 0) episodes_done[i] = before + 1;
    }
    if (x_next == nullptr) return;
    float* x = x_next + i * layout.size();
    if (rendered)
      encode_input(InputLayout{0, layout.actions}, nullptr, act, reward, done, x + layout.obs);
    else
      encode_input(layout, obs + i * layout.obs, act, reward, done, x);
  }
};

// The rollout's heads for trial i from h' of both networks: the policy's logits (written into the trial's
// probs row, then softmax in place), the action drawn with u01(philox_bits(seed, first_trial + i, t,
// kAction, 0).v[0]) (the CPU rollout's draw), its log-probability (its logit again, the same sum, minus the
// log-normaliser) and the baseline head's raw value. Dot products in float, in index order.
struct RolloutHeads {
  int64_t trials;
  int32_t hidden, actions, t;
  const RunIds* run;
  const float* h;  // [2, N, H] h' (net 0 policy, net 1 baseline)
  const float* policy_w;  // [A, H]
  const float* policy_b;  // [A]
  const float* value_w;   // [1, H]
  const float* value_b;   // [1]
  int32_t* actions_out;   // [N] of step t
  float* logp;            // [N]
  float* probs;           // [N, A]
  float* values;          // [N]
  int64_t count() const { return trials; }
  RL2_HD static float dot(const float* w, const float* x, int32_t n) {
    float s = 0.0f;
    for (int32_t j = 0; j < n; ++j) s += w[j] * x[j];
    return s;
  }
  RL2_HD void operator()(int64_t i) const {
    const int32_t H = hidden, A = actions;
    const float* hp = h + i * H;
    float* p = probs + i * A;
    for (int32_t o = 0; o < A; ++o) p[o] = dot(policy_w + int64_t{o} * H, hp, H) + policy_b[o];
    const float lse = softmax(p, A, p);  // in place: each logit is read before its probability is written
    const float u = u01(philox_bits(run->seed, run->first_trial + static_cast<uint64_t>(i), static_cast<uint32_t>(t),
                                    Purpose::kAction, 0)
                            .v[0]);
    const int32_t act = sample_categorical(p, A, u);
    actions_out[i] = act;
    logp[i] = (dot(policy_w + int64_t{act} * H, hp, H) + policy_b[act]) - lse;
    values[i] = dot(value_w, h + (trials + i) * H, H) + value_b[0];
  }
};

}  // namespace ops
}  // namespace rl2

// Every op a backend runs besides training's (step_ops.hpp): X(Op) for each.
#define RL2_ROLLOUT_OPS(X) RL2_ENV_OPS(X) X(RolloutRecord) X(GruGates) X(RolloutHeads)
