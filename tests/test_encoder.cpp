// Maze encoder checks (include/rl2/policy/encoder.hpp): the float64 reference's backward and JVP against
// central finite differences and against each other (adjoint identity); the float32 reference and the
// fast im2col/OpenBLAS path against the float64 reference at the maze size and at awkward sizes; ReLU at
// exactly 0 (relu'(0) = 0 on every path); layout and init; and the chain encoder -> GRU, whose exact
// Fisher product needs the GRU's JVP with an input tangent (gru_jvp's dx). Fixed seeds.
// Relative errors are norm-wise, ||a − b||₂ / max(||a||₂, ||b||₂, tiny), unless a test says otherwise.
//
// Finite differences: along one coordinate the encoder's output is piecewise linear (each layer is linear
// in its own weights and in its input), and along a full direction piecewise polynomial of degree ≤ 3, so
// the two-point central difference has no truncation error worth counting between ReLU kinks. A small
// step, ε = 1e-6, makes crossing a kink improbable (the seeds are fixed, so a pass is reproducible), and
// its rounding, ~1e-16 / ε ≈ 1e-10, sits far below the 1e-6 checked.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <type_traits>
#include <vector>

#include "numeric_test_util.hpp"
#include "rl2/core/check.hpp"
#include "rl2/policy/encoder.hpp"
#include "rl2/policy/gru.hpp"

