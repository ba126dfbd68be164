// The per-element step ops of include/rl2/train/step_ops.hpp and the CPU backend's reductions, where the
// objective's tests (test_trainer.cpp, test_network.cpp) do not already pin them: ops::Adam (run through
// objective.hpp's adam_step on a Backend) bit for bit against adam.hpp's host adam_step; ops::GatherTrialsF
// bit for bit against minibatch.hpp's gather_trials; and the reductions (step_sum, mean_var, trial_sum,
// max, dot, all_finite, max_abs_diff, with and without a mask) against plain loops. The CPU backend runs
// the same op bodies the CUDA backend launches, so these pin the arithmetic of both.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "numeric_test_util.hpp"
#include "objective_test_util.hpp"
#include "rl2/algo/adam.hpp"
#include "rl2/algo/minibatch.hpp"
#include "rl2/core/chunks.hpp"
#include "rl2/train/backend.hpp"
#include "rl2/train/objective.hpp"
#include "rl2/train/step_ops.hpp"

namespace rl2 {
namespace {

using test::random_vec;
using test::to_buffer;
using test::to_host;
using test::VecD;
using test::VecF;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// A gradient with awkward entries: zeros (v stays 0: the eps of the denominator), tiny and huge values.
VecF awkward_grad(int64_t n, uint64_t seed) {
  VecF g = random_vec(static_cast<size_t>(n), seed, 0.5f);
  for (int64_t i = 0; i < n; i += 97) g[i] = 0.0f;
  for (int64_t i = 13; i < n; i += 211) g[i] = 1e-30f;
  for (int64_t i = 29; i < n; i += 389) g[i] = -3e4f;
  return g;
}

// Three steps of ops::Adam (through adam_step over the backend) on a vector of 4097 parameters (not a
// multiple of any block or vector width, and above the CPU backend's parallel threshold) give the same
// bits as the host Adam of adam.hpp: parameters, both moments and the step count. Also with a negative
// rate (PPO's ascent, PolicyObjective::adam_ascent), after a round trip of the moments through
// download_adam/upload_adam (a resumed run), and a non-finite gradient changes nothing on either.
TEST(StepOps, AdamMatchesHostAdamBitForBit) {
  const int64_t n = 4097;
  const std::unique_ptr<Backend> be = make_cpu_backend();
  for (const double lr : {1e-3, -3e-2}) {
    SCOPED_TRACE(::testing::Message() << "lr " << lr);
    VecF host_params = random_vec(static_cast<size_t>(n), 1);
    Buffer<float> params = to_buffer(*be, host_params);
    AdamState hs;
    BackendAdam bs;
    auto expect_same = [&] {
      EXPECT_EQ(to_host(*be, params), host_params);
      const AdamState ds = download_adam(*be, bs);
      EXPECT_EQ(ds.m, hs.m);
      EXPECT_EQ(ds.v, hs.v);
      EXPECT_EQ(ds.t, hs.t);
    };
    for (int step = 0; step < 3; ++step) {
      const VecF g = awkward_grad(n, 10 + static_cast<uint64_t>(step));
      const Buffer<float> grad = to_buffer(*be, g);
      ASSERT_TRUE(adam_step(hs, host_params.data(), g.data(), n, lr));
      ASSERT_TRUE(adam_step(*be, bs, params.data(), grad.data(), n, lr));
      expect_same();
    }
    EXPECT_EQ(bs.t, 3);
    EXPECT_NE(host_params, random_vec(static_cast<size_t>(n), 1));
    // A non-finite gradient: both refuse and change nothing.
    for (const float bad : {kNaN, kInf}) {
      VecF g = awkward_grad(n, 20);
      g[4096] = bad;
      const Buffer<float> grad = to_buffer(*be, g);
      EXPECT_FALSE(adam_step(hs, host_params.data(), g.data(), n, lr));
      EXPECT_FALSE(adam_step(*be, bs, params.data(), grad.data(), n, lr));
      expect_same();
      EXPECT_EQ(bs.t, 3);
    }
    // Resume: the moments downloaded and uploaded into a fresh state step on as the host's.
    BackendAdam resumed;
    upload_adam(*be, download_adam(*be, bs), resumed);
    bs = std::move(resumed);
    const VecF g = awkward_grad(n, 30);
    const Buffer<float> grad = to_buffer(*be, g);
    ASSERT_TRUE(adam_step(hs, host_params.data(), g.data(), n, lr));
    ASSERT_TRUE(adam_step(*be, bs, params.data(), grad.data(), n, lr));
    expect_same();
    EXPECT_EQ(bs.t, 4);
  }
}

// ops::GatherTrialsF: the rows of trials ids of a [T, N, width] array, time-major, as gather_trials on the
// host, bit for bit: ids out of order and repeated, widths 1 (a mask), 3 (probabilities) and 13 (inputs),
// and a large case above the CPU backend's parallel threshold (4096 items) with fvp_trials' ids.
TEST(StepOps, GatherTrialsMatchesHostGather) {
  const std::unique_ptr<Backend> be = make_cpu_backend();
  struct Case {
    int64_t T, N, width;
    std::vector<int64_t> ids;
  };
  const std::vector<Case> cases = {{5, 7, 1, {4, 0, 6, 3, 3}},
                                   {5, 7, 3, {4, 0, 6, 3, 3}},
                                   {5, 7, 13, {6}},
                                   {1, 1, 2, {0}},
                                   {30, 50, 11, fvp_trials(50, 100, 0.5)}};
  uint64_t seed = 40;
  for (const Case& c : cases) {
    const int64_t n = static_cast<int64_t>(c.ids.size());
    SCOPED_TRACE(::testing::Message() << "T " << c.T << " N " << c.N << " width " << c.width << " n " << n);
    const VecF src = random_vec(static_cast<size_t>(c.T * c.N * c.width), seed++);
    VecF expected(static_cast<size_t>(c.T * n * c.width), kNaN);
    gather_trials(src.data(), c.T, c.N, c.width, c.ids.data(), n, expected.data());
    const Buffer<float> src_b = to_buffer(*be, src);
    const Buffer<int64_t> ids_b = to_buffer(*be, c.ids);
    Buffer<float> dst(*be, c.T * n * c.width);
    be->run(ops::Fill{dst.size(), kNaN, dst.data()});
    be->run(ops::GatherTrialsF{src_b.data(), c.T, c.N, c.width, ids_b.data(), n, dst.data()});
    EXPECT_EQ(to_host(*be, dst), expected);
    // And element by element from the definition: dst[t, j, c] = src[t, ids[j], c].
    const VecF got = to_host(*be, dst);
    int64_t wrong = 0;
    for (int64_t t = 0; t < c.T; ++t)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t w = 0; w < c.width; ++w)
          wrong += got[(t * n + j) * c.width + w] != src[(t * c.N + c.ids[j]) * c.width + w];
    EXPECT_EQ(wrong, 0);
  }
}

// A [T, N] batch of T = 37 steps of N = 53 trials: two chunks of trials (32 and 21, core/chunks.hpp), a mask
// with about a third of the steps inactive, and values the inactive steps must not contribute (1e30).
struct ReductionData {
  int64_t T = 37, N = 53;
  VecF mask, xf;
  VecD xd;
  double active = 0.0;
  ReductionData() {
    const VecF r = random_vec(static_cast<size_t>(T * N), 50);
    mask.resize(r.size());
    for (size_t k = 0; k < r.size(); ++k) mask[k] = r[k] < -0.35f ? 0.0f : 1.0f;
    xf = random_vec(static_cast<size_t>(T * N), 51, 3.0f);
    xd.resize(xf.size());
    for (size_t k = 0; k < xf.size(); ++k) xd[k] = static_cast<double>(xf[k]) + 0.5 + 1e-9 * static_cast<double>(k);
    for (size_t k = 0; k < mask.size(); ++k) {
      if (mask[k] != 0.0f) {
        active += 1.0;
      } else {
        xf[k] = 1e30f;
        xd[k] = -1e30;
      }
    }
  }
};

// Σ over the active steps (mask nullptr: all) in index order, then the mean squared deviation.
template <class Real>
double loop_sum(const std::vector<Real>& x, const VecF* mask) {
  double s = 0.0;
  for (size_t k = 0; k < x.size(); ++k)
    if (mask == nullptr || (*mask)[k] != 0.0f) s += static_cast<double>(x[k]);
  return s;
}
template <class Real>
double loop_var(const std::vector<Real>& x, const VecF* mask, double mean, double active) {
  double s = 0.0;
  for (size_t k = 0; k < x.size(); ++k)
    if (mask == nullptr || (*mask)[k] != 0.0f) s += (static_cast<double>(x[k]) - mean) * (static_cast<double>(x[k]) - mean);
  return s / active;
}
// The same sum in the order backend.hpp promises for the CPU: by chunk of trials, inside one by time, then
// by trial (core/chunks.hpp).
template <class Real>
double chunk_order_sum(int64_t T, int64_t N, const std::vector<Real>& x, const VecF* mask) {
  const TrialChunks ch(N, T);
  double total = 0.0;
  for (int64_t c = 0; c < ch.count(); ++c) {
    double s = 0.0;
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = ch.begin(c); i < ch.end(c); ++i) {
        const int64_t k = t * N + i;
        s += (mask == nullptr || (*mask)[k] != 0.0f) ? static_cast<double>(x[k]) : 0.0;
      }
    total += s;
  }
  return total;
}

