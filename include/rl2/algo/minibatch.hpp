// Minibatches of whole trials (a GRU runs over whole trials): a Philox-seeded order of a batch's trials
// and the time-major gather of the chosen trials' rows. Shared by the baseline's regression and PPO.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

#include "rl2/core/rng.hpp"

namespace rl2 {

// A Fisher-Yates permutation of 0..n-1 drawn from RandomStream(seed, iteration, step, kShuffle).
inline std::vector<int64_t> shuffled_trials(uint64_t seed, uint64_t iteration, uint32_t step, int64_t n) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  RandomStream rs(seed, iteration, step, Purpose::kShuffle);
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[uniform_int(rs.next_u32(), static_cast<uint32_t>(i + 1))]);
  return order;
}

// dst [T, n, width] = the rows of trials ids[0..n) of src [T, N, width], time-major.
template <class Real>
void gather_trials(const Real* src, int64_t T, int64_t N, int64_t width, const int64_t* ids, int64_t n, Real* dst) {
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < T * n; ++k) {
    const int64_t row = (k / n) * N + ids[k % n];
    std::copy(src + row * width, src + (row + 1) * width, dst + k * width);
  }
}

}  // namespace rl2
