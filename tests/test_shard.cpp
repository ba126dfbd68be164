// The pieces that make R ranks give one process's bytes (train/shard.hpp, docs/scaling.md), on the CPU and
// without MPI: segments and the partition into ranks; a segment's results do not depend on the batch around
// it (forward, JVP, backward partials); the backward is exactly the in-order float64 sum of its partials;
// step_sum_parts adds up to step_sum. tests/ranks_test.py runs the same claims end to end under mpirun.
#include <gtest/gtest.h>

#include <numeric>

#include "numeric_test_util.hpp"
#include "rl2/core/chunks.hpp"
#include "rl2/core/comm.hpp"
#include "rl2/policy/network.hpp"
#include "rl2/train/backend.hpp"
#include "rl2/train/shard.hpp"

namespace rl2 {
namespace {

using test::random_vec;
using test::VecF;

// A communicator that only says which rank it is: enough for the partition (Shard's constructor and
// select), which talk to no one.
class RankOnly final : public Comm {
 public:
  RankOnly(int rank, int size) : rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string describe() const override { return "test"; }
  std::vector<std::string> all_gather(const std::string&) override { throw Error("RankOnly: no gather"); }
  void send(int, const void*, size_t) override { throw Error("RankOnly: no send"); }
  void recv(int, void*, size_t) override { throw Error("RankOnly: no recv"); }
  void broadcast(void*, size_t, int) override { throw Error("RankOnly: no broadcast"); }
  void all_reduce_sum(double*, int64_t) override { throw Error("RankOnly: no sum"); }
  [[noreturn]] void abort(int) override { throw Error("RankOnly: abort"); }

