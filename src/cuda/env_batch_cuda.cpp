// CUDA backend of the batched simulators: device buffers for a batch of trials and the launches of
// kernels/env_step.cu on one stream. Nothing is copied to the host except by snapshot(); an
// out-of-range action sets a device flag that the next reset() or snapshot() reports (checking it
// after every step would put a host sync on the rollout path).
#include <cstring>

#include "cuda/cuda_check.hpp"
#include "env_step.cuh"
#include "rl2/env/batch.hpp"

namespace rl2 {
namespace {

template <class Env>
class CudaEnvBatch final : public EnvBatch {
 public:
  using Params = typename Env::Params;
  using State = typename Env::State;

  CudaEnvBatch(const EnvConfig& cfg, const Params& p, int64_t trials)
      : EnvBatch(cfg, trials),
        p_(p),
        tasks_(static_cast<size_t>(trials * Env::task_size(p))),
        states_(static_cast<size_t>(trials)),
        obs_(static_cast<size_t>(trials * Env::obs_size(p))),
        rewards_(static_cast<size_t>(trials)),
        dones_(static_cast<size_t>(trials)),
        actions_(static_cast<size_t>(trials)),
        error_flag_(1) {
    RL2_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    RL2_CUDA_CHECK(cudaMemsetAsync(error_flag_.data(), 0, sizeof(int32_t), stream_));
  }
  ~CudaEnvBatch() override {
    if (stream_) cudaStreamDestroy(stream_);
  }

  void reset(uint64_t seed, uint64_t first_trial) override {
    check_error_flag();
    seed_ = seed;
    first_trial_ = first_trial;
    steps_ = 0;
    launch_env_reset<Env>(args(nullptr), stream_);
  }

  void step(const int32_t* actions) override {
    RL2_CHECK(steps_ < cfg_.trial_length(), "step() called after the trial ended; call reset() first");
    launch_env_step<Env>(args(actions), stream_);
    ++steps_;
  }

  void observe() override { launch_env_observe<Env>(args(nullptr), stream_); }

  const float* obs() const override { return obs_.data(); }
  const float* rewards() const override { return rewards_.data(); }
  const uint8_t* dones() const override { return dones_.data(); }
  Device device() const override { return Device::kCuda; }
  int32_t* action_buffer() override { return actions_.data(); }
  void copy_actions_from_host(const int32_t* host_actions) override {
    RL2_CUDA_CHECK(cudaMemcpyAsync(actions_.data(), host_actions, actions_.bytes(), cudaMemcpyHostToDevice, stream_));
    RL2_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void synchronize() override { RL2_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

  EnvSnapshot snapshot() const override {
    check_error_flag();
    EnvSnapshot s;
    s.tasks = download(tasks_);
    s.states.resize(states_.size() * (sizeof(State) / sizeof(int32_t)));
    RL2_CUDA_CHECK(cudaMemcpyAsync(s.states.data(), states_.data(), states_.bytes(), cudaMemcpyDeviceToHost, stream_));
    s.obs = download(obs_);
    s.rewards = download(rewards_);
    s.dones = download(dones_);
    RL2_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return s;
  }

 private:
  EnvKernelArgs<Env> args(const int32_t* actions) const {
    return EnvKernelArgs<Env>{p_,          trials_,        seed_,          first_trial_,   tasks_.data(),
                              states_.data(), obs_.data(), rewards_.data(), dones_.data(), actions,
                              error_flag_.data()};
  }
  template <class T>
  std::vector<T> download(const DeviceBuffer<T>& buf) const {
    std::vector<T> out(buf.size());
    if (!out.empty())
      RL2_CUDA_CHECK(cudaMemcpyAsync(out.data(), buf.data(), buf.bytes(), cudaMemcpyDeviceToHost, stream_));
    return out;
  }
  void check_error_flag() const {
    int32_t flag = 0;
    RL2_CUDA_CHECK(cudaMemcpyAsync(&flag, error_flag_.data(), sizeof flag, cudaMemcpyDeviceToHost, stream_));
    RL2_CUDA_CHECK(cudaStreamSynchronize(stream_));
    RL2_CHECK(flag == 0, "an action out of range [0, " + std::to_string(Env::num_actions(p_)) +
                             ") was passed to the CUDA environment batch");
  }

  Params p_;
  uint64_t seed_ = 0;
  uint64_t first_trial_ = 0;
  cudaStream_t stream_ = nullptr;
  DeviceBuffer<float> tasks_;
  DeviceBuffer<State> states_;
  DeviceBuffer<float> obs_;
  DeviceBuffer<float> rewards_;
  DeviceBuffer<uint8_t> dones_;
  DeviceBuffer<int32_t> actions_;
  DeviceBuffer<int32_t> error_flag_;
};

}  // namespace

std::unique_ptr<EnvBatch> make_cuda_env_batch(const EnvConfig& cfg, int64_t trials) {
  return visit_env(cfg, [&](auto env, const auto& params) -> std::unique_ptr<EnvBatch> {
    using Env = decltype(env);
    return std::make_unique<CudaEnvBatch<Env>>(cfg, params, trials);
  });
}

}  // namespace rl2
