// Helpers shared by the CPU env tests and the GPU parity tests: a deterministic action pattern.
#pragma once

#include <cstdint>
#include <vector>

#include "rl2/core/rng.hpp"

namespace rl2::test {

// actions: [trials] for step t, drawn from a stream unrelated to the environment's own.
inline std::vector<int32_t> pattern_actions(int64_t trials, int64_t t, int32_t num_actions) {
  std::vector<int32_t> a(static_cast<size_t>(trials));
  for (int64_t i = 0; i < trials; ++i)
    a[i] = static_cast<int32_t>(
        uniform_int(philox_bits(0xabcdefull, static_cast<uint64_t>(i), static_cast<uint32_t>(t), Purpose::kAction, 0).v[0],
                    static_cast<uint32_t>(num_actions)));
  return a;
}

}  // namespace rl2::test
