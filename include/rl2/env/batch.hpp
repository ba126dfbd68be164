// A batch of trials stepped in lockstep: the interface later issues drive with a policy.
//
// Trial i of the batch is trial id `first_trial + i` of the seed's stream (rng.hpp). On the CUDA
// backend every pointer returned here is device memory; on the CPU backend it is host memory.
// All trials of a batch have the same length, so they start and finish together.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "rl2/core/device.hpp"
#include "rl2/env/env.hpp"

namespace rl2 {

// Host copy of everything a batch holds, for tests and tools.
struct EnvSnapshot {
  std::vector<float> tasks;      // [trials, task_size]
  std::vector<int32_t> states;   // [trials, sizeof(State)/4] raw state words
  std::vector<float> obs;        // [trials, obs_size]
  std::vector<float> rewards;    // [trials] of the last step
  std::vector<uint8_t> dones;    // [trials] of the last step
};

class EnvBatch {
 public:
  virtual ~EnvBatch() = default;
  // Samples the tasks of trials first_trial .. first_trial + trials - 1, zeroes their state and writes
  // the first observation.
  virtual void reset(uint64_t seed, uint64_t first_trial) = 0;
  // actions: [trials] int32 in this backend's memory. Writes rewards, dones and the next observation.
  virtual void step(const int32_t* actions) = 0;
  // Writes obs() again from the current states and nothing else (for the maze: renders every view
  // again). What reset() and step() end with; the bench times it alone (render-only frames/s).
  virtual void observe() = 0;
  virtual const float* obs() const = 0;        // [trials, obs_size]
  virtual const float* rewards() const = 0;    // [trials]
  virtual const uint8_t* dones() const = 0;    // [trials]
  virtual EnvSnapshot snapshot() const = 0;
  virtual Device device() const = 0;
  // [trials] int32 actions in this backend's memory: what a policy writes and step() reads.
  virtual int32_t* action_buffer() = 0;
  // Fills action_buffer() from host memory ([trials] int32).
  virtual void copy_actions_from_host(const int32_t* host_actions) = 0;
  // Waits until all queued work on this batch has finished (no-op on the CPU).
  virtual void synchronize() = 0;

  int64_t trials() const { return trials_; }
  const EnvConfig& config() const { return cfg_; }
  int64_t steps_taken() const { return steps_; }  // since the last reset
  bool trial_over() const { return steps_ >= cfg_.trial_length(); }

 protected:
  EnvBatch(const EnvConfig& cfg, int64_t trials) : cfg_(cfg), trials_(trials) {}
  EnvConfig cfg_;
  int64_t trials_;
  int64_t steps_ = 0;
};

// Throws InputError when a batch of `trials` trials of `cfg` would not fit in the memory of `device`
// (the message says how much it needs, how much there is and how many trials would fit).
void check_batch_fits(Device device, const EnvConfig& cfg, int64_t trials);

class Backend;

// A batch on `backend` (include/rl2/train/backend.hpp), which must outlive it; or on a backend of its own.
// InputError when `trials` < 1 or the batch would not fit in the backend's memory (the message says how
// much it needs and how much there is).
std::unique_ptr<EnvBatch> make_env_batch(Backend& backend, const EnvConfig& cfg, int64_t trials);
std::unique_ptr<EnvBatch> make_env_batch(std::unique_ptr<Backend> backend, const EnvConfig& cfg, int64_t trials);
// On a new backend of `device` (src/train/backends.cpp); InputError when the device is not usable.
std::unique_ptr<EnvBatch> make_env_batch(Device device, const EnvConfig& cfg, int64_t trials);
std::unique_ptr<EnvBatch> make_cpu_env_batch(const EnvConfig& cfg, int64_t trials);  // make_env_batch(kCpu, ...)

}  // namespace rl2
