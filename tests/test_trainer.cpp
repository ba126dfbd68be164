// The RL² trainer on the CPU backend: conjugate gradient, the exact Fisher-vector product against a
// float64 reference (itself checked against a finite-difference Hessian of the mean KL), the
// finite-difference Fisher product (the CUDA backend's) against the exact one, the TRPO line search's KL
// limit, the non-finite guard, rollout/training parity, and resume == uninterrupted run. The policy
// objective is objective.hpp's PolicyObjective on the CPU backend (objective_test_util.hpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <tuple>
#include <utility>
#include <vector>

#include "numeric_test_util.hpp"
#include "objective_test_util.hpp"
#include "rl2/algo/adam.hpp"
#include "rl2/algo/cg.hpp"
#include "rl2/algo/gae.hpp"
#include "rl2/algo/minibatch.hpp"
#include "rl2/algo/ppo.hpp"
#include "rl2/algo/trpo.hpp"
#include "rl2/core/rng.hpp"
#include "rl2/policy/gru.hpp"
#include "rl2/train/backend.hpp"
#include "rl2/train/objective.hpp"
#include "rl2/train/run.hpp"

namespace fs = std::filesystem;

namespace rl2 {
namespace {

using test::CpuObjective;

double rel_err(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

std::vector<float> uniform_vec(size_t n, uint64_t trial, float scale) {
  RandomStream rs(77, trial, 0, Purpose::kTask);
  std::vector<float> v(n);
  for (auto& x : v) x = scale * (2.0f * rs.uniform() - 1.0f);
  return v;
}

// A random SPD system A = Q^T Q + I (n = 24): CG reaches the direct solution.
TEST(Trainer, ConjugateGradientSolvesSpdSystem) {
  const int n = 24;
  const std::vector<float> q = uniform_vec(n * n, 1, 1.0f), bf = uniform_vec(n, 2, 1.0f);
  std::vector<double> A(n * n, 0.0);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      for (int k = 0; k < n; ++k) A[i * n + j] += static_cast<double>(q[k * n + i]) * q[k * n + j];
      if (i == j) A[i * n + j] += 1.0;
    }
  const std::unique_ptr<Backend> be = make_cpu_backend();
  VecOps ops{be.get(), n};
  using Vec = VecOps::Vec;
  auto fvp = [&](const Vec& vb, Vec& outb) {
    const std::vector<float> v = test::to_host(*be, vb);
    std::vector<float> out(n);
    for (int i = 0; i < n; ++i) {
      double s = 0;
      for (int j = 0; j < n; ++j) s += A[i * n + j] * v[j];
      out[i] = static_cast<float>(s);
    }
    be->upload(outb.data(), out);
  };
  const Vec b = test::to_buffer(*be, bf);
  Vec xb = ops.make_vec();
  const CgResult r = conjugate_gradient<VecOps>(ops, fvp, b, xb, 60, 1e-14);
  EXPECT_TRUE(r.finite);
  const std::vector<float> x = test::to_host(*be, xb);
  // Direct solve by Gaussian elimination in double.
  std::vector<double> M = A, y(bf.begin(), bf.end());
  for (int c = 0; c < n; ++c)
    for (int r2 = c + 1; r2 < n; ++r2) {
      const double f = M[r2 * n + c] / M[c * n + c];
      for (int k = c; k < n; ++k) M[r2 * n + k] -= f * M[c * n + k];
      y[r2] -= f * y[c];
    }
  for (int c = n - 1; c >= 0; --c) {
    for (int k = c + 1; k < n; ++k) y[c] -= M[c * n + k] * y[k];
    y[c] /= M[c * n + c];
  }
  EXPECT_LT(rel_err(std::vector<double>(x.begin(), x.end()), y), 1e-4);
  // Ten iterations already shrink the residual by orders of magnitude (the TRPO setting).
  const CgResult r10 = conjugate_gradient<VecOps>(ops, fvp, b, xb, 10);
  EXPECT_LT(r10.residual, 1e-2 * ops.dot(b, b));
}

// A synthetic batch: random inputs and actions, pi_old from the sequence path at the parameters.
struct Fixture {
  GruShape shape{5, 7, 3};
  int64_t T = 4, N = 6;
  std::vector<float> params, x, logp_old, probs_old, adv;
  std::vector<int32_t> actions;
  double entropy_coef = 0.0;
  explicit Fixture(int64_t t = 4, int64_t n = 6) : T(t), N(n) {
    params.resize(static_cast<size_t>(gru_layout(shape).total));
    gru_init(shape, 3, 0, 1.0f, params.data());
    x = uniform_vec(static_cast<size_t>(T * N * shape.input), 4, 1.0f);
    adv = uniform_vec(static_cast<size_t>(T * N), 5, 1.0f);
    std::vector<float> logits(static_cast<size_t>(T * N * shape.out));
    GruCache<float> c;
    gru_forward(shape, params.data(), x.data(), T, N, c, logits.data());
    probs_old.resize(logits.size());
    for (int64_t k = 0; k < T * N; ++k) {
      float m = -1e30f;
      for (int a = 0; a < shape.out; ++a) m = std::max(m, logits[k * shape.out + a]);
      double z = 0;
      for (int a = 0; a < shape.out; ++a) z += std::exp(logits[k * shape.out + a] - m);
      for (int a = 0; a < shape.out; ++a) probs_old[k * shape.out + a] = static_cast<float>(std::exp(logits[k * shape.out + a] - m) / z);
      const int32_t act = static_cast<int32_t>(uniform_int(philox_bits(9, static_cast<uint64_t>(k), 0, Purpose::kAction, 0).v[0], 3));
      actions.push_back(act);
      logp_old.push_back(std::log(probs_old[k * shape.out + act]));
    }
  }
  PolicyBatch batch() const {
    return PolicyBatch{T,         N, shape.out, x.data(), actions.data(), logp_old.data(), probs_old.data(),
                       adv.data(), entropy_coef};
  }
};

// Reference in double: F v = J^T M J v / M from the *_ref GRU; and the gradient of the mean KL.
std::vector<double> fvp_ref(const Fixture& f, const std::vector<double>& p, const std::vector<double>& v) {
  const int64_t m = f.T * f.N, A = f.shape.out;
  std::vector<double> x(f.x.begin(), f.x.end()), logits(static_cast<size_t>(m * A)), dl(logits.size()), u(logits.size());
  GruCache<double> c;
  gru_forward_ref<double>(f.shape, p.data(), x.data(), f.T, f.N, c, logits.data());
  gru_jvp_ref<double>(f.shape, p.data(), x.data(), f.T, f.N, c, v.data(), dl.data());
  for (int64_t k = 0; k < m; ++k) {
    double mx = -1e300, z = 0, s = 0;
    for (int a = 0; a < A; ++a) mx = std::max(mx, logits[k * A + a]);
    for (int a = 0; a < A; ++a) z += std::exp(logits[k * A + a] - mx);
    std::vector<double> pr(A);
    for (int a = 0; a < A; ++a) {
      pr[a] = std::exp(logits[k * A + a] - mx) / z;
      s += pr[a] * dl[k * A + a];
    }
    for (int a = 0; a < A; ++a) u[k * A + a] = pr[a] * (dl[k * A + a] - s) / static_cast<double>(m);
  }
  std::vector<double> out(p.size(), 0.0);
  gru_backward_ref<double>(f.shape, p.data(), x.data(), f.T, f.N, c, u.data(), out.data(), nullptr);
  return out;
}

std::vector<double> kl_grad_ref(const Fixture& f, const std::vector<double>& p) {
  const int64_t m = f.T * f.N, A = f.shape.out;
  std::vector<double> x(f.x.begin(), f.x.end()), logits(static_cast<size_t>(m * A)), d(logits.size());
  GruCache<double> c;
  gru_forward_ref<double>(f.shape, p.data(), x.data(), f.T, f.N, c, logits.data());
  // p_old from the same double forward at the base parameters, so the gradient vanishes there.
  static std::vector<double> p_old;
  static const std::vector<double>* base = nullptr;
  for (int64_t k = 0; k < m; ++k) {
    double mx = -1e300, z = 0;
    for (int a = 0; a < A; ++a) mx = std::max(mx, logits[k * A + a]);
    for (int a = 0; a < A; ++a) z += std::exp(logits[k * A + a] - mx);
    for (int a = 0; a < A; ++a) d[k * A + a] = std::exp(logits[k * A + a] - mx) / z;
  }
  if (base == nullptr) {
    p_old = d;
    base = &p_old;
  }
  for (size_t i = 0; i < d.size(); ++i) d[i] = (d[i] - p_old[i]) / static_cast<double>(m);  // dKL/dlogits
  std::vector<double> g(p.size(), 0.0);
  gru_backward_ref<double>(f.shape, p.data(), x.data(), f.T, f.N, c, d.data(), g.data(), nullptr);
  return g;
}

TEST(Trainer, FisherVectorProductMatchesFloat64Reference) {
  Fixture f;
  const std::vector<double> p(f.params.begin(), f.params.end());
  const std::vector<float> vf = uniform_vec(f.params.size(), 6, 1.0f);
  const std::vector<double> v(vf.begin(), vf.end());
  const std::vector<double> ref = fvp_ref(f, p, v);

  // The reference is the Hessian of the mean KL at theta_old: symmetric differences of its gradient.
  kl_grad_ref(f, p);  // fixes p_old at theta_old
  const double eps = 1e-5;
  std::vector<double> pp = p, pm = p;
  for (size_t i = 0; i < p.size(); ++i) {
    pp[i] += eps * v[i];
    pm[i] -= eps * v[i];
  }
  const std::vector<double> gp = kl_grad_ref(f, pp), gm = kl_grad_ref(f, pm);
  std::vector<double> fd(p.size());
  for (size_t i = 0; i < p.size(); ++i) fd[i] = (gp[i] - gm[i]) / (2 * eps);
  EXPECT_LT(rel_err(fd, ref), 1e-6);

  // The float32 product of the CPU backend: relative error <= 1e-3 (DESIGN.md section 4).
  CpuObjective o(NetShape{f.shape, false, {}}, f.params, f.batch());
  Buffer<float> grad = o.obj.make_vec(), out = o.obj.make_vec();
  o.obj.surrogate_grad(grad);
  EXPECT_LT(o.obj.rollout_mismatch(), 1e-5);  // pi_old came from the same parameters
  o.obj.fvp(o.vec(vf), out);
  EXPECT_LT(rel_err(o.host_double(out), ref), 1e-3);
}

// Whole chunks spread evenly: 10 trials of 1000 steps are 5 chunks of 2 (core/chunks.hpp).
TEST(Trainer, FisherSubsampleIsWholeChunksSpreadEvenly) {
  EXPECT_EQ(fvp_trials(10, 1000, 1.0), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(fvp_trials(10, 1000, 0.3), (std::vector<int64_t>{0, 1, 4, 5}));   // ceil(1.5) = 2 chunks: 0, 2
  EXPECT_EQ(fvp_trials(10, 1000, 0.25), (std::vector<int64_t>{0, 1, 4, 5}));  // ceil(1.25) = 2
  EXPECT_EQ(fvp_trials(1000, 10, 0.1).size(), 128u);  // 32 chunks of 32: 4 chunks, 0, 8, 16, 24
  EXPECT_EQ(fvp_trials(1000, 10, 0.1).back(), 24 * 32 + 31);
  EXPECT_EQ(fvp_trials(7, 10, 1e-9).size(), 7u);  // at least one chunk: here the whole batch
}

// The Fisher product on a subsample is the product of a batch holding only those trials (its own
// active-step mean), not a scaled-down full product.
TEST(Trainer, FisherProductOnASubsampleIsTheProductOfThoseTrials) {
  Fixture f(700, 8);  // 4 chunks of 2 trials
  const std::vector<int64_t> ids = fvp_trials(f.N, f.T, 0.5);  // chunks 0 and 2: trials 0, 1, 4, 5
  ASSERT_EQ(ids, (std::vector<int64_t>{0, 1, 4, 5}));
  Fixture sub(f.T);
  sub.N = static_cast<int64_t>(ids.size());
  const int64_t I = f.shape.input, A = f.shape.out;
  sub.x.resize(static_cast<size_t>(f.T * sub.N * I));
  sub.probs_old.resize(static_cast<size_t>(f.T * sub.N * A));
  sub.actions.resize(static_cast<size_t>(f.T * sub.N));
  sub.logp_old.resize(sub.actions.size());
  sub.adv.resize(sub.actions.size());
  gather_trials(f.x.data(), f.T, f.N, I, ids.data(), sub.N, sub.x.data());
  gather_trials(f.probs_old.data(), f.T, f.N, A, ids.data(), sub.N, sub.probs_old.data());
  gather_trials(f.actions.data(), f.T, f.N, 1, ids.data(), sub.N, sub.actions.data());
  gather_trials(f.logp_old.data(), f.T, f.N, 1, ids.data(), sub.N, sub.logp_old.data());
  gather_trials(f.adv.data(), f.T, f.N, 1, ids.data(), sub.N, sub.adv.data());
  const std::vector<float> v = uniform_vec(f.params.size(), 6, 1.0f);
  auto product = [&](const Fixture& fx, double fraction) {
    CpuObjective o(NetShape{fx.shape, false, {}}, fx.params, fx.batch());
    o.obj.set_fvp_subsample(fraction);
    Buffer<float> grad = o.obj.make_vec(), out = o.obj.make_vec();
    o.obj.surrogate_grad(grad);
    o.obj.fvp(o.vec(v), out);
    return o.host_double(out);
  };
  const std::vector<double> half = product(f, 0.5), whole = product(sub, 1.0), all = product(f, 1.0);
  EXPECT_LT(rel_err(half, whole), 1e-6);
  EXPECT_GT(rel_err(half, all), 1e-2);  // four other trials really left out
}

// The surrogate with an entropy bonus: its value agrees between the gradient and line-search paths, and
// its gradient matches symmetric differences of the line-search path's surrogate along a random direction
// (float forward passes with eps = 1e-2: about 1e-4 relative from rounding and curvature; margin 2e-3).
TEST(Trainer, EntropyBonusGradientMatchesFiniteDifferences) {
  for (double beta : {0.0, 0.5}) {
    Fixture f;
    f.entropy_coef = beta;
    CpuObjective o(NetShape{f.shape, false, {}}, f.params, f.batch());
    PolicyObjective& obj = o.obj;
    Buffer<float> grad = obj.make_vec();
    const double l0 = obj.surrogate_grad(grad);
    EXPECT_NEAR(obj.surrogate_kl().surrogate, l0, 1e-6);
    const std::vector<float> v = uniform_vec(f.params.size(), 8, 1.0f);
    const double eps = 1e-2;
    std::vector<float> pp = f.params, pm = f.params;
    for (size_t i = 0; i < v.size(); ++i) {
      pp[i] += static_cast<float>(eps) * v[i];
      pm[i] -= static_cast<float>(eps) * v[i];
    }
    obj.set_params(o.vec(pp));
    const double lp = obj.surrogate_kl().surrogate;
    obj.set_params(o.vec(pm));
    const double lm = obj.surrogate_kl().surrogate;
    const double fd = (lp - lm) / (2 * eps), an = obj.dot(grad, o.vec(v));
    EXPECT_NEAR(an, fd, 2e-3 * std::max(1.0, std::fabs(fd))) << "beta " << beta;
  }
  // The bonus raises the value by beta times the mean entropy (between 0 and log 3 here).
  Fixture a, b;
  b.entropy_coef = 1.0;
  const NetShape shape{a.shape, false, {}};
  const double la = CpuObjective(shape, a.params, a.batch()).obj.surrogate_kl().surrogate;
  const double lb = CpuObjective(shape, b.params, b.batch()).obj.surrogate_kl().surrogate;
  EXPECT_GT(lb - la, 0.1);
  EXPECT_LT(lb - la, std::log(3.0));
}

TEST(Trainer, AcceptedStepKeepsKlWithinLimitAndImproves) {
  Fixture f;
  CpuObjective o(NetShape{f.shape, false, {}}, f.params, f.batch());
  PolicyObjective& obj = o.obj;
  TrpoConfig cfg;
  cfg.max_kl = 0.01;
  const UpdateStats s = trpo_step(obj, cfg);
  ASSERT_EQ(s.status, UpdateStatus::kAccepted) << s.reason;
  EXPECT_LE(s.kl, cfg.max_kl);
  EXPECT_GT(s.surrogate_gain, 0.0);
  const SurrogateKl now = obj.surrogate_kl();  // at the accepted parameters
  EXPECT_LE(now.kl, cfg.max_kl);
  EXPECT_GT(now.kl, 0.0);
  EXPECT_NE(o.params, f.params);
}

TEST(Trainer, NonFiniteLossNeverChangesParameters) {
  Fixture f;
  f.adv[3] = std::numeric_limits<float>::quiet_NaN();
  CpuObjective o(NetShape{f.shape, false, {}}, f.params, f.batch());
  const UpdateStats s = trpo_step(o.obj, TrpoConfig{});
  EXPECT_EQ(s.status, UpdateStatus::kNonFinite);
  EXPECT_EQ(o.params, f.params);
}

// ---- the finite-difference Fisher product --------------------------------------------------------------
// F v ~ (g(theta + eps v) - g(theta - eps v)) / (2 eps), g the gradient of the mean KL, eps set so the
// largest logit moves by about kFvpLogitStep: the CUDA backend's product (cuDNN has no forward mode). The CPU
// backend has a JVP, so these tests ask for the finite differences (finite_difference = true) and compare
// them with the exact product J^T M J v / m on the same batch.

// Trials 1 and 4 of the Fixture finished early: their last steps are inactive.
std::vector<float> fixture_mask(const Fixture& f) {
  std::vector<float> mask(static_cast<size_t>(f.T * f.N), 1.0f);
  mask[3 * f.N + 1] = mask[2 * f.N + 4] = mask[3 * f.N + 4] = 0.0f;
  return mask;
}

// An exact and a finite-difference objective on one batch, each after surrogate_grad.
struct FisherPair {
  CpuObjective exact, fd;
  Buffer<float> grad_exact, grad_fd, out_exact, out_fd;
  FisherPair(const Fixture& f, const PolicyBatch& batch, double fraction)
      : exact(NetShape{f.shape, false, {}}, f.params, batch, false),
        fd(NetShape{f.shape, false, {}}, f.params, batch, true) {
    exact.obj.set_fvp_subsample(fraction);
    fd.obj.set_fvp_subsample(fraction);
    grad_exact = exact.obj.make_vec();
    grad_fd = fd.obj.make_vec();
    out_exact = exact.obj.make_vec();
    out_fd = fd.obj.make_vec();
    exact.obj.surrogate_grad(grad_exact);
    fd.obj.surrogate_grad(grad_fd);
  }
  // Both products of v, as doubles: {exact, finite difference}.
  std::pair<std::vector<double>, std::vector<double>> products(const std::vector<float>& v) {
    exact.obj.fvp(exact.vec(v), out_exact);
    fd.obj.fvp(fd.vec(v), out_fd);
    return {exact.host_double(out_exact), fd.host_double(out_fd)};
  }
};

// The finite-difference product's relative L2 error against the exact one (and against fvp_ref): measured
// 6.0e-5 .. 2.7e-4 over the 24 products of FiniteDifferenceFisherProductMatchesExact (masked or not, all
// trials or half, vectors uniform in (-1, 1) and scaled by 1e-3 and 1e3; 7.8e-5 against fvp_ref, where the
// exact product is at 5.9e-8), as docs/cuda_training.md's budget expects (~1e-4 at a largest logit step of
// 1e-2). 1e-3 leaves a margin of 3.7x over the worst.
constexpr double kFdFvpTol = 1e-3;

void be_fill(CpuObjective& o, Buffer<float>& b, float value) { o.be->run(ops::Fill{b.size(), value, b.data()}); }

std::vector<float> scaled(std::vector<float> v, float s) {
  for (float& e : v) e *= s;
  return v;
}

TEST(Trainer, FiniteDifferenceFisherProductMatchesExact) {
  for (const bool masked : {false, true}) {
    for (const double fraction : {1.0, 0.5}) {
      SCOPED_TRACE(::testing::Message() << "masked " << masked << " fraction " << fraction);
      Fixture f(fraction < 1.0 ? 700 : 4, 8);  // 4 chunks of 2 trials when subsampled (whole chunks)
      const std::vector<float> mask = fixture_mask(f);
      PolicyBatch batch = f.batch();
      if (masked) batch.mask = mask.data();
      FisherPair pair(f, batch, fraction);
      // The finite differences change nothing before the Fisher product.
      EXPECT_EQ(pair.exact.host(pair.grad_exact), pair.fd.host(pair.grad_fd));
      EXPECT_EQ(pair.fd.obj.last_fvp_epsilon(), 0.0);
      // In sequence on one objective: the first product probes for eps, the later ones predict it from the
      // measured slope, also for vectors 1e3 times shorter or longer (eps scales with 1 / |v|).
      const std::vector<float> v6 = uniform_vec(f.params.size(), 6, 1.0f);
      const std::vector<std::vector<float>> vs = {v6, uniform_vec(f.params.size(), 11, 1.0f),
                                                  uniform_vec(f.params.size(), 12, 1.0f), scaled(v6, 1e-3f),
                                                  scaled(uniform_vec(f.params.size(), 13, 1.0f), 1e3f), v6};
      for (size_t i = 0; i < vs.size(); ++i) {
        const auto [ex, fd] = pair.products(vs[i]);
        EXPECT_LT(rel_err(fd, ex), kFdFvpTol) << "vector " << i;
        EXPECT_GT(pair.fd.obj.last_fvp_epsilon(), 0.0) << "vector " << i;
        EXPECT_EQ(pair.exact.obj.last_fvp_epsilon(), 0.0) << "vector " << i;  // the exact product probes nothing
      }
      if (fraction == 1.0 && !masked) {
        // Also against the float64 reference, the exact product's own check.
        const std::vector<double> ref = fvp_ref(f, std::vector<double>(f.params.begin(), f.params.end()),
                                                std::vector<double>(v6.begin(), v6.end()));
        EXPECT_LT(rel_err(pair.products(v6).second, ref), kFdFvpTol);
      }
      if (fraction < 1.0) {
        // The finite differences run on the sub-batch too: far from the whole batch's product (measured
        // 6.3e-2 unmasked, 8.1e-2 masked).
        FisherPair whole(f, batch, 1.0);
        EXPECT_GT(rel_err(pair.products(v6).second, whole.products(v6).first), 1e-2);
      }
    }
  }
}

// A zero vector gives a zero product and a vector holding a NaN or an infinity a non-finite one, without
// probing, before the first product (no calibration yet) and after it; the next finite vector's product is
// still right (a bad vector leaves the calibration alone).
TEST(Trainer, FiniteDifferenceFisherProductOfZeroAndNonFiniteVectors) {
  for (const double fraction : {1.0, 0.5}) {
    SCOPED_TRACE(::testing::Message() << "fraction " << fraction);
    Fixture f;
    FisherPair pair(f, f.batch(), fraction);
    PolicyObjective& obj = pair.fd.obj;
    const std::vector<float> v = uniform_vec(f.params.size(), 6, 1.0f);
    Buffer<float> out = obj.make_vec();
    auto expect_bad_vectors_give_non_finite = [&] {
      for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
        std::vector<float> w = v;
        w[5] = bad;
        be_fill(pair.fd, out, 1.0f);
        obj.fvp(pair.fd.vec(w), out);
        EXPECT_FALSE(pair.fd.be->all_finite(obj.n, out.data())) << bad;
      }
    };
    auto expect_zero_gives_zero = [&] {
      be_fill(pair.fd, out, 1.0f);
      obj.fvp(obj.make_vec(), out);
      EXPECT_EQ(pair.fd.host(out), std::vector<float>(f.params.size(), 0.0f));
    };
    expect_bad_vectors_give_non_finite();
    expect_zero_gives_zero();
    EXPECT_EQ(obj.last_fvp_epsilon(), 0.0);  // no probe ran
    auto [ex, fd] = pair.products(v);  // calibrates eps
    EXPECT_LT(rel_err(fd, ex), kFdFvpTol);
    const double eps = obj.last_fvp_epsilon();
    EXPECT_GT(eps, 0.0);
    expect_bad_vectors_give_non_finite();
    expect_zero_gives_zero();
    EXPECT_EQ(obj.last_fvp_epsilon(), eps);  // no probe ran
    std::tie(ex, fd) = pair.products(uniform_vec(f.params.size(), 11, 1.0f));
    EXPECT_LT(rel_err(fd, ex), kFdFvpTol);
  }
}

// TRPO on the finite-difference product: accepted, within the KL limit, an improvement, and close to the
// step the exact product gives (relative L2 difference of the parameter steps measured 4.6e-4, bound 2e-3).
TEST(Trainer, FiniteDifferenceTrpoStepKeepsKlWithinLimitAndImproves) {
  Fixture f;
  TrpoConfig cfg;
  cfg.max_kl = 0.01;
  CpuObjective fd(NetShape{f.shape, false, {}}, f.params, f.batch(), true);
  const UpdateStats s = trpo_step(fd.obj, cfg);
  ASSERT_EQ(s.status, UpdateStatus::kAccepted) << s.reason;
  EXPECT_LE(s.kl, cfg.max_kl);
  EXPECT_GT(s.surrogate_gain, 0.0);
  const SurrogateKl now = fd.obj.surrogate_kl();
  EXPECT_LE(now.kl, cfg.max_kl);
  EXPECT_GT(now.kl, 0.0);
  EXPECT_NE(fd.params, f.params);
  EXPECT_GT(fd.obj.last_fvp_epsilon(), 0.0);
  CpuObjective exact(NetShape{f.shape, false, {}}, f.params, f.batch());
  const UpdateStats se = trpo_step(exact.obj, cfg);
  ASSERT_EQ(se.status, UpdateStatus::kAccepted) << se.reason;
  std::vector<double> step_fd(f.params.size()), step_exact(f.params.size());
  for (size_t i = 0; i < f.params.size(); ++i) {
    step_fd[i] = static_cast<double>(fd.params[i]) - f.params[i];
    step_exact[i] = static_cast<double>(exact.params[i]) - f.params[i];
  }
  EXPECT_LT(rel_err(step_fd, step_exact), 2e-3);
}

TEST(Trainer, GaeOverWholeTrial) {
  // gamma = 0.5, lambda = 1: advantages are discounted returns minus values; no cut inside the trial.
  const float r[3] = {1, 0, 2}, v[3] = {0.5f, 0.25f, 1};
  float adv[3], ret[3];
  gae_trial<double>(3, 1, r, v, 0.5, 1.0, adv, ret);
  EXPECT_FLOAT_EQ(ret[2], 2.0f);
  EXPECT_FLOAT_EQ(ret[1], 1.0f);
  EXPECT_FLOAT_EQ(ret[0], 1.5f);
  for (int t = 0; t < 3; ++t) EXPECT_NEAR(adv[t], ret[t] - v[t], 1e-6);
  gae_trial<double>(3, 1, r, v, 0.5, 0.0, adv, ret);  // lambda = 0: one-step TD errors
  EXPECT_NEAR(adv[0], 1 + 0.5 * 0.25 - 0.5, 1e-6);
}

TrainConfig tiny_config() {
  TrainConfig c;
  c.env.kind = EnvKind::kBandit;
  c.env.bandit = {3, 5};
  c.hidden = 8;
  c.steps_per_iter = 200;
  c.iterations = 4;
  c.seed = 5;
  return c;
}

std::vector<std::string> metrics_without_times(const fs::path& p) {
  std::vector<std::string> out;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    j.erase("wall_time");
    j.erase("env_steps_per_s");
    j.erase("seconds");
    out.push_back(j.dump());
  }
  return out;
}

// Resume equals an uninterrupted run, for TRPO and for PPO (whose policy Adam moments are saved too).
TEST(Trainer, ResumeMatchesAnUninterruptedRun) {
  for (const std::string algo : {"trpo", "ppo"}) {
    SCOPED_TRACE(algo);
    const fs::path root = fs::temp_directory_path() / ("rl2_resume_" + std::to_string(::getpid()));
    fs::remove_all(root);
    std::ostringstream log;
    TrainConfig cfg = tiny_config();
    cfg.algo = algo;
    RunOptions a;
    a.dir = (root / "a").string();
    auto la = make_cpu_learner(cfg);
    train_run(*la, cfg, a, log, false);

    TrainConfig half = cfg;
    half.iterations = 2;
    RunOptions b;
    b.dir = (root / "b").string();
    auto lb = make_cpu_learner(half);
    train_run(*lb, half, b, log, false);
    LoadedRun resumed = load_run(b.dir);
    ASSERT_EQ(resumed.state.iteration, 2);
    ASSERT_EQ(resumed.cfg.algo, algo);
    resumed.cfg.iterations = 4;
    auto lc = make_cpu_learner(resumed.cfg);
    lc->set_state(resumed.state);
    train_run(*lc, resumed.cfg, b, log, false);

    EXPECT_EQ(lc->state().policy, la->state().policy);
    EXPECT_EQ(lc->state().baseline, la->state().baseline);
    EXPECT_EQ(lc->state().baseline_adam.m, la->state().baseline_adam.m);
    EXPECT_EQ(lc->state().policy_adam.v, la->state().policy_adam.v);
    EXPECT_EQ(la->state().policy_adam.m.empty(), algo == "trpo");
    EXPECT_EQ(metrics_without_times(root / "a" / "metrics.jsonl"), metrics_without_times(root / "b" / "metrics.jsonl"));
    EXPECT_EQ(metrics_without_times(root / "a" / "metrics.jsonl").size(), 4u);
    // The export holds torch-named tensors and the metadata of DESIGN.md section 7.
    const SafetensorsFile f = read_safetensors((root / "a" / "checkpoint.safetensors").string());
    EXPECT_EQ(f.metadata.at("format"), "rl2-cuda/1");
    ASSERT_NE(f.find("policy.gru.weight_ih_l0"), nullptr);
    EXPECT_EQ(f.find("policy.gru.weight_ih_l0")->shape, (std::vector<int64_t>{24, 3 + 2}));
    EXPECT_EQ(f.find("baseline.head.weight")->shape, (std::vector<int64_t>{1, 8}));
    fs::remove_all(root);
  }
}

// PPO's per-step clipped term: its logits gradient matches symmetric differences of the term (float64
// arithmetic inside; eps 1e-4 gives about 1e-7 error, margin 1e-5), inside and outside the clip range.
TEST(Trainer, PpoStepGradientMatchesFiniteDifferences) {
  const int32_t A = 4, act = 2;
  const double clip = 0.2, beta = 0.05;
  const auto term = [&](const std::vector<double>& lg, double logp_old, double adv) {
    double mx = *std::max_element(lg.begin(), lg.end()), z = 0, h = 0;
    for (double l : lg) z += std::exp(l - mx);
    const double lse = mx + std::log(z);
    for (double l : lg) h -= std::exp(l - lse) * (l - lse);
    const double rho = std::exp(lg[act] - lse - logp_old);
    return std::min(rho * adv, std::clamp(rho, 1 - clip, 1 + clip) * adv) + beta * h;
  };
  const std::vector<double> lg = {0.3, -0.2, 0.1, 0.4};
  double mx = 0.4, z = 0;
  for (double l : lg) z += std::exp(l - mx);
  const double logp = lg[act] - mx - std::log(z);
  int clipped_cases = 0;
  for (double shift : {0.0, 0.5, -0.5}) {   // log rho = -shift: inside, below and above the interval
    for (double adv : {1.3, -0.7}) {
      float p[A], d[A];
      for (int a = 0; a < A; ++a) p[a] = static_cast<float>(std::exp(lg[a] - mx) / z);
      const double log_ratio = std::log(static_cast<double>(p[act])) - (logp + shift);
      ppo_step_grad(p, A, act, log_ratio, adv, clip, beta, 1.0, d);
      const double rho = std::exp(-shift);
      if (adv > 0 ? rho > 1 + clip : rho < 1 - clip) ++clipped_cases;
      for (int a = 0; a < A; ++a) {
        std::vector<double> up = lg, dn = lg;
        up[a] += 1e-4;
        dn[a] -= 1e-4;
        const double fd = (term(up, logp + shift, adv) - term(dn, logp + shift, adv)) / 2e-4;
        EXPECT_NEAR(d[a], fd, 1e-5) << "shift " << shift << " adv " << adv << " action " << a;
      }
    }
  }
  EXPECT_EQ(clipped_cases, 2);  // one clipped case per advantage sign: the zero-gradient branch is tested
}

// A PPO update improves the surrogate and stops near its KL target; a NaN advantage changes nothing.
TEST(Trainer, PpoUpdateImprovesAndNonFiniteChangesNothing) {
  Fixture f;
  PpoConfig cfg;
  cfg.minibatches = 2;
  {
    CpuObjective o(NetShape{f.shape, false, {}}, f.params, f.batch());
    BackendAdam adam;  // after o: its moments are freed through o's backend
    o.obj.set_adam(&adam);
    const UpdateStats s = ppo_update(o.obj, cfg, 1, 0);
    ASSERT_EQ(s.status, UpdateStatus::kAccepted) << s.reason;
    EXPECT_GT(s.surrogate_gain, 0.0);
    EXPECT_GT(s.kl, 0.0);
    EXPECT_GE(s.steps, 1);
    // Every pass but the last kept KL <= 1.5 target; one Adam pass at lr 1e-3 adds little more here.
    EXPECT_LT(s.kl, 3.0 * cfg.target_kl);
    EXPECT_NE(o.params, f.params);
    // Minibatches are whole chunks: this batch is one chunk of 6 trials.
    EXPECT_EQ(adam.t, static_cast<int64_t>(s.steps) * std::min<int64_t>(cfg.minibatches, o.obj.minibatch_units()));
  }
  f.adv[3] = std::numeric_limits<float>::quiet_NaN();
  CpuObjective o(NetShape{f.shape, false, {}}, f.params, f.batch());
  BackendAdam fresh;
  o.obj.set_adam(&fresh);
  EXPECT_EQ(ppo_update(o.obj, cfg, 1, 0).status, UpdateStatus::kNonFinite);
  EXPECT_EQ(o.params, f.params);
}

// The per-element rule the GPU tests judge PPO steps by (numeric_test_util.hpp, adam_steps_disagree): two
// updates from parameters that differ only at float-noise level (what two backends' roundings do) agree
// under it, while a step that is negated or scaled by 1% does not.
TEST(Trainer, AdamStepRuleToleratesNoiseButNotBugs) {
  Fixture f;
  PpoConfig cfg;
  cfg.minibatches = 2;
  const auto step_from = [&](const std::vector<float>& start, int64_t* adam_steps) {
    CpuObjective o(NetShape{f.shape, false, {}}, start, f.batch());
    BackendAdam adam;  // after o: its moments are freed through o's backend
    o.obj.set_adam(&adam);
    EXPECT_EQ(ppo_update(o.obj, cfg, 1, 0).status, UpdateStatus::kAccepted);
    *adam_steps = adam.t;
    std::vector<float> step(start.size());
    for (size_t i = 0; i < step.size(); ++i) step[i] = o.params[i] - start[i];
    return step;
  };
  std::vector<float> nudged = f.params;  // one ulp on every other parameter
  for (size_t i = 0; i < nudged.size(); i += 2) nudged[i] = std::nextafter(nudged[i], 1e30f);
  int64_t t = 0, t2 = 0;
  const std::vector<float> a = step_from(f.params, &t), b = step_from(nudged, &t2);
  ASSERT_EQ(t, t2);
  size_t differ = 0;
  for (size_t i = 0; i < a.size(); ++i) differ += a[i] != b[i];
  EXPECT_GT(differ, a.size() / 10);  // the nudge reached the steps (53 of 318 here)
  EXPECT_EQ(test::adam_steps_disagree(a, b, cfg.lr, t, 2e-3), "");
  std::vector<float> negated = a, scaled = a;
  for (size_t i = 0; i < a.size(); ++i) {
    negated[i] = -a[i];
    scaled[i] = 1.01f * a[i];
  }
  EXPECT_NE(test::adam_steps_disagree(negated, b, cfg.lr, t, 2e-3), "");
  EXPECT_NE(test::adam_steps_disagree(scaled, b, cfg.lr, t, 2e-3), "");
}

// PPO's cheap measurements: surrogate_old (no forward) equals the full surrogate at theta_old; a minibatch
// of every trial gives the batch's KL (0 at theta_old, surrogate_kl's value after a change) and, at
// theta_old, the rollout parity.
TEST(Trainer, PpoMinibatchKlAndOldSurrogateMatchFullPasses) {
  Fixture f;
  CpuObjective o(NetShape{f.shape, false, {}}, f.params, f.batch());
  PolicyObjective& obj = o.obj;
  const SurrogateKl at_old = obj.surrogate_kl();
  EXPECT_NEAR(obj.surrogate_old(), at_old.surrogate, 1e-6);
  std::vector<int64_t> all(static_cast<size_t>(obj.trials()));
  std::iota(all.begin(), all.end(), int64_t{0});
  Buffer<float> grad = obj.make_vec();
  obj.minibatch_grad(all.data(), obj.trials(), 0.2, grad);
  EXPECT_NEAR(obj.minibatch_kl(), at_old.kl, 1e-7);  // both 0 up to float rounding of the logits
  EXPECT_LT(std::fabs(obj.minibatch_kl()), 1e-7);
  EXPECT_LT(obj.rollout_mismatch(), 1e-5);
  Buffer<float> params = obj.make_vec();  // theta_old + 0.05 grad / |grad|
  obj.get_params(params);
  obj.axpy(0.05 / std::sqrt(obj.dot(grad, grad)), grad, params);
  obj.set_params(params);
  const SurrogateKl moved = obj.surrogate_kl();
  obj.minibatch_grad(all.data(), obj.trials(), 0.2, grad);
  EXPECT_GT(moved.kl, 1e-6);
  EXPECT_NEAR(obj.minibatch_kl(), moved.kl, 1e-6 * std::max(1.0, moved.kl));
}

TEST(Trainer, RolloutAndTrainingPathsAgree) {
  TrainConfig cfg = tiny_config();
  cfg.env.kind = EnvKind::kMdp;
  cfg.env.mdp = {4, 3, 3, 2};
  auto l = make_cpu_learner(cfg);
  for (int i = 0; i < 3; ++i) {
    const IterationStats s = l->iterate();
    EXPECT_LT(s.rollout_mismatch, 1e-4) << "iteration " << i;  // float rounding only
    EXPECT_GT(s.entropy, 0.0);
  }
}

}  // namespace
}  // namespace rl2
