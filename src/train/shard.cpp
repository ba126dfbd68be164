// Shard (shard.hpp): the partition of a batch over ranks and the ordered sums.
#include "rl2/train/shard.hpp"

#include <algorithm>

#include "rl2/core/check.hpp"

namespace rl2 {

Shard::Shard(Comm& comm, int64_t N, int64_t T) : comm_(&comm), N_(N), chunk_(TrialChunks(N, T).size) {
  const TrialChunks ch(N, T);
  const int64_t K = ch.count(), R = comm.size(), r = comm.rank();
  // Every rank finds this alike (N, T and R are the same everywhere): rank 0 alone reports it.
  if (R > K)
    throw CollectiveError("the batch has " + std::to_string(K) + " chunks of trials (" + std::to_string(N) +
                              " trials of " + std::to_string(T) + " steps) for " + std::to_string(R) +
                              " ranks: each rank needs a chunk; use at most " + std::to_string(K) +
                              " ranks or a larger --steps-per-iter",
                          2);
  const int64_t c0 = r * K / R, c1 = (r + 1) * K / R;
  first_ = ch.begin(c0);
  count_ = ch.end(c1 - 1) - first_;
  segs_ = TrialSegments::chunks(count_, T);
}

Shard::Part Shard::select(const int64_t* ids, int64_t n) const {
  Part p;
  for (int64_t j = 0; j < n; ++j)
    if (ids[j] >= first_ && ids[j] < first_ + count_) p.ids.push_back(ids[j] - first_);
  std::sort(p.ids.begin(), p.ids.end());
  // first_ is a multiple of the chunk size, so local chunk numbers are the global ones shifted.
  p.segs = TrialSegments::by_chunk(p.ids.data(), static_cast<int64_t>(p.ids.size()), chunk_);
  return p;
}

double Shard::active_steps(Backend& be, int64_t T, const TrialSegments& segs, const float* mask) const {
  if (mask != nullptr) return step_sum(be, T, segs, mask, mask);  // 0/1 entries: exact
  return static_cast<double>(T) * ordered_sum(*comm_, {static_cast<double>(segs.trials())});
}

void Shard::backward(Backend& be, BackendNet& net, int64_t P, const float* params, const float* x,
                     const TrialSegments& segs, const float* d_out, float* grad) const {
  Comm& comm = *comm_;
  if (comm.size() == 1) {
    net.backward(params, x, segs.trials(), d_out, grad, &segs);
    return;
  }
  const std::vector<PartsRange> layout = net.parts_layout(segs);
  sum_.resize(static_cast<size_t>(P));
  if (layout.empty()) {  // no partial sums (cuDNN): the ranks' gradients summed in the library's order
    net.backward(params, x, segs.trials(), d_out, grad, &segs);
    if (be.all_reduce_sum(comm, grad, P)) return;  // on the device (NCCL)
    be.download(sum_.data(), grad, sum_.size() * sizeof(float));
    acc_.assign(sum_.begin(), sum_.end());
    comm.all_reduce_sum(acc_.data(), P);
    for (int64_t j = 0; j < P; ++j) sum_[j] = static_cast<float>(acc_[j]);
    be.upload(grad, sum_);
    return;
  }
  // The running sum: rank r continues rank r - 1's float64 sums with its partials, in order. Buffers are
  // kept across calls (a fresh few MB per call cost more in page faults than the sum itself).
  int64_t floats = 0;
  for (const PartsRange& pr : layout) floats += pr.size * pr.units;
  if (parts_.size() < std::max<int64_t>(1, floats)) parts_ = Buffer<float>(be, std::max<int64_t>(1, floats));
  mine_.resize(static_cast<size_t>(floats));
  acc_.assign(static_cast<size_t>(P), 0.0);
  net.backward_parts(params, x, d_out, segs, parts_.data());
  be.download(mine_.data(), parts_.data(), mine_.size() * sizeof(float));
  const int r = comm.rank(), last = comm.size() - 1;
  if (r > 0) comm.recv(r - 1, acc_.data(), acc_.size() * sizeof(double));
  const float* part = mine_.data();
  double* acc = acc_.data();
  for (const PartsRange& pr : layout) {
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < pr.size; ++j) {
      double s = acc[pr.offset + j];
      for (int64_t u = 0; u < pr.units; ++u) s += part[u * pr.size + j];
      acc[pr.offset + j] = s;
    }
    part += pr.size * pr.units;
  }
  if (r < last) {
    comm.send(r + 1, acc_.data(), acc_.size() * sizeof(double));
  } else {
    for (int64_t j = 0; j < P; ++j) sum_[j] = static_cast<float>(0.0f + acc[j]);  // as for_units_summed rounds
  }
  comm.broadcast(sum_.data(), sum_.size() * sizeof(float), last);
  be.upload(grad, sum_);
}

}  // namespace rl2
