// Fixed-size chunks of trials: the unit of every reduction over trials or steps (DESIGN.md section 11).
//
// A batch of N trials of T steps is cut into chunks of `size` consecutive trials, where size depends on T
// alone (about kChunkSteps steps per chunk, at most kMaxChunkTrials trials), never on the thread count or
// the number of ranks. Every sum over the batch runs inside each chunk in a fixed order (time, then the
// chunk's trials), and the chunk sums are then added in chunk order. Threads take whole chunks, so the
// same seed gives the same bytes on any number of threads; ranks that own whole chunks and exchange the
// chunk sums can add them in the same order and give the same bytes as one process.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace rl2 {

constexpr int64_t kChunkSteps = 2048;    // steps per chunk the size aims at
constexpr int64_t kMaxChunkTrials = 32;  // trials per chunk at most (short trials)

struct TrialChunks {
  int64_t trials = 0;  // N
  int64_t size = 1;    // trials per chunk; the last chunk may hold fewer
  TrialChunks(int64_t n, int64_t steps_per_trial)
      : trials(n), size(std::clamp<int64_t>(kChunkSteps / std::max<int64_t>(1, steps_per_trial), 1, kMaxChunkTrials)) {}
  int64_t count() const { return (trials + size - 1) / size; }
  int64_t begin(int64_t c) const { return c * size; }
  int64_t end(int64_t c) const { return std::min(trials, (c + 1) * size); }
  // The trials of chunks ids[0..n), chunk after chunk (minibatches and the Fisher subsample are whole
  // chunks: each computes as one unit, on whichever rank holds it).
  std::vector<int64_t> trials_of(const int64_t* ids, int64_t n) const {
    std::vector<int64_t> out;
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = begin(ids[j]); i < end(ids[j]); ++i) out.push_back(i);
    return out;
  }
};

// Consecutive runs of a batch's trials, [begin(u), end(u)) for u < count(): the units every sum over the
// batch runs in, and the units of work of the CPU's networks (each unit's GEMMs alone, on its own rows).
// A full batch's segments are its chunks. A gathered sub-batch (a minibatch, the Fisher product's trials)
// is held sorted by trial id, and its segments group the trials that came from one chunk of the full
// batch: so a rank that owns whole chunks holds whole segments of every sub-batch, and computes each
// exactly as one process does (same trials, same shapes), whatever the number of ranks.
struct TrialSegments {
  std::vector<int64_t> bounds{0};  // count() + 1 ascending offsets, bounds[0] = 0
  int64_t count() const { return static_cast<int64_t>(bounds.size()) - 1; }
  int64_t begin(int64_t u) const { return bounds[static_cast<size_t>(u)]; }
  int64_t end(int64_t u) const { return bounds[static_cast<size_t>(u) + 1]; }
  int64_t trials() const { return bounds.back(); }
  int64_t max_size() const {
    int64_t m = 0;
    for (int64_t u = 0; u < count(); ++u) m = std::max(m, end(u) - begin(u));
    return m;
  }
  // The chunks of N trials of T steps.
  static TrialSegments chunks(int64_t N, int64_t T) {
    const TrialChunks ch(N, T);
    TrialSegments s;
    for (int64_t c = 0; c < ch.count(); ++c) s.bounds.push_back(ch.end(c));
    return s;
  }
  // The n ascending trial ids `ids` of a sub-batch, grouped by the chunk (of `chunk` trials) each came from.
  static TrialSegments by_chunk(const int64_t* ids, int64_t n, int64_t chunk) {
    TrialSegments s;
    for (int64_t j = 1; j <= n; ++j)
      if (j == n || ids[j] / chunk != ids[j - 1] / chunk) s.bounds.push_back(j);
    return s;
  }
};

// One sum per unit (a chunk or a segment) of Σ term(t, i) over t in [0, steps) and the unit's trials i, by
// time, then trial. term returns a double.
template <class Units, class F>
std::vector<double> unit_sums(const Units& units, int64_t steps, F&& term) {
  std::vector<double> sums(static_cast<size_t>(units.count()));
  for (int64_t u = 0; u < units.count(); ++u) {
    double s = 0.0;
    for (int64_t t = 0; t < steps; ++t)
      for (int64_t i = units.begin(u); i < units.end(u); ++i) s += term(t, i);
    sums[static_cast<size_t>(u)] = s;
  }
  return sums;
}

// The units' sums added in order, from 0: every sum over a batch (and, over ranks, ordered_sum).
inline double sum_in_order(const std::vector<double>& sums) {
  double total = 0.0;
  for (double s : sums) total += s;
  return total;
}

}  // namespace rl2