namespace rl2 {
namespace {

using test::rel_err;
using test::to_double;
using test::VecD;
using test::VecF;
using test::random_vec;

constexpr double kFdEps = 1e-6;

// 3×18×21 (the last image row falls outside every stride-2 window), 4 filters: f1 4×7×9, f2 4×2×3.
constexpr EncoderShape kSmall{3, 18, 21, 4, 5, 2, 8, 5, 6};
constexpr int64_t kSmallM = 6;

VecF init_params(const EncoderShape& s, uint64_t seed) {
  VecF p(static_cast<size_t>(encoder_layout(s).total));
  encoder_init(s, seed, 0, p.data());
  return p;
}

// Per-step inputs: the image in (-1, 1) (the maze's range) and the extra inputs in (-1, 1).
VecF random_input(const EncoderShape& s, int64_t M, uint64_t seed) {
  return random_vec(static_cast<size_t>(M * s.in()), seed);
}

struct Slice {
  const char* name;
  int64_t begin, end;
};
std::vector<Slice> slices(const EncoderShape& s) {
  const EncoderLayout l = encoder_layout(s);
  return {{"conv1.weight", l.conv1_w, l.conv1_b},       {"conv1.bias", l.conv1_b, l.conv2_w},
          {"conv2.weight", l.conv2_w, l.conv2_b},       {"conv2.bias", l.conv2_b, l.image_fc_w},
          {"image_fc.weight", l.image_fc_w, l.image_fc_b}, {"image_fc.bias", l.image_fc_b, l.extra_fc_w},
          {"extra_fc.weight", l.extra_fc_w, l.extra_fc_b}, {"extra_fc.bias", l.extra_fc_b, l.total}};
}

VecD forward_ref(const EncoderShape& s, const VecD& p, const VecD& x, int64_t M) {
  EncoderCache<double> cache;
  VecD y(static_cast<size_t>(M * s.out()));
  encoder_forward_ref(s, p.data(), x.data(), M, cache, y.data());
  return y;
}

// Every element of every tensor against the central difference of L = Σ c ⊙ y, norm-wise per tensor.
TEST(EncoderRef, GradientMatchesFiniteDifference) {
  const EncoderShape s = kSmall;
  const int64_t M = kSmallM;
  VecD p = to_double(init_params(s, 11));
  const VecD x = to_double(random_input(s, M, 12));
  const VecD c = to_double(random_vec(static_cast<size_t>(M * s.out()), 13));
  EncoderCache<double> cache;
  VecD y(c.size());
  encoder_forward_ref(s, p.data(), x.data(), M, cache, y.data());
  VecD grad(p.size(), 0.0);
  encoder_backward_ref(s, p.data(), x.data(), M, cache, c.data(), grad.data());
  for (const Slice& sl : slices(s)) {
    VecD fd, bw;
    for (int64_t i = sl.begin; i < sl.end; ++i) {
      double& pi = p[static_cast<size_t>(i)];
      const double keep = pi;
      pi = keep + kFdEps;
      const double lp = test::dot(c, forward_ref(s, p, x, M));
      pi = keep - kFdEps;
      const double lm = test::dot(c, forward_ref(s, p, x, M));
      pi = keep;
      fd.push_back((lp - lm) / (2 * kFdEps));
      bw.push_back(grad[static_cast<size_t>(i)]);
    }
    EXPECT_LE(rel_err(bw, fd), 1e-6) << sl.name;
    EXPECT_GT(test::dot(bw, bw), 0.0) << sl.name << ": no gradient reaches it, the check says nothing";
  }
  // Backward accumulates: a second call doubles the gradient.
  VecD twice = grad;
  encoder_backward_ref(s, p.data(), x.data(), M, cache, c.data(), twice.data());
  VecD doubled(grad.size());
  for (size_t i = 0; i < grad.size(); ++i) doubled[i] = 2 * grad[i];
  EXPECT_LE(rel_err(twice, doubled), 1e-14);
}

TEST(EncoderRef, JvpMatchesFiniteDifference) {
  const EncoderShape s = kSmall;
  const int64_t M = kSmallM;
  const VecD p = to_double(init_params(s, 21));
  const VecD x = to_double(random_input(s, M, 22));
  const VecD v = to_double(random_vec(p.size(), 23, 0.1f));
  EncoderCache<double> cache;
  VecD y(static_cast<size_t>(M * s.out())), jv(y.size(), 99.0);  // d_y is overwritten
  encoder_forward_ref(s, p.data(), x.data(), M, cache, y.data());
  encoder_jvp_ref(s, p.data(), x.data(), M, cache, v.data(), jv.data());
  auto y_at = [&](double e) {
    VecD q = p;
    for (size_t i = 0; i < q.size(); ++i) q[i] += e * v[i];
    return forward_ref(s, q, x, M);
  };
  const VecD yp = y_at(kFdEps), ym = y_at(-kFdEps);
  VecD fd(y.size());
  for (size_t i = 0; i < fd.size(); ++i) fd[i] = (yp[i] - ym[i]) / (2 * kFdEps);
  EXPECT_LE(rel_err(jv, fd), 1e-6);
  EXPECT_GT(test::dot(jv, jv), 0.0);
}

// <J v, u> = <v, Jᵀ u>.
TEST(EncoderRef, JvpIsAdjointOfBackward) {
  const EncoderShape s{2, 15, 16, 3, 4, 2, 7, 4, 5};
  const int64_t M = 5;
  const VecD p = to_double(init_params(s, 31));
  const VecD x = to_double(random_input(s, M, 32));
  const VecD v = to_double(random_vec(p.size(), 33));
  const VecD u = to_double(random_vec(static_cast<size_t>(M * s.out()), 34));
  EncoderCache<double> cache;
  VecD y(u.size()), jv(u.size()), jtu(p.size(), 0.0);
  encoder_forward_ref(s, p.data(), x.data(), M, cache, y.data());
  encoder_jvp_ref(s, p.data(), x.data(), M, cache, v.data(), jv.data());
  encoder_backward_ref(s, p.data(), x.data(), M, cache, u.data(), jtu.data());
  const double lhs = test::dot(jv, u), rhs = test::dot(v, jtu);
  EXPECT_LE(std::abs(lhs - rhs) / std::max({std::abs(lhs), std::abs(rhs), 1e-30}), 1e-12) << lhs << " vs " << rhs;
}

// Everything an encoder call produces, in one precision, for comparisons.
template <class Real>
struct EncoderResults {
  std::vector<Real> y, grad, jv;
};

template <class Real>
EncoderResults<Real> run_ref(const EncoderShape& s, const std::vector<Real>& p, const std::vector<Real>& x,
                             const std::vector<Real>& d_y, const std::vector<Real>& v, int64_t M) {
  EncoderResults<Real> res{std::vector<Real>(d_y.size()), std::vector<Real>(p.size(), Real(0)),
                           std::vector<Real>(d_y.size())};
  EncoderCache<Real> cache;
  encoder_forward_ref(s, p.data(), x.data(), M, cache, res.y.data());
  encoder_backward_ref(s, p.data(), x.data(), M, cache, d_y.data(), res.grad.data());
  encoder_jvp_ref(s, p.data(), x.data(), M, cache, v.data(), res.jv.data());
  return res;
}

EncoderResults<float> run_fast(const EncoderShape& s, const VecF& p, const VecF& x, const VecF& d_y, const VecF& v,
                               int64_t M) {
  EncoderResults<float> res{VecF(d_y.size()), VecF(p.size(), 0.0f), VecF(d_y.size())};
  EncoderCache<float> cache;
  encoder_forward(s, p.data(), x.data(), M, cache, res.y.data());
  encoder_backward(s, p.data(), x.data(), M, cache, d_y.data(), res.grad.data());
  encoder_jvp(s, p.data(), x.data(), M, cache, v.data(), res.jv.data());
  return res;
}

void expect_close(const EncoderShape& s, const EncoderResults<float>& got, const EncoderResults<double>& want,
                  double tol) {
  EXPECT_LE(rel_err(got.y, want.y), tol) << "forward";
  EXPECT_LE(rel_err(got.jv, want.jv), tol) << "jvp";
  for (const Slice& sl : slices(s)) {
    EXPECT_LE(rel_err(got.grad.data() + sl.begin, want.grad.data() + sl.begin, static_cast<size_t>(sl.end - sl.begin)),
              tol)
        << "d_" << sl.name;
  }
}

// float32 reference vs float64 reference at the maze size: ≤ 1e-5 (sums of ≤ 560 float products).
TEST(EncoderRef, FloatMatchesDouble) {
  const EncoderShape s{};
  const int64_t M = 3;
  const VecF p = init_params(s, 41);
  const VecF x = random_input(s, M, 42);
  const VecF d_y = random_vec(static_cast<size_t>(M * s.out()), 43);
  const VecF v = random_vec(p.size(), 44);
  const auto want = run_ref(s, to_double(p), to_double(x), to_double(d_y), to_double(v), M);
  expect_close(s, run_ref(s, p, x, d_y, v, M), want, 1e-5);
}

// The fast path vs the float64 reference at the maze size and at sizes that are no multiple of anything:
// stride 1 and 3, one filter, one unit, one step; 7 and 65 steps span several im2col chunks and both
// threads. ≤ 1e-5 norm-wise for forward, JVP and each gradient tensor (observed ≤ 5e-7).
TEST(EncoderFast, MatchesDoubleRefAtAwkwardSizes) {
  const EncoderShape shapes[] = {
      EncoderShape{},                          // the maze: 3×30×40, 16 filters 5×5 stride 2, 256 + 32
      EncoderShape{1, 7, 9, 1, 2, 3, 1, 1, 1},  // f1 1×2×3, f2 1×1×1
      EncoderShape{2, 13, 14, 3, 3, 1, 33, 4, 7},
      EncoderShape{3, 18, 21, 5, 5, 2, 17, 5, 6},
  };
  uint64_t seed = 100;
  for (const EncoderShape& s : shapes) {
    for (int64_t M : {1, 7, 65}) {
      SCOPED_TRACE(testing::Message() << s.channels << "x" << s.height << "x" << s.width << " F=" << s.filters
                                      << " K=" << s.kernel << " S=" << s.stride << " fc=" << s.image_fc << "+"
                                      << s.extra_fc << " M=" << M);
      const VecF p = init_params(s, ++seed);
      const VecF x = random_input(s, M, ++seed);
      const VecF d_y = random_vec(static_cast<size_t>(M * s.out()), ++seed);
      const VecF v = random_vec(p.size(), ++seed);
      const auto want = run_ref(s, to_double(p), to_double(x), to_double(d_y), to_double(v), M);
      expect_close(s, run_fast(s, p, x, d_y, v, M), want, 1e-5);
    }
  }
}

// encoder_backward adds into d_params (which need not start at zero); repeated calls on one cache (whose
// scratch is reused) give the same results bit for bit.
TEST(EncoderFast, BackwardAccumulatesAndRepeats) {
  const EncoderShape s{};
  const int64_t M = 40;
  const VecF p = init_params(s, 81);
  const VecF x = random_input(s, M, 82);
  const VecF d_y = random_vec(static_cast<size_t>(M * s.out()), 83);
  const VecF v = random_vec(p.size(), 84);
  EncoderCache<float> cache;
  VecF y(d_y.size()), jv1(d_y.size()), jv2(d_y.size());
  encoder_forward(s, p.data(), x.data(), M, cache, y.data());
  VecF fresh(p.size(), 0.0f), again(p.size(), 0.0f);
  encoder_backward(s, p.data(), x.data(), M, cache, d_y.data(), fresh.data());
  encoder_jvp(s, p.data(), x.data(), M, cache, v.data(), jv1.data());
  encoder_backward(s, p.data(), x.data(), M, cache, d_y.data(), again.data());
  encoder_jvp(s, p.data(), x.data(), M, cache, v.data(), jv2.data());
  EXPECT_EQ(fresh, again);
  EXPECT_EQ(jv1, jv2);
  const VecF start = random_vec(p.size(), 85);
  VecF acc = start;
  encoder_backward(s, p.data(), x.data(), M, cache, d_y.data(), acc.data());
  for (size_t i = 0; i < acc.size(); ++i) acc[i] -= start[i];
  EXPECT_LE(rel_err(acc, fresh), 1e-5);
}

// Units whose pre-activation is exactly 0 count as inactive (relu'(0) = 0, as torch) on every path: with a
// zero image, conv1 channels with a zero bias and FC units with zero weights and bias sit exactly at 0,
// and no gradient or tangent passes them.
TEST(Encoder, ReluAtZeroIsInactiveOnEveryPath) {
  const EncoderShape s = kSmall;
  const int64_t M = 3, Ni = s.image_fc, out = s.out();
  const EncoderLayout l = encoder_layout(s);
  VecF p = init_params(s, 91);
  const float conv1_bias[] = {0.0f, 0.5f, 0.0f, -0.3f};
  std::copy(conv1_bias, conv1_bias + 4, p.begin() + l.conv1_b);
  std::fill(p.begin() + l.image_fc_w, p.begin() + l.image_fc_w + s.flat(), 0.0f);  // image_fc unit 0
  p[static_cast<size_t>(l.image_fc_b)] = 0.0f;
  std::fill(p.begin() + l.extra_fc_w, p.begin() + l.extra_fc_w + s.extra_in, 0.0f);  // extra_fc unit 0
  p[static_cast<size_t>(l.extra_fc_b)] = 0.0f;
  VecF x = random_input(s, M, 92);
  for (int64_t m = 0; m < M; ++m) std::fill_n(x.begin() + m * s.in(), s.image_size(), 0.0f);
  const VecF ones_y(static_cast<size_t>(M * out), 1.0f), ones_p(p.size(), 1.0f);
  VecF e_bias(p.size(), 0.0f);  // direction: conv1.bias of channel 0 alone
  e_bias[static_cast<size_t>(l.conv1_b)] = 1.0f;

  auto check = [&](const auto& res, const auto& jv_bias) {
    for (int64_t m = 0; m < M; ++m) {
      EXPECT_EQ(res.y[m * out], 0) << "m=" << m;
      EXPECT_EQ(res.y[m * out + Ni], 0) << "m=" << m;
      EXPECT_EQ(res.jv[m * out], 0) << "m=" << m;
      EXPECT_EQ(res.jv[m * out + Ni], 0) << "m=" << m;
    }
    EXPECT_EQ(res.grad[l.conv1_b + 0], 0);
    EXPECT_EQ(res.grad[l.conv1_b + 2], 0);
    EXPECT_NE(res.grad[l.conv1_b + 1], 0);
    for (int64_t i = 0; i < s.flat(); ++i) EXPECT_EQ(res.grad[l.image_fc_w + i], 0);
    EXPECT_EQ(res.grad[l.image_fc_b], 0);
    for (int64_t i = 0; i < s.extra_in; ++i) EXPECT_EQ(res.grad[l.extra_fc_w + i], 0);
    EXPECT_EQ(res.grad[l.extra_fc_b], 0);
    for (const auto& t : jv_bias) EXPECT_EQ(t, 0);
  };
  const VecD pd = to_double(p), xd = to_double(x);
  const auto ref = run_ref(s, pd, xd, to_double(ones_y), to_double(ones_p), M);
  const auto ref_bias = run_ref(s, pd, xd, to_double(ones_y), to_double(e_bias), M);
  const auto fast = run_fast(s, p, x, ones_y, ones_p, M);
  const auto fast_bias = run_fast(s, p, x, ones_y, e_bias, M);
  {
    SCOPED_TRACE("float64 reference");
    check(ref, ref_bias.jv);
  }
  {
    SCOPED_TRACE("fast");
    check(fast, fast_bias.jv);
  }
  expect_close(s, fast, ref, 1e-5);
}

TEST(Encoder, LayoutAndInit) {
  const EncoderShape s{};
  EXPECT_EQ(s.h1(), 13);
  EXPECT_EQ(s.w1(), 18);
  EXPECT_EQ(s.h2(), 5);
  EXPECT_EQ(s.w2(), 7);
  EXPECT_EQ(s.flat(), 560);
  EXPECT_EQ(s.in(), 3 * 30 * 40 + 5);
  EXPECT_EQ(s.out(), 288);
  const EncoderLayout l = encoder_layout(s);
  EXPECT_EQ(l.conv1_w, 0);
  EXPECT_EQ(l.conv1_b, 16 * 3 * 25);
  EXPECT_EQ(l.conv2_w, l.conv1_b + 16);
  EXPECT_EQ(l.conv2_b, l.conv2_w + 16 * 16 * 25);
  EXPECT_EQ(l.image_fc_w, l.conv2_b + 16);
  EXPECT_EQ(l.image_fc_b, l.image_fc_w + 256 * 560);
  EXPECT_EQ(l.extra_fc_w, l.image_fc_b + 256);
  EXPECT_EQ(l.extra_fc_b, l.extra_fc_w + 32 * 5);
  EXPECT_EQ(l.total, 151440);

  VecF a(static_cast<size_t>(l.total)), b(a.size()), c(a.size());
  encoder_init(s, 5, 0, a.data());
  encoder_init(s, 5, 0, b.data());
  encoder_init(s, 5, 1, c.data());
  EXPECT_EQ(a, b);  // deterministic
  EXPECT_NE(a, c);  // `which` gives another stream
  // Each tensor (weights and bias) within its torch bound 1/sqrt(fan_in), and nearly filling it.
  for (const auto& [begin, end, fan_in] :
       {std::tuple{l.conv1_w, l.conv2_w, 75}, std::tuple{l.conv2_w, l.image_fc_w, 400},
        std::tuple{l.image_fc_w, l.extra_fc_w, 560}, std::tuple{l.extra_fc_w, l.total, 5}}) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    double biggest = 0;
    for (int64_t i = begin; i < end; ++i) biggest = std::max(biggest, std::abs(double{a[static_cast<size_t>(i)]}));
    EXPECT_LE(biggest, bound) << "fan_in " << fan_in;
    EXPECT_GT(biggest, 0.9 * bound) << "fan_in " << fan_in;
  }
  EXPECT_THROW(encoder_layout(EncoderShape{3, 12, 40, 16, 5, 2, 256, 5, 32}), Error);  // h1 = 4 < 5
  EXPECT_THROW(encoder_layout(EncoderShape{3, 30, 40, 16, 5, 2, 256, 0, 32}), Error);
}

// ---- the chain encoder -> GRU (the maze policy): x_t -> y_t = enc(x_t) -> GRU ------------------------

// Parameters θ = [encoder's, GRU's] and the GRU's input y = encoder(x), T steps × B trials time-major.
struct Chain {
  EncoderShape enc;
  GruShape gru;
  int64_t T, B;
  int64_t enc_total() const { return encoder_layout(enc).total; }
  int64_t total() const { return enc_total() + gru_layout(gru).total; }
};

VecF chain_params(const Chain& ch, uint64_t seed) {
  VecF p(static_cast<size_t>(ch.total()));
  encoder_init(ch.enc, seed, 0, p.data());
  gru_init(ch.gru, seed, 0, 1.0f, p.data() + ch.enc_total());
  return p;
}

// out [T, B, O] of the chain, and (with v) its JVP along v = [v_enc, v_gru]: the encoder's JVP is the
// GRU's input tangent. Fast path for float, references otherwise.
template <class Real>
std::vector<Real> chain_run(const Chain& ch, const std::vector<Real>& p, const std::vector<Real>& x,
                            const std::vector<Real>* v) {
  const int64_t M = ch.T * ch.B, E = ch.enc_total();
  std::vector<Real> y(static_cast<size_t>(M * ch.enc.out())), out(static_cast<size_t>(M * ch.gru.out));
  EncoderCache<Real> ec;
  GruCache<Real> gc;
  std::vector<Real> ty(y.size()), tout(out.size());
  if constexpr (std::is_same_v<Real, float>) {
    encoder_forward(ch.enc, p.data(), x.data(), M, ec, y.data());
    gru_forward(ch.gru, p.data() + E, y.data(), ch.T, ch.B, gc, out.data());
    if (!v) return out;
    encoder_jvp(ch.enc, p.data(), x.data(), M, ec, v->data(), ty.data());
    gru_jvp(ch.gru, p.data() + E, y.data(), ch.T, ch.B, gc, v->data() + E, tout.data(), ty.data());
  } else {
    encoder_forward_ref(ch.enc, p.data(), x.data(), M, ec, y.data());
    gru_forward_ref(ch.gru, p.data() + E, y.data(), ch.T, ch.B, gc, out.data());
    if (!v) return out;
    encoder_jvp_ref(ch.enc, p.data(), x.data(), M, ec, v->data(), ty.data());
    gru_jvp_ref(ch.gru, p.data() + E, y.data(), ch.T, ch.B, gc, v->data() + E, tout.data(), ty.data());
  }
  return tout;
}

TEST(EncoderGru, ChainJvpMatchesFiniteDifference) {
  const Chain ch{kSmall, GruShape{kSmall.out(), 5, 3}, 4, 3};
  const VecD p = to_double(chain_params(ch, 51));
  const VecD x = to_double(random_input(ch.enc, ch.T * ch.B, 52));
  const VecD v = to_double(random_vec(p.size(), 53, 0.1f));
  const VecD jv = chain_run(ch, p, x, &v);
  auto out_at = [&](double e) {
    VecD q = p;
    for (size_t i = 0; i < q.size(); ++i) q[i] += e * v[i];
    return chain_run<double>(ch, q, x, nullptr);
  };
  const VecD op = out_at(kFdEps), om = out_at(-kFdEps);
  VecD fd(jv.size());
  for (size_t i = 0; i < fd.size(); ++i) fd[i] = (op[i] - om[i]) / (2 * kFdEps);
  EXPECT_LE(rel_err(jv, fd), 1e-6);
  // Without the input tangent the encoder's part of v would be lost: the check above is not vacuous.
  VecD v_gru_only = v;
  std::fill(v_gru_only.begin(), v_gru_only.begin() + ch.enc_total(), 0.0);
  EXPECT_GT(rel_err(chain_run(ch, p, x, &v_gru_only), fd), 1e-2);
}

// The chain on the fast path (float) vs the float64 references at the maze size: ≤ 1e-4.
TEST(EncoderGru, FastChainMatchesDoubleRef) {
  const Chain ch{EncoderShape{}, GruShape{EncoderShape{}.out(), 33, 3}, 5, 4};
  const VecF p = chain_params(ch, 61);
  const VecF x = random_input(ch.enc, ch.T * ch.B, 62);
  const VecF v = random_vec(p.size(), 63);
  const VecD vd = to_double(v);
  EXPECT_LE(rel_err(chain_run(ch, p, x, &v), chain_run(ch, to_double(p), to_double(x), &vd)), 1e-4);
}

}  // namespace
}  // namespace rl2
