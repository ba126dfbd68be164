// Helpers shared by the CPU tests of the policy objective (test_trainer.cpp, test_network.cpp,
// test_step_ops.cpp): a PolicyObjective (include/rl2/train/objective.hpp) on the CPU backend over a host
// copy of the parameters, and copies between std::vectors and Buffers in the backend's memory.
//
// Lifetimes: every Buffer (and BackendAdam) frees itself through its backend, so it must be destroyed
// before the CpuObjective that owns the backend: declare it after the CpuObjective in the same scope.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "rl2/train/backend.hpp"
#include "rl2/train/objective.hpp"

namespace rl2::test {

template <class T>
Buffer<T> to_buffer(Backend& be, const std::vector<T>& host) {
  Buffer<T> b(be, static_cast<int64_t>(host.size()));
  be.upload(b.data(), host);
  return b;
}

template <class T>
std::vector<T> to_host(Backend& be, const Buffer<T>& b) {
  return be.download(b.data(), b.size());
}

// A PolicyObjective on a CPU backend of its own. The objective reads and writes `params` in place (the CPU
// backend's memory is host memory), so a test compares `params` with its fixture's before and after an
// update. The batch's arrays are host arrays for the same reason. Neither copyable nor movable (the
// objective holds params.data()).
struct CpuObjective {
  std::unique_ptr<Backend> be = make_cpu_backend();
  std::vector<float> params;
  PolicyObjective obj;

  CpuObjective(const NetShape& shape, std::vector<float> initial, const PolicyBatch& batch,
               bool finite_difference = false)
      : params(std::move(initial)), obj(*be, shape, params.data(), batch, finite_difference) {}
  CpuObjective(const CpuObjective&) = delete;
  CpuObjective& operator=(const CpuObjective&) = delete;

  Buffer<float> vec(const std::vector<float>& host) { return to_buffer(*be, host); }
  std::vector<float> host(const Buffer<float>& b) { return to_host(*be, b); }
  std::vector<double> host_double(const Buffer<float>& b) {
    const std::vector<float> h = host(b);
    return std::vector<double>(h.begin(), h.end());
  }
};

}  // namespace rl2::test
