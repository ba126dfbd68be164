// CPU backend of the batched simulators: the same RL2_HD reset/step/observe the CUDA kernel calls,
// in a loop over trials spread across OpenMP threads (one trial per iteration, no shared state).
#include <cstring>

#include "rl2/core/check.hpp"
#include "rl2/env/batch.hpp"

namespace rl2 {
namespace {

template <class Env>
class CpuEnvBatch final : public EnvBatch {
 public:
  using Params = typename Env::Params;
  using State = typename Env::State;

  CpuEnvBatch(const EnvConfig& cfg, const Params& p, int64_t trials)
      : EnvBatch(cfg, trials),
        p_(p),
        task_size_(Env::task_size(p)),
        obs_size_(Env::obs_size(p)),
        tasks_(static_cast<size_t>(trials * task_size_)),
        states_(static_cast<size_t>(trials)),
        obs_(static_cast<size_t>(trials * obs_size_)),
        rewards_(static_cast<size_t>(trials)),
        dones_(static_cast<size_t>(trials)),
        actions_(static_cast<size_t>(trials)) {}

  void reset(uint64_t seed, uint64_t first_trial) override {
    seed_ = seed;
    first_trial_ = first_trial;
    steps_ = 0;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < trials_; ++i) {
      Env::sample_task(p_, seed, first_trial + static_cast<uint64_t>(i), &tasks_[i * task_size_]);
      Env::reset(p_, &tasks_[i * task_size_], states_[i]);
      Env::observe(p_, &tasks_[i * task_size_], states_[i], obs_.data() + i * obs_size_);
      rewards_[i] = 0.0f;
      dones_[i] = 0;
    }
  }

  void step(const int32_t* actions) override {
    RL2_CHECK(steps_ < cfg_.trial_length(), "step() called after the trial ended; call reset() first");
    const int32_t num_actions = Env::num_actions(p_);
    bool bad_action = false;
#pragma omp parallel for schedule(static) reduction(|| : bad_action)
    for (int64_t i = 0; i < trials_; ++i) {
      const int32_t a = actions[i];
      if (a < 0 || a >= num_actions) {
        bad_action = true;
        continue;
      }
      const StepOut out = Env::step(p_, &tasks_[i * task_size_], states_[i], a, seed_,
                                    first_trial_ + static_cast<uint64_t>(i));
      rewards_[i] = out.reward;
      dones_[i] = out.done;
      Env::observe(p_, &tasks_[i * task_size_], states_[i], obs_.data() + i * obs_size_);
    }
    RL2_CHECK(!bad_action, "action out of range [0, " + std::to_string(num_actions) + ")");
    ++steps_;
  }

  void observe() override {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < trials_; ++i)
      Env::observe(p_, &tasks_[i * task_size_], states_[i], obs_.data() + i * obs_size_);
  }

  const float* obs() const override { return obs_.data(); }
  const float* rewards() const override { return rewards_.data(); }
  const uint8_t* dones() const override { return dones_.data(); }
  Device device() const override { return Device::kCpu; }
  int32_t* action_buffer() override { return actions_.data(); }
  void copy_actions_from_host(const int32_t* host_actions) override {
    std::memcpy(actions_.data(), host_actions, actions_.size() * sizeof(int32_t));
  }
  void synchronize() override {}

  EnvSnapshot snapshot() const override {
    EnvSnapshot s;
    s.tasks = tasks_;
    s.states.resize(states_.size() * (sizeof(State) / sizeof(int32_t)));
    std::memcpy(s.states.data(), states_.data(), states_.size() * sizeof(State));
    s.obs = obs_;
    s.rewards = rewards_;
    s.dones = dones_;
    return s;
  }

 private:
  Params p_;
  int64_t task_size_;
  int64_t obs_size_;
  uint64_t seed_ = 0;
  uint64_t first_trial_ = 0;
  std::vector<float> tasks_;
  std::vector<State> states_;
  std::vector<float> obs_;
  std::vector<float> rewards_;
  std::vector<uint8_t> dones_;
  std::vector<int32_t> actions_;
};

}  // namespace

std::unique_ptr<EnvBatch> make_cpu_env_batch(const EnvConfig& cfg, int64_t trials) {
  return visit_env(cfg, [&](auto env, const auto& params) -> std::unique_ptr<EnvBatch> {
    using Env = decltype(env);
    return std::make_unique<CpuEnvBatch<Env>>(cfg, params, trials);
  });
}

}  // namespace rl2
