// A batch of trials on any backend (batch.hpp): the backend's memory and the per-trial bodies of env_ops.hpp
// (the CPU backend loops over them on its threads; the CUDA backend launches one generic kernel), so every
// backend steps an environment with the same code. A rendered view (the maze) is drawn one column per item.
// An out-of-range action marks its trial; the CPU reports it at once, a device at the next reset() or
// snapshot() (a check after every step would put a host sync on the rollout path).
#include <cstring>

#include "rl2/core/check.hpp"
#include "rl2/env/batch.hpp"
#include "rl2/env/env_ops.hpp"
#include "rl2/train/backend.hpp"

namespace rl2 {
namespace {

template <class Env>
class BackendEnvBatch final : public EnvBatch {
 public:
  using Params = typename Env::Params;
  using State = typename Env::State;

  BackendEnvBatch(std::unique_ptr<Backend> owned, Backend& be, const EnvConfig& cfg, const Params& p, int64_t trials)
      : EnvBatch(cfg, trials),
        owned_(std::move(owned)),
        be_(be),
        p_(p),
        ids_(be, 1),
        tasks_(be, trials * Env::task_size(p)),
        states_(be, trials),
        obs_(be, trials * Env::obs_size(p)),
        rewards_(be, trials),
        dones_(be, trials),
        actions_(be, trials),
        bad_(be, trials) {
    be_.upload(bad_.data(), std::vector<int32_t>(static_cast<size_t>(trials), 0));
  }

  void reset(uint64_t seed, uint64_t first_trial) override {
    check_actions();
    steps_ = 0;
    be_.upload(ids_.data(), std::vector<RunIds>{RunIds{seed, first_trial}});
    be_.run(ops::EnvReset<Env>{p_, trials_, ids_.data(), tasks_.data(), states_.data(), obs_.data(), rewards_.data(),
                               dones_.data()});
    render();
  }

  void step(const int32_t* actions) override {
    RL2_CHECK(steps_ < cfg_.trial_length(), "step() called after the trial ended; call reset() first");
    be_.run(ops::EnvStep<Env>{p_, trials_, ids_.data(), tasks_.data(), states_.data(), actions, obs_.data(),
                              rewards_.data(), dones_.data(), bad_.data()});
    render();
    ++steps_;
    if (be_.device() == Device::kCpu) check_actions();  // a host read is free there
  }

  void observe() override {
    if constexpr (ColumnRendered<Env>)
      render();
    else
      be_.run(ops::EnvObserve<Env>{p_, trials_, tasks_.data(), states_.data(), obs_.data()});
  }

  const float* obs() const override { return obs_.data(); }
  const float* rewards() const override { return rewards_.data(); }
  const uint8_t* dones() const override { return dones_.data(); }
  Device device() const override { return be_.device(); }
  int32_t* action_buffer() override { return actions_.data(); }
  void copy_actions_from_host(const int32_t* host_actions) override {
    be_.upload(actions_.data(), host_actions, static_cast<size_t>(trials_) * sizeof(int32_t));
  }
  void synchronize() override { be_.synchronize(); }

  EnvSnapshot snapshot() const override {
    check_actions();
    EnvSnapshot s;
    s.tasks = be_.download(tasks_.data(), tasks_.size());
    s.states.resize(static_cast<size_t>(trials_) * (sizeof(State) / sizeof(int32_t)));
    be_.download(static_cast<void*>(s.states.data()), states_.data(), static_cast<size_t>(trials_) * sizeof(State));
    s.obs = be_.download(obs_.data(), obs_.size());
    s.rewards = be_.download(rewards_.data(), rewards_.size());
    s.dones = be_.download(dones_.data(), dones_.size());
    return s;
  }

 private:
  void render() {
    if constexpr (ColumnRendered<Env>)
      be_.run(ops::EnvRender<Env>{p_, trials_, tasks_.data(), states_.data(), obs_.data(), Env::obs_size(p_)});
  }
  void check_actions() const {
    const std::vector<int32_t> bad = be_.download(bad_.data(), bad_.size());
    for (int32_t b : bad)
      RL2_CHECK(b == 0, "an action out of range [0, " + std::to_string(Env::num_actions(p_)) +
                            ") was passed to the environment batch");
  }

  std::unique_ptr<Backend> owned_;  // when the batch has a backend of its own (destroyed after the buffers)
  Backend& be_;
  Params p_;
  Buffer<RunIds> ids_;
  Buffer<float> tasks_;
  Buffer<State> states_;
  Buffer<float> obs_, rewards_;
  Buffer<uint8_t> dones_;
  Buffer<int32_t> actions_, bad_;
};

std::unique_ptr<EnvBatch> make(std::unique_ptr<Backend> owned, Backend& be, const EnvConfig& cfg, int64_t trials) {
  check_batch_fits(be.device(), cfg, trials);
  return visit_env(cfg, [&](auto env, const auto& params) -> std::unique_ptr<EnvBatch> {
    using Env = decltype(env);
    return std::make_unique<BackendEnvBatch<Env>>(std::move(owned), be, cfg, params, trials);
  });
}

}  // namespace

std::unique_ptr<EnvBatch> make_env_batch(Backend& backend, const EnvConfig& cfg, int64_t trials) {
  return make(nullptr, backend, cfg, trials);
}

std::unique_ptr<EnvBatch> make_env_batch(std::unique_ptr<Backend> backend, const EnvConfig& cfg, int64_t trials) {
  Backend& be = *backend;
  return make(std::move(backend), be, cfg, trials);
}

}  // namespace rl2
