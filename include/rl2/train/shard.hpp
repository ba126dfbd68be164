// One rank's share of data-parallel training (docs/scaling.md), and the sums the ranks make together.
// Ranks own whole chunks of every iteration's N trials (core/chunks.hpp): rank r of R the chunks
// [r K / R, (r + 1) K / R) of the batch's K chunks. Every sum over the batch is made per segment (a chunk,
// or a sub-batch's trials from one chunk) and the segments' sums are added in segment order, rank after
// rank: exactly one process's order, so R ranks give the same bytes as one process (same seed, same
// bytes). A weight gradient travels as a running float64 sum from rank to rank, each adding its segments'
// partials in order, and the last rank broadcasts the float result. A backend without per-segment
// gradients (cuDNN) all-reduces its ranks' gradients instead, in the library's order (not bit-identical
// across rank counts; docs/scaling.md).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "rl2/core/chunks.hpp"
#include "rl2/core/comm.hpp"
#include "rl2/train/backend.hpp"

namespace rl2 {

class Shard {
 public:
  // N trials of T steps over comm's ranks; InputError when there are more ranks than chunks.
  Shard(Comm& comm, int64_t N, int64_t T);
  Comm& comm() const { return *comm_; }
  int64_t trials() const { return N_; }     // the whole batch
  int64_t first() const { return first_; }  // this rank's trials: [first, first + count)
  int64_t count() const { return count_; }
  const TrialSegments& segments() const { return segs_; }  // this rank's chunks, in its own numbering

  // A sub-batch given by global trial ids (any order): this rank's members ascending, in its own
  // numbering, and their segments (TrialSegments::by_chunk).
  struct Part {
    std::vector<int64_t> ids;
    TrialSegments segs;
  };
  Part select(const int64_t* ids, int64_t n) const;

  double max(double mine) const { return all_max(*comm_, mine); }
  // Σ over the active steps of this rank's [T, segs.trials()] array, over all ranks (segment order).
  template <class Real>
  double step_sum(Backend& be, int64_t T, const TrialSegments& segs, const Real* x, const float* mask) const {
    return ordered_sum(*comm_, be.step_sum_parts(T, segs, x, mask));
  }
  // The mean over `active` active steps of all ranks, then the mean squared deviation from it.
  template <class Real>
  std::pair<double, double> mean_var(Backend& be, int64_t T, const TrialSegments& segs, const Real* x,
                                     const float* mask, double active) const {
    const double mean = step_sum(be, T, segs, x, mask) / active;
    return {mean, ordered_sum(*comm_, be.step_sum_parts(T, segs, x, mask, &mean)) / active};
  }
  // Active steps of all ranks' trials (mask nullptr: T per trial).
  double active_steps(Backend& be, int64_t T, const TrialSegments& segs, const float* mask) const;
  // grad [P] = the weight gradient of net's last forward (this rank's segs), summed over ranks.
  void backward(Backend& be, BackendNet& net, int64_t P, const float* params, const float* x, const TrialSegments& segs,
                const float* d_out, float* grad) const;

 private:
  Comm* comm_;
  int64_t N_, chunk_, first_ = 0, count_ = 0;
  TrialSegments segs_;
  // backward's scratch, kept across calls: the segments' partials (backend and host), the running sum.
  mutable Buffer<float> parts_;
  mutable std::vector<float> mine_, sum_;
  mutable std::vector<double> acc_;
};

}  // namespace rl2