 private:
  int rank_, size_;
};

TEST(Segments, ChunksAndGroupsByChunk) {
  const TrialSegments c = TrialSegments::chunks(70, 100);  // 2048 / 100 = 20 trials per chunk
  EXPECT_EQ(c.bounds, (std::vector<int64_t>{0, 20, 40, 60, 70}));
  EXPECT_EQ(c.max_size(), 20);
  const std::vector<int64_t> ids{1, 5, 19, 20, 41, 42, 69};
  const TrialSegments g = TrialSegments::by_chunk(ids.data(), 7, 20);
  EXPECT_EQ(g.bounds, (std::vector<int64_t>{0, 3, 4, 6, 7}));  // chunk 0: 3 trials, 1: 1, 2: 2, 3: 1
  EXPECT_EQ(TrialSegments::by_chunk(ids.data(), 0, 20).count(), 0);
}

TEST(Shard, RanksOwnWholeChunksCoveringTheBatch) {
  for (int R : {1, 2, 3, 5}) {
    int64_t next = 0;
    for (int r = 0; r < R; ++r) {
      RankOnly comm(r, R);
      const Shard s(comm, 210, 100);  // 11 chunks of 20 (the last of 10)
      EXPECT_EQ(s.first(), next) << "R " << R << " rank " << r;
      EXPECT_EQ(s.first() % 20, 0);
      EXPECT_GE(s.count(), 20);
      EXPECT_EQ(s.segments().trials(), s.count());
      next = s.first() + s.count();
    }
    EXPECT_EQ(next, 210) << "R " << R;
  }
  RankOnly twelve(0, 12);
  EXPECT_THROW(Shard(twelve, 210, 100), CollectiveError);  // more ranks than chunks
}

TEST(Shard, SelectKeepsThisRanksTrialsSortedInChunkSegments) {
  RankOnly comm(1, 2);
  const Shard s(comm, 200, 100);  // 10 chunks; rank 1: chunks 5..9 = trials 100..199
  const std::vector<int64_t> ids{150, 3, 199, 101, 99, 100, 121};
  const Shard::Part p = s.select(ids.data(), static_cast<int64_t>(ids.size()));
  EXPECT_EQ(p.ids, (std::vector<int64_t>{0, 1, 21, 50, 99}));  // 100, 101, 121, 150, 199 in its numbering
  EXPECT_EQ(p.segs.bounds, (std::vector<int64_t>{0, 2, 3, 4, 5}));
}

// Every segment computes alone: the trials of segment u give the same bytes whether they run inside the
// whole batch or as a batch of their own (what a rank holding only some segments computes). And the
// backward's partials, added in order in float64 and rounded once, are the backward's gradient exactly.
// The standalone batch uses one segment (its trials), as a rank's chunk is.
void check_segments_compute_alone(const NetShape& s) {
  const int64_t T = 7, B = 23, I = s.input(), O = s.gru.out, P = s.size();
  VecF p(static_cast<size_t>(P));
  net_init(s, 5, 0, 0.5f, p.data());
  const VecF x = random_vec(static_cast<size_t>(T * B * I), 1), d = random_vec(static_cast<size_t>(T * B * O), 2),
             v = random_vec(p.size(), 3);
  TrialSegments segs;
  segs.bounds = {0, 4, 5, 13, 23};  // uneven, as a minibatch's are
  const std::vector<PartsRange> layout = net_parts_layout(s, T, B, segs);
  ASSERT_EQ(layout.size(), s.encoder ? 2u : 1u);
  EXPECT_EQ(layout[0].units, segs.count());  // the GRU's partials: one per segment
  int64_t floats = 0;
  for (const PartsRange& pr : layout) floats += pr.size * pr.units;
  NetCache c;
  VecF out(d.size()), tan(d.size()), grad(p.size(), 0.0f), parts(static_cast<size_t>(floats));
  net_forward(s, p.data(), x.data(), T, B, c, out.data(), &segs);
  net_jvp(s, p.data(), x.data(), T, B, c, v.data(), tan.data(), &segs);
  net_backward(s, p.data(), x.data(), T, B, c, d.data(), grad.data(), &segs);
  net_backward(s, p.data(), x.data(), T, B, c, d.data(), nullptr, &segs, parts.data());
  // Per range, the gradient is the float of the in-order float64 sum of its partials, bit for bit.
  const float* part = parts.data();
  for (const PartsRange& pr : layout) {
    for (int64_t j = 0; j < pr.size; ++j) {
      double acc = 0.0;
      for (int64_t u = 0; u < pr.units; ++u) acc += part[u * pr.size + j];
      ASSERT_EQ(grad[static_cast<size_t>(pr.offset + j)], static_cast<float>(0.0f + acc)) << pr.offset + j;
    }
    part += pr.size * pr.units;
  }

  int64_t enc_unit = 0;  // the encoder's first unit of segment u in the batch
  for (int64_t u = 0; u < segs.count(); ++u) {
    const int64_t b0 = segs.begin(u), m = segs.end(u) - b0;
    // The segment's rows as a batch of its own (one segment, as a rank's chunk is).
    VecF xs(static_cast<size_t>(T * m * I)), ds(static_cast<size_t>(T * m * O));
    for (int64_t t = 0; t < T; ++t) {
      std::copy_n(&x[static_cast<size_t>((t * B + b0) * I)], m * I, &xs[static_cast<size_t>(t * m * I)]);
      std::copy_n(&d[static_cast<size_t>((t * B + b0) * O)], m * O, &ds[static_cast<size_t>(t * m * O)]);
    }
    TrialSegments one;
    one.bounds = {0, m};
    const std::vector<PartsRange> lo = net_parts_layout(s, T, m, one);
    int64_t floats1 = 0;
    for (const PartsRange& pr : lo) floats1 += pr.size * pr.units;
    NetCache cs;
    VecF outs(ds.size()), tans(ds.size()), part1(static_cast<size_t>(floats1));
    net_forward(s, p.data(), xs.data(), T, m, cs, outs.data(), &one);
    net_jvp(s, p.data(), xs.data(), T, m, cs, v.data(), tans.data(), &one);
    net_backward(s, p.data(), xs.data(), T, m, cs, ds.data(), nullptr, &one, part1.data());
    for (int64_t t = 0; t < T; ++t)
      for (int64_t k = 0; k < m * O; ++k) {
        ASSERT_EQ(out[static_cast<size_t>((t * B + b0) * O + k)], outs[static_cast<size_t>(t * m * O + k)]);
        ASSERT_EQ(tan[static_cast<size_t>((t * B + b0) * O + k)], tans[static_cast<size_t>(t * m * O + k)]);
      }
    const int64_t Pg = layout[0].size;
    for (int64_t j = 0; j < Pg; ++j) ASSERT_EQ(parts[static_cast<size_t>(u * Pg + j)], part1[static_cast<size_t>(j)]);
    if (!s.encoder) continue;
    const int64_t Pe = layout[1].size, units = lo[1].units, base = segs.count() * Pg;
    for (int64_t k = 0; k < units * Pe; ++k)
      ASSERT_EQ(parts[static_cast<size_t>(base + enc_unit * Pe + k)], part1[static_cast<size_t>(Pg + k)]) << u;
    enc_unit += units;
  }
  if (s.encoder) EXPECT_EQ(enc_unit, layout[1].units);
}

TEST(Shard, SegmentsComputeAloneAndPartialsSumToTheGradient) {
  check_segments_compute_alone(NetShape{GruShape{5, 16, 3}, false, {}});
}

// The maze's network: the encoder's units are the segments too (its rows at every step).
TEST(Shard, SegmentsComputeAloneWithTheEncoder) {
  NetShape s;
  s.encoder = true;
  s.enc = EncoderShape{3, 18, 21, 4, 5, 2, 8, 5, 6};
  s.gru = GruShape{s.enc.out(), 7, 3};
  check_segments_compute_alone(s);
}

TEST(Shard, StepSumPartsAddUpToStepSum) {
  auto be = make_cpu_backend();
  const int64_t T = 9, N = 50;
  const VecF x = random_vec(static_cast<size_t>(T * N), 4);
  VecF mask(x.size(), 1.0f);
  for (size_t k = 0; k < mask.size(); k += 7) mask[k] = 0.0f;
  const TrialSegments c = TrialSegments::chunks(N, T);
  for (const float* m : {static_cast<const float*>(nullptr), static_cast<const float*>(mask.data())}) {
    const std::vector<double> parts = be->step_sum_parts(T, c, x.data(), m);
    EXPECT_EQ(static_cast<int64_t>(parts.size()), c.count());
    double total = 0.0;
    for (double q : parts) total += q;
    EXPECT_EQ(total, be->step_sum(T, N, x.data(), m));
    const double active = m ? be->step_sum(T, N, m) : static_cast<double>(T * N);
    const auto [mean, var] = be->mean_var(T, N, x.data(), m, active);
    const Shard one(single_process(), N, T);
    EXPECT_EQ(one.mean_var(*be, T, one.segments(), x.data(), m, active), std::make_pair(mean, var));
    EXPECT_EQ(one.active_steps(*be, T, one.segments(), m), active);
  }
}

}  // namespace
}  // namespace rl2
