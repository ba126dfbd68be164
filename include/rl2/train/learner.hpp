// What one RL² training run is (TrainConfig), what an iteration reports (IterationStats), the
// resumable state (TrainState), and the Learner interface. There is one Learner, written once over a
// backend's primitives (src/train/trainer.cpp, include/rl2/train/backend.hpp); devices differ only there.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "rl2/algo/adam.hpp"
#include "rl2/algo/ppo.hpp"
#include "rl2/algo/trpo.hpp"
#include "rl2/core/comm.hpp"
#include "rl2/core/device.hpp"
#include "rl2/env/env.hpp"
#include "rl2/policy/network.hpp"
#include "rl2/policy/policy.hpp"

namespace rl2 {

struct TrainConfig {
  EnvConfig env;
  int32_t hidden = 256;
  int64_t iterations = 50;
  int64_t steps_per_iter = 20000;  // split into whole trials: max(1, steps / trial_length) trials
  std::string algo = "trpo";  // "trpo" | "ppo"
  TrpoConfig trpo;
  PpoConfig ppo;
  double gamma = 0.99;
  double gae_lambda = 0.3;
  double entropy_coef = 0.0;  // beta: the surrogate is E[ratio A] + beta E[H(pi)] (0 = plain TRPO)
  int32_t baseline_epochs = 3;       // Adam passes over the batch per iteration
  int32_t baseline_minibatches = 4;  // minibatches (of whole trials) per pass
  double baseline_lr = 1e-3;
  uint64_t seed = 1;

  int64_t trials_per_iter() const;
  InputLayout input_layout() const;
  // The policy (|A| logits) and the baseline (1 value): GRU + head, behind the conv encoder of
  // encoder.hpp when the observation is an image (the maze).
  NetShape policy_shape() const;
  NetShape baseline_shape() const;
  void validate() const;  // InputError for impossible values
};

struct IterationStats {
  int64_t iteration = 0;     // 0-based index of this iteration
  int64_t env_steps = 0;     // steps in this iteration's batch
  double mean_return = 0.0;  // mean total reward per trial in the batch
  double entropy = 0.0;      // mean policy entropy (nats) over the batch's steps
  double explained_variance = 0.0;  // of the baseline's values on the batch's returns, before its fit
  double baseline_loss = 0.0;       // mean squared error (normalised targets) after the fit
  double rollout_mismatch = 0.0;    // max |log pi training path - log pi rollout| at theta_old
  UpdateStats update;  // the policy update (TRPO or PPO)
  double seconds_rollout = 0.0, seconds_policy = 0.0, seconds_baseline = 0.0;
};

// Everything a run needs to continue exactly where it stopped.
struct TrainState {
  int64_t iteration = 0;  // iterations completed
  std::vector<float> policy;    // flat parameters: GRU + head (gru.hpp layout), then the encoder (maze)
  std::vector<float> baseline;  // same layout with a 1-unit head
  AdamState baseline_adam;
  AdamState policy_adam;  // PPO only (empty for TRPO)
  double return_mean = 0.0, return_std = 1.0;  // the baseline's target normaliser
  int32_t nonfinite_in_a_row = 0;
  double elapsed_seconds = 0.0;  // training wall time so far (for metrics; not part of the math)
};

// What an evaluation measured. A trial is finished once its episodes are all done; an episode succeeds
// when the step that ended it paid a positive reward (in the maze only the target pays).
struct EvalResult {
  int32_t episodes = 0;          // per trial
  std::vector<double> totals;    // [instances] total reward of each trial
  std::vector<int32_t> lengths;  // [instances, episodes] steps of each episode; horizon if it never ended
  std::vector<uint8_t> success;  // [instances, episodes] 1: the episode ended with a positive reward
  std::vector<int32_t> actions;  // [instances, trial_length] with keep_actions; -1 once the trial finished
};

// One evaluation trial's episode bookkeeping, shared by the backends. A trial is live until its E episodes
// are done; each live step counts towards the current episode's length (and is kept in `ep->actions`
// when that is sized), and a step with done ends the episode: its length, and success when the step
// paid a positive reward. Steps after the trial finished count nowhere.
struct TrialTracker {
  int32_t episodes_done = 0, episode_steps = 0;
  bool live(int32_t episodes) const { return episodes_done < episodes; }
  // Counts step t (of T) of trial `trial` when it is live; ep may be nullptr (counting only).
  // Inline: the CPU backend's rollout keeps the same books (no link to the trainer's library).
  void count(EvalResult* ep, int64_t trial, int64_t t, int64_t T, int32_t episodes, int32_t action, float reward,
             bool done) {
    if (!live(episodes)) return;
    if (ep && !ep->actions.empty()) ep->actions[static_cast<size_t>(trial * T + t)] = action;
    episode_steps += 1;
    if (!done) return;
    if (ep) {
      const size_t e = static_cast<size_t>(trial * episodes + episodes_done);
      ep->lengths[e] = episode_steps;
      ep->success[e] = reward > 0.0f;
    }
    episode_steps = 0;
    episodes_done += 1;
  }
};

class Learner {
 public:
  virtual ~Learner() = default;
  // Runs iteration `state().iteration`: rollout, advantages, TRPO step, baseline fit; advances the state.
  virtual IterationStats iterate() = 0;
  // Plays `instances` trials (ids first_trial + i) of `env` under the stochastic policy. `env` may differ
  // from the training env in everything but the policy's input and actions (the maze's size, horizon,
  // episodes, mazes); InputError otherwise.
  virtual EvalResult evaluate(const EnvConfig& env, int64_t instances, uint64_t first_trial,
                              bool keep_actions = false) = 0;
  // Total reward of each of `instances` trials of the training env.
  std::vector<double> evaluate(int64_t instances, uint64_t first_trial) {
    return evaluate(config().env, instances, first_trial).totals;
  }
  virtual const TrainConfig& config() const = 0;
  virtual const TrainState& state() const = 0;
  virtual void set_state(const TrainState& s) = 0;  // throws InputError if shapes do not match
  virtual Device device() const = 0;
};

// Learner::evaluate's argument checks, shared by the backends: at least one instance, a valid `env`, and
// the same kind, input and action set as the training env `trained` (InputError otherwise).
void check_eval_request(const EnvConfig& trained, const EnvConfig& env, int64_t instances);

// Learner::set_state's check, shared by the backends: `s` has the networks (and Adam states, when saved)
// of the same sizes as `current` (InputError otherwise).
void check_state_fits(const TrainState& current, const TrainState& s);

class Backend;
// The trainer (src/train/trainer.cpp) on `backend`: the one Learner, whatever the device. Over comm's ranks
// each rank plays and trains on its chunks of every batch, and the ranks' sums give one process's bytes
// (train/shard.hpp); every rank calls every method in step.
std::unique_ptr<Learner> make_learner(std::unique_ptr<Backend> backend, const TrainConfig& cfg,
                                      Comm& comm = single_process());
// On a new backend of `device` (src/train/backends.cpp), after cfg.validate() and the backend's own memory
// check (InputError with what would fit); make_cpu_learner is make_learner(Device::kCpu, cfg).
std::unique_ptr<Learner> make_learner(Device device, const TrainConfig& cfg, Comm& comm = single_process());
std::unique_ptr<Learner> make_cpu_learner(const TrainConfig& cfg);

}  // namespace rl2