// step_sum and mean_var, float and double, masked and not: equal to index-order loops up to the rounding of
// another summation order (1e-12 relative; the sums are of ~2000 terms of size ~1), and bit for bit equal
// to the chunk order; the mask's own sum is the active count exactly.
TEST(StepOps, CpuStepSumAndMeanVarMatchLoops) {
  const ReductionData d;
  const int64_t T = d.T, N = d.N;
  ASSERT_EQ(TrialChunks(N, T).count(), 2);
  ASSERT_GT(d.active, 0.5 * T * N);
  ASSERT_LT(d.active, 0.8 * T * N);
  const std::unique_ptr<Backend> be = make_cpu_backend();
  const Buffer<float> mask = to_buffer(*be, d.mask), xf = to_buffer(*be, d.xf);
  const Buffer<double> xd = to_buffer(*be, d.xd);
  auto near = [](double got, double want) { EXPECT_NEAR(got, want, 1e-12 * std::max(1.0, std::fabs(want))); };

  EXPECT_EQ(be->step_sum(T, N, mask.data()), d.active);
  EXPECT_EQ(be->step_sum(T, N, mask.data(), mask.data()), d.active);

  const double sf = be->step_sum(T, N, xf.data(), mask.data());
  const double sd = be->step_sum(T, N, xd.data(), mask.data());
  near(sf, loop_sum(d.xf, &d.mask));
  near(sd, loop_sum(d.xd, &d.mask));
  EXPECT_LT(std::fabs(sf), 1e4);  // the inactive steps' 1e30 left out
  EXPECT_EQ(sf, chunk_order_sum(T, N, d.xf, &d.mask));
  EXPECT_EQ(sd, chunk_order_sum(T, N, d.xd, &d.mask));
  // No mask: every step, the 1e30 included.
  EXPECT_EQ(be->step_sum(T, N, xf.data()), chunk_order_sum(T, N, d.xf, nullptr));
  near(be->step_sum(T, N, xd.data()), loop_sum(d.xd, nullptr));

  for (const bool masked : {true, false}) {
    SCOPED_TRACE(::testing::Message() << "masked " << masked);
    // Without a mask, values of size 1 everywhere (the 1e30 would make the variance meaningless).
    const VecF xf_all = random_vec(static_cast<size_t>(T * N), 52, 3.0f);
    VecD xd_all(xf_all.size());
    for (size_t k = 0; k < xf_all.size(); ++k) xd_all[k] = 2.0 * xf_all[k] - 1.0 + 1e-9 * static_cast<double>(k);
    const VecF& hf = masked ? d.xf : xf_all;
    const VecD& hd = masked ? d.xd : xd_all;
    const VecF* hm = masked ? &d.mask : nullptr;
    const double active = masked ? d.active : static_cast<double>(T * N);
    const Buffer<float> bf = to_buffer(*be, hf);
    const Buffer<double> bd = to_buffer(*be, hd);
    const float* m = masked ? mask.data() : nullptr;
    const auto [mf, vf] = be->mean_var(T, N, bf.data(), m, active);
    const auto [md, vd] = be->mean_var(T, N, bd.data(), m, active);
    const double want_mf = loop_sum(hf, hm) / active, want_md = loop_sum(hd, hm) / active;
    near(mf, want_mf);
    near(md, want_md);
    near(vf, loop_var(hf, hm, want_mf, active));
    near(vd, loop_var(hd, hm, want_md, active));
    EXPECT_GT(vf, 0.5);  // uniform in (-3, 3): variance 3
    EXPECT_LT(vf, 5.0);
  }
}

