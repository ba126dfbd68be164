// The narrow interface the trainer (src/train/trainer.cpp) runs on: the primitives of one RL² iteration.
// The trainer holds every piece of training logic (the iteration, advantages, the policy objective of
// TRPO and PPO, the baseline fit, evaluation); a backend only stores arrays and runs primitives on them:
//   memory        Buffer<T> in the backend's memory (host on the CPU, device on CUDA), copies
//   step ops      the per-element bodies of step_ops.hpp, env_ops.hpp and rollout_ops.hpp (one arithmetic
//                 for every backend; environments run on any backend through make_env_batch)
//   reductions    in double, in an order fixed by the sizes alone (never by the thread count)
//   networks      forward and backward of one network (network.hpp) over a batch of whole trials, the
//                 Jacobian-vector product where the backend has one (the CPU; cuDNN has no forward mode)
//   rollout       N whole trials played by the policy into a [T, N] trajectory view, and evaluation plays
// Every call is ordered after the ones before it; a call that returns a host value waits for it.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "rl2/core/check.hpp"
#include "rl2/core/chunks.hpp"
#include "rl2/core/comm.hpp"
#include "rl2/core/device.hpp"
#include "rl2/env/env.hpp"
#include "rl2/policy/network.hpp"
#include "rl2/policy/rollout_ops.hpp"
#include "rl2/train/step_ops.hpp"

namespace rl2 {

class Backend;
struct TrainConfig;

// An array of n T in a backend's memory, freed by it. Move-only.
template <class T>
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend& be, int64_t n);
  Buffer(Buffer&& o) noexcept { swap(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    Buffer(std::move(o)).swap(*this);
    return *this;
  }
  ~Buffer();
  T* data() const { return p_; }
  int64_t size() const { return n_; }
  void swap(Buffer& o) noexcept {
    std::swap(be_, o.be_);
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
  }

 private:
  Backend* be_ = nullptr;
  T* p_ = nullptr;
  int64_t n_ = 0;
};

// One network (policy or baseline) over up to max_batch whole trials of T steps. It keeps the activations of
// its last forward for backward and jvp: those must follow a forward of this object with the same
// params, x and batch.
// segs (nullptr: the batch's chunks, core/chunks.hpp) are the batch's units: the CPU computes each segment
// alone and sums the weight gradient per segment, then in segment order; other backends may ignore them.
class BackendNet {
 public:
  virtual ~BackendNet() = default;
  // out [T, B, O] = net(params, x [T, B, I]).
  virtual void forward(const float* params, const float* x, int64_t batch, float* out,
                       const TrialSegments* segs = nullptr) = 0;
  // grad [size] (overwritten) = d/dparams sum(d_out · out) at the last forward.
  virtual void backward(const float* params, const float* x, int64_t batch, const float* d_out, float* grad,
                        const TrialSegments* segs = nullptr) = 0;
  // The same gradient as its partial sums (network.hpp's PartsRange: the GRU's per segment, the encoder's per
  // unit), for ranks that add every partial in order (train/shard.hpp): backward is exactly, per range,
  // float(Σ_u partial u in double, in order). parts_layout empty: no partial sums here (cuDNN).
  virtual std::vector<PartsRange> parts_layout(const TrialSegments&) const { return {}; }
  virtual void backward_parts(const float*, const float*, const float*, const TrialSegments&, float*) {
    RL2_CHECK(false, "this backend's networks have no partial sums");
  }
  // d_out [T, B, O] = the directional derivative of out along v at the last forward's point.
  virtual bool has_jvp() const { return false; }
  virtual void jvp(const float*, const float*, int64_t, const float*, float*, const TrialSegments* = nullptr) {
    RL2_CHECK(false, "this backend's networks have no Jacobian-vector product");
  }
};

// One iteration's trajectories [T, N], written by run(). Pointers in the backend's memory.
class BackendRollout {
 public:
  virtual ~BackendRollout() = default;
  // Plays trials first_trial .. first_trial + N - 1 of `seed` with the host parameter vectors; done when it
  // returns.
  virtual void run(const float* policy_host, const float* baseline_host, uint64_t seed, uint64_t first_trial) = 0;
  virtual const float* x() const = 0;          // [T, N, I] the policy's inputs
  virtual const int32_t* actions() const = 0;  // [T, N]
  virtual const float* logp() const = 0;       // [T, N] log pi_old(a | history)
  virtual const float* probs() const = 0;      // [T, N, A] pi_old
  virtual const float* rewards() const = 0;    // [T, N]
  virtual const float* mask() const = 0;       // [T, N] or nullptr (trials that never finish early)
  virtual const double* totals() const = 0;    // [N] each trial's total reward, summed over t in order
  // [T, N] the baseline's raw output, when the rollout computed it alongside (nullptr: the trainer runs it)
  virtual const float* values() const { return nullptr; }
};

// What an evaluation play returns for n trials, in host memory, time-major [T, n]: the action, reward and
// done of every step. Steps after a trial finished pay reward 0 and count nowhere (TrialTracker).
struct PlayedTrials {
  std::vector<int32_t> actions;
  std::vector<float> rewards;
  std::vector<uint8_t> dones;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;

