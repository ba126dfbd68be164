// GRU checks (include/rl2/policy/gru.hpp): the float64 reference against central finite differences
// (every parameter and every input), its JVP (with and without an input tangent dx) against finite
// differences and against backward (adjoint identities, d_x included), the float32 reference and the
// fast OpenBLAS path against the float64 reference at awkward sizes, the one-step form against the sequence forward, and the hidden-state carry. Fixed seeds.
// Relative errors are norm-wise, ||a − b||₂ / max(||a||₂, ||b||₂, tiny), unless a test says per element.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "numeric_test_util.hpp"
#include "rl2/policy/gru.hpp"

namespace rl2 {
namespace {

using test::rel_err;
using test::to_double;
using test::VecD;
using test::VecF;
using test::random_vec;

// Parameters from gru_init with a full-size head (head_scale 1), so every tensor matters to the output.
VecF init_params(const GruShape& s, uint64_t seed) {
  VecF p(static_cast<size_t>(gru_layout(s).total));
  gru_init(s, seed, 0, 1.0f, p.data());
  return p;
}

// The six tensors of a layout as (name, begin, end), for per-tensor comparisons.
struct Slice {
  const char* name;
  int64_t begin, end;
};
std::vector<Slice> slices(const GruShape& s) {
  const GruLayout l = gru_layout(s);
  return {{"weight_ih", l.weight_ih, l.weight_hh}, {"weight_hh", l.weight_hh, l.bias_ih},
          {"bias_ih", l.bias_ih, l.bias_hh},       {"bias_hh", l.bias_hh, l.head_w},
          {"head_w", l.head_w, l.head_b},          {"head_b", l.head_b, l.total}};
}

// L = Σ c ⊙ out in float64.
double loss_ref(const GruShape& s, const VecD& p, const VecD& x, int64_t T, int64_t B, const VecD& c) {
  GruCache<double> cache;
  VecD out(static_cast<size_t>(T * B * s.out));
  gru_forward_ref(s, p.data(), x.data(), T, B, cache, out.data());
  double l = 0;
  for (size_t i = 0; i < out.size(); ++i) l += c[i] * out[i];
  return l;
}

VecD forward_ref(const GruShape& s, const VecD& p, const VecD& x, int64_t T, int64_t B) {
  GruCache<double> cache;
  VecD out(static_cast<size_t>(T * B * s.out));
  gru_forward_ref(s, p.data(), x.data(), T, B, cache, out.data());
  return out;
}

double per_element_err(double a, double b) { return std::abs(a - b) / std::max({std::abs(a), std::abs(b), 1e-8}); }

constexpr GruShape kSmall{3, 4, 2};
constexpr int64_t kSmallT = 5, kSmallB = 3;
// dL/dθ by the fourth-order central difference (−f(2ε) + 8f(ε) − 8f(−ε) + f(−2ε)) / 12ε with ε = 1e-3:
// truncation ~ε⁴ ≈ 1e-12 and rounding ~1e-16/ε ≈ 1e-13, so even gradient elements of 1e-5 are checked to
// 1e-6 relative. (The two-point formula with ε = 1e-6 has rounding noise ~1e-10 and fails that on them.)
constexpr double kEps = 1e-3;
template <class F>
double central_diff(F&& f) {
  return (-f(2 * kEps) + 8 * f(kEps) - 8 * f(-kEps) + f(-2 * kEps)) / (12 * kEps);
}

// Every element of every parameter tensor, per element, against central differences of L.
TEST(GruRef, GradientMatchesFiniteDifference) {
  const GruShape s = kSmall;
  const int64_t T = kSmallT, B = kSmallB;
  VecD p = to_double(init_params(s, 11));
  const VecD x = to_double(random_vec(static_cast<size_t>(T * B * s.input), 12));
  const VecD c = to_double(random_vec(static_cast<size_t>(T * B * s.out), 13));
  GruCache<double> cache;
  VecD out(c.size());
  gru_forward_ref(s, p.data(), x.data(), T, B, cache, out.data());
  VecD grad(p.size(), 0.0);
  gru_backward_ref(s, p.data(), x.data(), T, B, cache, c.data(), grad.data(), static_cast<double*>(nullptr));
  for (const Slice& sl : slices(s)) {
    double worst = 0;
    for (int64_t i = sl.begin; i < sl.end; ++i) {
      double& pi = p[static_cast<size_t>(i)];
      const double keep = pi;
      const double fd = central_diff([&](double e) {
        pi = keep + e;
        return loss_ref(s, p, x, T, B, c);
      });
      pi = keep;
      worst = std::max(worst, per_element_err(fd, grad[static_cast<size_t>(i)]));
    }
    EXPECT_LE(worst, 1e-6) << sl.name;
  }
  // Backward accumulates: a second call doubles the gradient.
  VecD twice = grad;
  gru_backward_ref(s, p.data(), x.data(), T, B, cache, c.data(), twice.data(), static_cast<double*>(nullptr));
  VecD doubled(grad.size());
  for (size_t i = 0; i < grad.size(); ++i) doubled[i] = 2 * grad[i];
  EXPECT_LE(rel_err(twice, doubled), 1e-14);
}

// Every input element, per element, against central differences of L.
TEST(GruRef, InputGradientMatchesFiniteDifference) {
  const GruShape s = kSmall;
  const int64_t T = kSmallT, B = kSmallB;
  const VecD p = to_double(init_params(s, 21));
  VecD x = to_double(random_vec(static_cast<size_t>(T * B * s.input), 22));
  const VecD c = to_double(random_vec(static_cast<size_t>(T * B * s.out), 23));
  GruCache<double> cache;
  VecD out(c.size());
  gru_forward_ref(s, p.data(), x.data(), T, B, cache, out.data());
  VecD grad(p.size(), 0.0);
  VecD dx(x.size(), 99.0);  // overwritten, not accumulated
  gru_backward_ref(s, p.data(), x.data(), T, B, cache, c.data(), grad.data(), dx.data());
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    const double fd = central_diff([&](double e) {
      x[i] = keep + e;
      return loss_ref(s, p, x, T, B, c);
    });
    x[i] = keep;
    worst = std::max(worst, per_element_err(fd, dx[i]));
  }
  EXPECT_LE(worst, 1e-6);
}

TEST(GruRef, JvpMatchesFiniteDifference) {
  const GruShape s = kSmall;
  const int64_t T = kSmallT, B = kSmallB;
  const VecD p = to_double(init_params(s, 31));
  const VecD x = to_double(random_vec(static_cast<size_t>(T * B * s.input), 32));
  const VecD v = to_double(random_vec(p.size(), 33));
  GruCache<double> cache;
  VecD out(static_cast<size_t>(T * B * s.out)), jv(out.size());
  gru_forward_ref(s, p.data(), x.data(), T, B, cache, out.data());
  gru_jvp_ref(s, p.data(), x.data(), T, B, cache, v.data(), jv.data());
  auto out_at = [&](double e) {  // out(p + e v)
    VecD q = p;
    for (size_t i = 0; i < q.size(); ++i) q[i] += e * v[i];
    return forward_ref(s, q, x, T, B);
  };
  const VecD o2 = out_at(2 * kEps), o1 = out_at(kEps), m1 = out_at(-kEps), m2 = out_at(-2 * kEps);
  VecD fd(out.size());
  for (size_t i = 0; i < fd.size(); ++i) fd[i] = (-o2[i] + 8 * o1[i] - 8 * m1[i] + m2[i]) / (12 * kEps);
  EXPECT_LE(rel_err(jv, fd), 1e-6);
  double worst = 0;  // per element too, with the 1e-8 floor
  for (size_t i = 0; i < fd.size(); ++i) worst = std::max(worst, per_element_err(jv[i], fd[i]));
  EXPECT_LE(worst, 1e-6);
}

// The input tangent: gru_jvp_ref along (v, dx) against central differences of out(p + e v, x + e dx).
TEST(GruRef, JvpWithInputTangentMatchesFiniteDifference) {
  const GruShape s = kSmall;
  const int64_t T = kSmallT, B = kSmallB;
  const VecD p = to_double(init_params(s, 35));
  const VecD x = to_double(random_vec(static_cast<size_t>(T * B * s.input), 36));
  const VecD v = to_double(random_vec(p.size(), 37));
  const VecD dx = to_double(random_vec(x.size(), 38));
  GruCache<double> cache;
  VecD out(static_cast<size_t>(T * B * s.out)), jv(out.size());
  gru_forward_ref(s, p.data(), x.data(), T, B, cache, out.data());
  gru_jvp_ref(s, p.data(), x.data(), T, B, cache, v.data(), jv.data(), dx.data());
  auto out_at = [&](double e) {  // out(p + e v, x + e dx)
    VecD q = p, xe = x;
    for (size_t i = 0; i < q.size(); ++i) q[i] += e * v[i];
    for (size_t i = 0; i < xe.size(); ++i) xe[i] += e * dx[i];
    return forward_ref(s, q, xe, T, B);
  };
  const VecD o2 = out_at(2 * kEps), o1 = out_at(kEps), m1 = out_at(-kEps), m2 = out_at(-2 * kEps);
  VecD fd(out.size());
  for (size_t i = 0; i < fd.size(); ++i) fd[i] = (-o2[i] + 8 * o1[i] - 8 * m1[i] + m2[i]) / (12 * kEps);
  EXPECT_LE(rel_err(jv, fd), 1e-6);
  double worst = 0;
  for (size_t i = 0; i < fd.size(); ++i) worst = std::max(worst, per_element_err(jv[i], fd[i]));
  EXPECT_LE(worst, 1e-6);
}

// <J v, u> = <v, Jᵀ u>: forward mode and reverse mode describe the same Jacobian.
TEST(GruRef, JvpIsAdjointOfBackward) {
  const GruShape s{5, 7, 3};
  const int64_t T = 6, B = 4;
  const VecD p = to_double(init_params(s, 41));
  const VecD x = to_double(random_vec(static_cast<size_t>(T * B * s.input), 42));
  const VecD v = to_double(random_vec(p.size(), 43));
  const VecD u = to_double(random_vec(static_cast<size_t>(T * B * s.out), 44));
  GruCache<double> cache;
  VecD out(u.size()), jv(u.size());
  gru_forward_ref(s, p.data(), x.data(), T, B, cache, out.data());
  gru_jvp_ref(s, p.data(), x.data(), T, B, cache, v.data(), jv.data());
  VecD jtu(p.size(), 0.0);
  gru_backward_ref(s, p.data(), x.data(), T, B, cache, u.data(), jtu.data(), static_cast<double*>(nullptr));
  double lhs = 0, rhs = 0;
  for (size_t i = 0; i < u.size(); ++i) lhs += jv[i] * u[i];
  for (size_t i = 0; i < v.size(); ++i) rhs += v[i] * jtu[i];
  EXPECT_LE(std::abs(lhs - rhs) / std::max({std::abs(lhs), std::abs(rhs), 1e-30}), 1e-10) << lhs << " vs " << rhs;
}

// The same identity with the input moving too: <J (v, dx), u> = <v, J_θᵀ u> + <dx, J_xᵀ u>, which ties
// gru_jvp_ref's dx to gru_backward_ref's d_x.
TEST(GruRef, InputTangentIsAdjointOfInputGradient) {
  const GruShape s{5, 7, 3};
  const int64_t T = 6, B = 4;
  const VecD p = to_double(init_params(s, 45));
  const VecD x = to_double(random_vec(static_cast<size_t>(T * B * s.input), 46));
  const VecD v = to_double(random_vec(p.size(), 47));
  const VecD dx = to_double(random_vec(x.size(), 48));
  const VecD u = to_double(random_vec(static_cast<size_t>(T * B * s.out), 49));
  GruCache<double> cache;
  VecD out(u.size()), jv(u.size());
  gru_forward_ref(s, p.data(), x.data(), T, B, cache, out.data());
  gru_jvp_ref(s, p.data(), x.data(), T, B, cache, v.data(), jv.data(), dx.data());
  VecD jtu(p.size(), 0.0), jxtu(x.size());
  gru_backward_ref(s, p.data(), x.data(), T, B, cache, u.data(), jtu.data(), jxtu.data());
  const double lhs = test::dot(jv, u), rhs = test::dot(v, jtu) + test::dot(dx, jxtu);
  EXPECT_LE(std::abs(lhs - rhs) / std::max({std::abs(lhs), std::abs(rhs), 1e-30}), 1e-10) << lhs << " vs " << rhs;
}

// dx = nullptr is the old behaviour, and a dx of zeros adds exact zeros: both bit for bit, both paths.
TEST(Gru, ZeroInputTangentIsBitIdentical) {
  const GruShape s{6, 33, 4};
  const int64_t T = 5, B = 9;
  const VecF p = init_params(s, 91);
  const VecF x = random_vec(static_cast<size_t>(T * B * s.input), 92);
  const VecF v = random_vec(p.size(), 93);
  const VecF zeros(x.size(), 0.0f);
  for (bool fast : {false, true}) {
    SCOPED_TRACE(fast ? "fast" : "ref");
    GruCache<float> cache;
    VecF out(static_cast<size_t>(T * B * s.out)), plain(out.size()), with_null(out.size()), with_zeros(out.size());
    if (fast) {
      gru_forward(s, p.data(), x.data(), T, B, cache, out.data());
      gru_jvp(s, p.data(), x.data(), T, B, cache, v.data(), plain.data());
      gru_jvp(s, p.data(), x.data(), T, B, cache, v.data(), with_null.data(), nullptr);
      gru_jvp(s, p.data(), x.data(), T, B, cache, v.data(), with_zeros.data(), zeros.data());
    } else {
      gru_forward_ref(s, p.data(), x.data(), T, B, cache, out.data());
      gru_jvp_ref(s, p.data(), x.data(), T, B, cache, v.data(), plain.data());
      gru_jvp_ref(s, p.data(), x.data(), T, B, cache, v.data(), with_null.data(), static_cast<const float*>(nullptr));
      gru_jvp_ref(s, p.data(), x.data(), T, B, cache, v.data(), with_zeros.data(), zeros.data());
    }
    EXPECT_EQ(plain, with_null);
    EXPECT_EQ(plain, with_zeros);
  }
}

// Everything a GRU call produces, in one precision, for comparisons.
template <class Real>
struct GruResults {
  std::vector<Real> out, grad, dx, jv, jv_dx, h_last;  // jv_dx: the JVP along (v, tx)
};

template <class Real>
GruResults<Real> run_ref(const GruShape& s, const std::vector<Real>& p, const std::vector<Real>& x,
                         const std::vector<Real>& d_out, const std::vector<Real>& v, const std::vector<Real>& tx,
                         int64_t T, int64_t B) {
  GruResults<Real> res;
  GruCache<Real> cache;
  res.out.resize(d_out.size());
  res.jv.resize(d_out.size());
  res.jv_dx.resize(d_out.size());
  res.grad.assign(p.size(), Real(0));
  res.dx.resize(x.size());
  gru_forward_ref(s, p.data(), x.data(), T, B, cache, res.out.data());
  gru_backward_ref(s, p.data(), x.data(), T, B, cache, d_out.data(), res.grad.data(), res.dx.data());
  gru_jvp_ref(s, p.data(), x.data(), T, B, cache, v.data(), res.jv.data());
  gru_jvp_ref(s, p.data(), x.data(), T, B, cache, v.data(), res.jv_dx.data(), tx.data());
  res.h_last.assign(cache.h.end() - B * s.hidden, cache.h.end());
  return res;
}

GruResults<float> run_fast(const GruShape& s, const VecF& p, const VecF& x, const VecF& d_out, const VecF& v,
                           const VecF& tx, int64_t T, int64_t B) {
  GruResults<float> res;
  GruCache<float> cache;
  res.out.resize(d_out.size());
  res.jv.resize(d_out.size());
  res.jv_dx.resize(d_out.size());
  res.grad.assign(p.size(), 0.0f);
  res.dx.resize(x.size());
  gru_forward(s, p.data(), x.data(), T, B, cache, res.out.data());
  gru_backward(s, p.data(), x.data(), T, B, cache, d_out.data(), res.grad.data(), res.dx.data());
  gru_jvp(s, p.data(), x.data(), T, B, cache, v.data(), res.jv.data());
  gru_jvp(s, p.data(), x.data(), T, B, cache, v.data(), res.jv_dx.data(), tx.data());
  res.h_last.assign(cache.h.end() - B * s.hidden, cache.h.end());
  return res;
}

// Compares a float result against the float64 reference, norm-wise, per output and per gradient tensor.
void expect_close(const GruShape& s, const GruResults<float>& got, const GruResults<double>& want, double tol) {
  EXPECT_LE(rel_err(got.out, want.out), tol) << "forward";
  EXPECT_LE(rel_err(got.h_last, want.h_last), tol) << "h[T]";
  EXPECT_LE(rel_err(got.dx, want.dx), tol) << "d_x";
  EXPECT_LE(rel_err(got.jv, want.jv), tol) << "jvp";
  EXPECT_LE(rel_err(got.jv_dx, want.jv_dx), tol) << "jvp with dx";
  for (const Slice& sl : slices(s)) {
    EXPECT_LE(rel_err(got.grad.data() + sl.begin, want.grad.data() + sl.begin, static_cast<size_t>(sl.end - sl.begin)),
              tol)
        << "d_" << sl.name;
  }
}

// float32 reference vs float64 reference: ≤ 1e-4 norm-wise (float rounding ~6e-8 grows with the depth
// of the sums and the T steps of recurrence; 1e-4 leaves a wide margin and still catches any real bug).
TEST(GruRef, FloatMatchesDouble) {
  const GruShape s{13, 33, 5};
  const int64_t T = 9, B = 7;
  const VecF p = init_params(s, 51);
  const VecF x = random_vec(static_cast<size_t>(T * B * s.input), 52);
  const VecF d_out = random_vec(static_cast<size_t>(T * B * s.out), 53);
  const VecF v = random_vec(p.size(), 54);
  const VecF tx = random_vec(x.size(), 55);
  const auto want = run_ref(s, to_double(p), to_double(x), to_double(d_out), to_double(v), to_double(tx), T, B);
  const auto got = run_ref(s, p, x, d_out, v, tx, T, B);
  SCOPED_TRACE("float32 reference");
  expect_close(s, got, want, 1e-4);
}

// The fast path (float, OpenBLAS) vs the float64 reference at sizes that are no multiple of any block:
// ≤ 1e-4 norm-wise for forward, h[T], backward (each tensor and d_x), JVP and one step.
TEST(GruFast, MatchesDoubleRefAtAwkwardSizes) {
  uint64_t seed = 100;
  for (int64_t H : {4, 33, 256}) {
    for (int32_t I : {1, 13}) {
      for (int64_t B : {1, 7, 65}) {
        for (int64_t T : {1, 9}) {
          const GruShape s{I, static_cast<int32_t>(H), H == 33 ? 1 : 5};
          SCOPED_TRACE(testing::Message() << "I=" << I << " H=" << H << " O=" << s.out << " T=" << T << " B=" << B);
          const VecF p = init_params(s, ++seed);
          const VecF x = random_vec(static_cast<size_t>(T * B * I), ++seed);
          const VecF d_out = random_vec(static_cast<size_t>(T * B * s.out), ++seed);
          const VecF v = random_vec(p.size(), ++seed);
          const VecF tx = random_vec(x.size(), seed + 5000);
          const auto want = run_ref(s, to_double(p), to_double(x), to_double(d_out), to_double(v), to_double(tx), T, B);
          expect_close(s, run_fast(s, p, x, d_out, v, tx, T, B), want, 1e-4);

          const VecF h = random_vec(static_cast<size_t>(B * H), ++seed);
          VecF h_next(h.size()), out(static_cast<size_t>(B * s.out));
          gru_step(s, p.data(), x.data(), h.data(), B, h_next.data(), out.data());
          VecD h_next_d(h.size()), out_d(out.size());
          gru_step_ref(s, to_double(p).data(), to_double(x).data(), to_double(h).data(), B, h_next_d.data(),
                       out_d.data());
          EXPECT_LE(rel_err(h_next, h_next_d), 1e-4) << "step h";
          EXPECT_LE(rel_err(out, out_d), 1e-4) << "step out";
        }
      }
    }
  }
}

// gru_backward adds into d_params (which need not start at zero) and overwrites d_x; 2 slabs of trials.
TEST(GruFast, BackwardAccumulatesAndOverwritesDx) {
  const GruShape s{5, 256, 3};
  const int64_t T = 4, B = 70;
  const VecF p = init_params(s, 81);
  const VecF x = random_vec(static_cast<size_t>(T * B * s.input), 82);
  const VecF d_out = random_vec(static_cast<size_t>(T * B * s.out), 83);
  GruCache<float> cache;
  VecF out(d_out.size());
  gru_forward(s, p.data(), x.data(), T, B, cache, out.data());
  VecF fresh(p.size(), 0.0f), dx_fresh(x.size());
  gru_backward(s, p.data(), x.data(), T, B, cache, d_out.data(), fresh.data(), dx_fresh.data());
  const VecF start = random_vec(p.size(), 84);
  VecF acc = start, dx(x.size(), 123.0f);
  gru_backward(s, p.data(), x.data(), T, B, cache, d_out.data(), acc.data(), dx.data());
  for (size_t i = 0; i < acc.size(); ++i) acc[i] -= start[i];
  EXPECT_LE(rel_err(acc, fresh), 1e-5);
  EXPECT_EQ(dx, dx_fresh);
}

// Rolling the one-step form T times from h = 0 gives the sequence forward: bit for bit for the reference
// (same loops), and within 1e-6 norm-wise for the fast path (BLAS may block [B, ·] and [T·B, ·] differently).
TEST(Gru, StepRepeatedEqualsSequence) {
  const GruShape s{6, 33, 4};
  const int64_t T = 7, B = 5, H = s.hidden, O = s.out;
  const VecF p = init_params(s, 61);
  const VecF x = random_vec(static_cast<size_t>(T * B * s.input), 62);
  for (bool fast : {false, true}) {
    SCOPED_TRACE(fast ? "fast" : "ref");
    GruCache<float> cache;
    VecF seq(static_cast<size_t>(T * B * O));
    if (fast) {
      gru_forward(s, p.data(), x.data(), T, B, cache, seq.data());
    } else {
      gru_forward_ref(s, p.data(), x.data(), T, B, cache, seq.data());
    }
    VecF h(static_cast<size_t>(B * H), 0.0f), h_next(h.size()), out(static_cast<size_t>(B * O));
    for (int64_t t = 0; t < T; ++t) {
      const float* xt = x.data() + t * B * s.input;
      if (fast) {
        gru_step(s, p.data(), xt, h.data(), B, h_next.data(), out.data());
      } else {
        gru_step_ref(s, p.data(), xt, h.data(), B, h_next.data(), out.data());
      }
      std::swap(h, h_next);
      const float* seq_t = seq.data() + t * B * O;
      const float* h_t = cache.h.data() + (t + 1) * B * H;
      if (fast) {
        EXPECT_LE(rel_err(out.data(), seq_t, out.size()), 1e-6) << "t=" << t;
        EXPECT_LE(rel_err(h.data(), h_t, h.size()), 1e-6) << "t=" << t;
      } else {
        EXPECT_TRUE(std::equal(out.begin(), out.end(), seq_t)) << "t=" << t;
        EXPECT_TRUE(std::equal(h.begin(), h.end(), h_t)) << "t=" << t;
      }
    }
  }
}

// h[0] is zero whatever the cache held, and changing one trial's input at step 0 changes that trial's
// output at the last step (the state is carried through all T steps) and no other trial's.
TEST(Gru, HiddenStateCarriesAndStartsAtZero) {
  const GruShape s{4, 16, 3};
  const int64_t T = 12, B = 3, O = s.out;
  const VecF p = init_params(s, 71);
  VecF x = random_vec(static_cast<size_t>(T * B * s.input), 72);
  for (bool fast : {false, true}) {
    SCOPED_TRACE(fast ? "fast" : "ref");
    auto forward = [&](const VecF& xs, GruCache<float>& cache) {
      VecF out(static_cast<size_t>(T * B * O));
      if (fast) {
        gru_forward(s, p.data(), xs.data(), T, B, cache, out.data());
      } else {
        gru_forward_ref(s, p.data(), xs.data(), T, B, cache, out.data());
      }
      return out;
    };
    GruCache<float> cache;
    cache.h.assign(static_cast<size_t>((T + 1) * B * s.hidden), std::numeric_limits<float>::quiet_NaN());
    const VecF base = forward(x, cache);
    for (int64_t i = 0; i < B * s.hidden; ++i) EXPECT_EQ(cache.h[static_cast<size_t>(i)], 0.0f);
    VecF x2 = x;
    for (int32_t i = 0; i < s.input; ++i) x2[static_cast<size_t>(1 * s.input + i)] += 0.5f;  // trial 1, step 0
    GruCache<float> cache2;
    const VecF changed = forward(x2, cache2);
    auto last = [&](const VecF& out, int64_t trial, int64_t o) {  // out at the last step
      return out[static_cast<size_t>(((T - 1) * B + trial) * O + o)];
    };
    double diff1 = 0;
    for (int64_t o = 0; o < O; ++o) {
      diff1 += std::abs(last(changed, 1, o) - last(base, 1, o));
      EXPECT_EQ(last(changed, 0, o), last(base, 0, o));
      EXPECT_EQ(last(changed, 2, o), last(base, 2, o));
    }
    EXPECT_GT(diff1, 1e-6);
  }
}

TEST(Gru, LayoutAndInit) {
  const GruShape s{5, 8, 3};
  const GruLayout l = gru_layout(s);
  EXPECT_EQ(l.weight_ih, 0);
  EXPECT_EQ(l.weight_hh, 24 * 5);
  EXPECT_EQ(l.bias_ih, 24 * 5 + 24 * 8);
  EXPECT_EQ(l.bias_hh, l.bias_ih + 24);
  EXPECT_EQ(l.head_w, l.bias_hh + 24);
  EXPECT_EQ(l.head_b, l.head_w + 3 * 8);
  EXPECT_EQ(l.total, l.head_b + 3);

  VecF a(static_cast<size_t>(l.total)), b(a.size()), c(a.size());
  gru_init(s, 5, 0, 0.01f, a.data());
  gru_init(s, 5, 0, 0.01f, b.data());
  gru_init(s, 5, 1, 0.01f, c.data());
  EXPECT_EQ(a, b);  // deterministic
  EXPECT_NE(a, c);  // `which` gives another stream
  const float bound = 1.0f / std::sqrt(8.0f);
  float max_gru = 0, max_head = 0;
  for (int64_t i = 0; i < l.head_w; ++i) max_gru = std::max(max_gru, std::abs(a[static_cast<size_t>(i)]));
  for (int64_t i = l.head_w; i < l.head_b; ++i) max_head = std::max(max_head, std::abs(a[static_cast<size_t>(i)]));
  EXPECT_LE(max_gru, bound);
  EXPECT_GT(max_gru, 0.5f * bound);
  EXPECT_LE(max_head, 0.01f * bound);
  EXPECT_GT(max_head, 0.0f);
  for (int64_t i = l.head_b; i < l.total; ++i) EXPECT_EQ(a[static_cast<size_t>(i)], 0.0f);
}

}  // namespace
}  // namespace rl2