// trial_sum, max, dot and all_finite against loops: max over doubles exactly (-inf for none, NaN when any
// element is NaN, wherever it is), dot in index order exactly.
TEST(StepOps, CpuMaxDotTrialSumAndAllFiniteMatchLoops) {
  const std::unique_ptr<Backend> be = make_cpu_backend();
  const int64_t n = 5000;
  const VecF a = random_vec(static_cast<size_t>(n), 60), b = random_vec(static_cast<size_t>(n), 61);
  VecD x(a.begin(), a.end());
  for (double& e : x) e = e * 10.0 - 3.0;
  const Buffer<float> ab = to_buffer(*be, a), bb = to_buffer(*be, b);

  double want_dot = 0.0;
  for (int64_t i = 0; i < n; ++i) want_dot += static_cast<double>(a[i]) * b[i];
  EXPECT_EQ(be->dot(n, ab.data(), bb.data()), want_dot);

  const Buffer<double> xb = to_buffer(*be, x);
  // trial_sum of n per-trial values of trials of 3 steps: in the chunks of the batch, then in chunk order.
  const TrialChunks ch(n, 3);
  double want_trial_sum = 0.0;
  for (int64_t c = 0; c < ch.count(); ++c) {
    double s = 0.0;
    for (int64_t i = ch.begin(c); i < ch.end(c); ++i) s += x[i];
    want_trial_sum += s;
  }
  EXPECT_EQ(be->trial_sum(n, 3, xb.data()), want_trial_sum);
  EXPECT_NEAR(be->trial_sum(n, 3, xb.data()), loop_sum(x, nullptr), 1e-12 * std::fabs(loop_sum(x, nullptr)));

  EXPECT_EQ(be->max(n, xb.data()), *std::max_element(x.begin(), x.end()));
  const VecD negative = {-5.0, -2.5, -7.0};  // a max that started from 0 would give 0
  EXPECT_EQ(be->max(3, to_buffer(*be, negative).data()), -2.5);
  EXPECT_EQ(be->max(0, xb.data()), -std::numeric_limits<double>::infinity());
  const VecD with_inf = {-1.0, std::numeric_limits<double>::infinity(), 2.0};
  EXPECT_EQ(be->max(3, to_buffer(*be, with_inf).data()), std::numeric_limits<double>::infinity());
  for (const int64_t at : {int64_t{0}, n / 2, n - 1}) {
    VecD y = x;
    y[at] = std::numeric_limits<double>::quiet_NaN();
    EXPECT_TRUE(std::isnan(be->max(n, to_buffer(*be, y).data()))) << "NaN at " << at;
  }

  EXPECT_TRUE(be->all_finite(n, ab.data()));
  EXPECT_TRUE(be->all_finite(0, ab.data()));
  for (const float bad : {kNaN, kInf, -kInf}) {
    VecF c = a;
    c[n - 1] = bad;
    EXPECT_FALSE(be->all_finite(n, to_buffer(*be, c).data())) << bad;
  }
}