  // ---- memory (bytes; copies are complete when they return) ----
  virtual void* allocate(size_t bytes) = 0;
  virtual void release(void* p) noexcept = 0;
  virtual void upload(void* dst, const void* host, size_t bytes) = 0;
  virtual void download(void* host, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;  // within the backend's memory
  template <class T>
  void upload(T* dst, const std::vector<T>& host) {
    upload(static_cast<void*>(dst), host.data(), host.size() * sizeof(T));
  }
  template <class T>
  std::vector<T> download(const T* src, int64_t n) {
    std::vector<T> out(static_cast<size_t>(n));
    download(static_cast<void*>(out.data()), src, out.size() * sizeof(T));
    return out;
  }

  // ---- step ops: runs op(k) for k in [0, op.count()) (training's, the environments' and the rollout's) ----
#define RL2_BACKEND_RUN(Op) virtual void run(const ops::Op& op) = 0;
  RL2_STEP_OPS(RL2_BACKEND_RUN)
  RL2_ROLLOUT_OPS(RL2_BACKEND_RUN)
#undef RL2_BACKEND_RUN
  virtual void synchronize() = 0;  // waits until every queued call has finished (no-op on the CPU)

  // ---- reductions (double; mask [T, N] or nullptr; the CPU's order: core/chunks.hpp) ----
  // Σ over the active steps of a [T, N] array.
  virtual double step_sum(int64_t T, int64_t N, const double* x, const float* mask = nullptr) = 0;
  virtual double step_sum(int64_t T, int64_t N, const float* x, const float* mask = nullptr) = 0;
  // The mean over the `active` active steps, then the mean squared deviation from it.
  virtual std::pair<double, double> mean_var(int64_t T, int64_t N, const float* x, const float* mask, double active) = 0;
  virtual std::pair<double, double> mean_var(int64_t T, int64_t N, const double* x, const float* mask, double active) = 0;
  virtual double trial_sum(int64_t N, int64_t T, const double* per_trial) = 0;  // Σ of N per-trial values
  // The sums behind step_sum, one per segment of the N = segs.trials() trials (inside a segment by time,
  // then trial), for ranks that add every segment's sum in order (train/shard.hpp); with center c the
  // sums of (x - c)² over the active steps. A backend whose order is not per segment (CUDA: one tree over
  // the array) returns one part.
  virtual std::vector<double> step_sum_parts(int64_t T, const TrialSegments& segs, const float* x, const float* mask,
                                             const double* center = nullptr) = 0;
  virtual std::vector<double> step_sum_parts(int64_t T, const TrialSegments& segs, const double* x,
                                             const float* mask, const double* center = nullptr) = 0;
  virtual double max(int64_t n, const double* x) = 0;  // -inf when n = 0; NaN when any element is NaN
  virtual double dot(int64_t n, const float* a, const float* b) = 0;  // in index order on the CPU
  virtual bool all_finite(int64_t n, const float* x) = 0;
  // max |a - b| over the elements i with mask[i / width] != 0 (mask nullptr: all); NaN when any is NaN.
  virtual double max_abs_diff(int64_t n, const float* a, const float* b, const float* mask, int64_t width) = 0;

  // ---- ranks (train/shard.hpp) ----
  // p [n] (this backend's memory) = the sum over comm's ranks of every rank's p, with the backend's own
  // collective (CUDA: NCCL on its stream); false when it has none, and the caller sums through the host.
  virtual bool all_reduce_sum(Comm&, float*, int64_t) { return false; }

  // ---- networks and plays ----
  virtual std::unique_ptr<BackendNet> make_net(const NetShape& shape, int64_t T, int64_t max_batch) = 0;
  // allow_tf32: the rollout's GEMMs may use TF32 tensor cores where the backend has them (the bench's
  // second row; training never asks). InputError when the rollout would not fit in the backend's memory.
  virtual std::unique_ptr<BackendRollout> make_rollout(const EnvConfig& env, const NetShape& policy,
                                                       const NetShape& baseline, int64_t trials,
                                                       bool allow_tf32 = false) = 0;
  // Plays trials first_trial .. first_trial + n - 1 of `env` under the host policy parameters (evaluation).
  virtual PlayedTrials play(const EnvConfig& env, const NetShape& policy, const float* policy_host, int64_t n,
                            uint64_t seed, uint64_t first_trial) = 0;
  // The most evaluation trials one play() should hold (memory), for a trial of T steps.
  virtual int64_t play_chunk(int64_t T) const = 0;
  // InputError, one line, when training `cfg` would not fit in this backend's memory: what it needs, what
  // there is, and what would fit.
  virtual void check_fits(const TrainConfig& cfg) = 0;
};

template <class T>
Buffer<T>::Buffer(Backend& be, int64_t n)
    : be_(&be), p_(static_cast<T*>(be.allocate(static_cast<size_t>(n) * sizeof(T)))), n_(n) {}
template <class T>
Buffer<T>::~Buffer() {
  if (be_ != nullptr && p_ != nullptr) be_->release(p_);
}

std::unique_ptr<Backend> make_cpu_backend();
std::unique_ptr<Backend> make_backend(Device device);  // src/train/backends.cpp; InputError if not usable
#if defined(RL2_WITH_CUDA)
std::unique_ptr<Backend> make_cuda_backend();  // needs a usable GPU (InputError otherwise)
#endif

}  // namespace rl2