// max |a - b| over the elements of active steps ([T, N] mask, `width` elements per step), as the finite-
// difference Fisher product measures its probe's logit change: exactly the loop's maximum, a huge
// difference at an inactive step left out, NaN when an active element is NaN (in either array).
TEST(StepOps, CpuMaxAbsDiffMatchesLoop) {
  const std::unique_ptr<Backend> be = make_cpu_backend();
  const ReductionData d;
  const int64_t steps = d.T * d.N, width = 3, n = steps * width;
  const VecF a = random_vec(static_cast<size_t>(n), 70);
  VecF b = random_vec(static_cast<size_t>(n), 71, 0.01f);
  for (int64_t i = 0; i < n; ++i) b[i] += a[i];
  auto loop = [&](const VecF& x, const VecF& y, const VecF* mask, int64_t w) {
    double m = 0.0;
    for (int64_t i = 0; i < n; ++i)
      if (mask == nullptr || (*mask)[i / w] != 0.0f) m = std::max(m, std::fabs(static_cast<double>(x[i]) - y[i]));
    return m;
  };
  // The largest difference of all at an element of an inactive step.
  int64_t inactive = 0;
  while (d.mask[inactive] != 0.0f) ++inactive;
  b[inactive * width + 1] = a[inactive * width + 1] + 100.0f;
  const Buffer<float> ab = to_buffer(*be, a), bb = to_buffer(*be, b), mask = to_buffer(*be, d.mask);

  const double masked = be->max_abs_diff(n, ab.data(), bb.data(), mask.data(), width);
  EXPECT_EQ(masked, loop(a, b, &d.mask, width));
  EXPECT_GT(masked, 0.0);
  EXPECT_LT(masked, 0.011);
  const double all = be->max_abs_diff(n, ab.data(), bb.data(), nullptr, width);
  EXPECT_EQ(all, loop(a, b, nullptr, width));
  EXPECT_GE(all, 99.0);
  // width 1: the mask read per element ([T, N] arrays themselves).
  double per_step = 0.0;
  for (int64_t i = 0; i < steps; ++i)
    if (d.mask[i] != 0.0f) per_step = std::max(per_step, std::fabs(static_cast<double>(a[i]) - b[i]));
  EXPECT_EQ(be->max_abs_diff(steps, ab.data(), bb.data(), mask.data(), 1), per_step);
  EXPECT_EQ(be->max_abs_diff(0, ab.data(), bb.data(), mask.data(), width), 0.0);

  int64_t active = n / width - 1;
  while (d.mask[active] == 0.0f) --active;
  for (const bool in_a : {true, false}) {
    VecF a2 = a, b2 = b;
    (in_a ? a2 : b2)[active * width + 2] = kNaN;
    const Buffer<float> a2b = to_buffer(*be, a2), b2b = to_buffer(*be, b2);
    EXPECT_TRUE(std::isnan(be->max_abs_diff(n, a2b.data(), b2b.data(), mask.data(), width))) << in_a;
    EXPECT_TRUE(std::isnan(be->max_abs_diff(n, a2b.data(), b2b.data(), nullptr, width))) << in_a;
  }
}

}  // namespace
}  // namespace rl2
