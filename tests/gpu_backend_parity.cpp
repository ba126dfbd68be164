// The CUDA backend's launches (kernels/step_ops.cu: the generic op kernel and the two-stage reductions) against
// the CPU backend's loops (src/cpu/backend_cpu.cpp) on the same inputs. The op bodies are shared (step_ops.hpp)
// and the CPU tests run them all, so what is checked here is the launch: every item run once, at awkward
// sizes (1, 7, 65, 4097 items or trials), masks nullptr and with zeros, and the reductions' partials.
// Tolerances:
//   step ops, bit for bit (every float and double array after the op, inputs included), where the body is
//     float/double arithmetic, sqrt and copies (rl2_cuda builds with -fmad=false and IEEE div/sqrt; the host
//     with -ffp-contract=off; a NaN matches any NaN): Axpy Xpby Fill Adam AddBias BiasRelu ReluMask Scatter
//     Gather GatherTrialsF TrialTotals Values Gae Residual Standardise BaselineLoss FisherStep
//   step ops using expf/logf/exp/log (softmax, entropy, KL; CUDA's expf is within 2 ulp, not correctly
//     rounded): |gpu - cpu| <= 1e-5 max|cpu| per array: Entropy SurrogateStep SurrogateKlStep KlGrad
//     SurrogateOld PpoStep
//   every op of RL2_STEP_OPS must have a case here (checked)
//   reductions (step_sum, mean_var, step_sum_parts, trial_sum, dot) at 1, 7, 65, 4097, 300009 elements,
//     masks nullptr and with zeros: |gpu - cpu| <= 1e-12 of the sum of the terms' magnitudes (relative
//     1e-12 without cancellation; the orders differ: chunks on the CPU, a tree on the GPU); max, all_finite
//     and max_abs_diff (mask widths 1 and 3, all masked) exactly, NaN and infinity propagation included
//   the net backward's head-bias gradient (the two-stage column sums of d_out [T N, O]) against float(the
//     column sums in double): within one float rounding, 1 to 300009 rows (the net's other tensors:
//     tests/gpu_learner_parity.cpp, GpuNetParity)
// Every test skips with the reason when no GPU is usable (label `gpu`).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <iostream>
#include <limits>
#include <numeric>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gpu_test_util.hpp"
#include "objective_test_util.hpp"
#include "numeric_test_util.hpp"
#include "rl2/policy/gru.hpp"
#include "rl2/policy/network.hpp"
#include "rl2/policy/softmax.hpp"
#include "rl2/train/backend.hpp"
#include "rl2/train/step_ops.hpp"

namespace rl2 {
namespace {

using test::to_host;
using test::to_buffer;
using VecF = std::vector<float>;
using VecD = std::vector<double>;

#if defined(RL2_WITH_CUDA)
// ---- test data ----------------------------------------------------------------------------------------------
VecF uniform(int64_t n, uint64_t seed, float scale = 1.0f) { return test::random_vec(static_cast<size_t>(n), seed, scale); }
VecD doubles(int64_t n, uint64_t seed) {  // full 53-bit mantissas
  const VecF a = uniform(n, seed), b = uniform(n, seed + 7777);
  VecD d(a.size());
  for (size_t k = 0; k < d.size(); ++k) d[k] = 3.0 * a[k] + 1e-7 * b[k];
  return d;
}
VecF positive(int64_t n, uint64_t seed) {
  VecF v = uniform(n, seed);
  for (float& e : v) e = std::abs(e) * 1e-2f;
  return v;
}
template <class Int>
std::vector<Int> below(int64_t n, uint64_t seed, int64_t hi) {  // uniform in [0, hi)
  std::vector<Int> v;
  for (float u : uniform(n, seed)) v.push_back(static_cast<Int>(std::min<int64_t>(hi - 1, static_cast<int64_t>((u + 1.0f) * 0.5f * hi))));
  return v;
}
std::vector<int64_t> distinct(int64_t n, int64_t N, uint64_t seed) {  // n distinct ids of [0, N), shuffled
  const VecF key = uniform(N, seed);
  std::vector<int64_t> ids(static_cast<size_t>(N));
  std::iota(ids.begin(), ids.end(), 0);
  std::sort(ids.begin(), ids.end(), [&](int64_t a, int64_t b) { return key[a] < key[b] || (key[a] == key[b] && a < b); });
  ids.resize(static_cast<size_t>(n));
  return ids;
}
VecF probabilities(int64_t steps, int32_t A, uint64_t seed) {  // rows of softmax(2 u)
  const VecF logits = uniform(steps * A, seed, 2.0f);
  VecF p(logits.size());
  for (int64_t k = 0; k < steps; ++k) softmax(&logits[k * A], A, &p[k * A]);
  return p;
}
// log pi(a_k) of the rows of softmax(logits) plus noise in (-0.1, 0.1): ratios near 1, both sides of PPO's clip.
VecF logp_near(const VecF& logits, const std::vector<int32_t>& actions, int32_t A, uint64_t seed) {
  const VecF noise = uniform(static_cast<int64_t>(actions.size()), seed, 0.1f);
  VecF p(static_cast<size_t>(A)), out;
  for (size_t k = 0; k < actions.size(); ++k) {
    softmax(&logits[k * A], A, p.data());
    out.push_back(std::log(p[actions[k]]) + noise[k]);
  }
  return out;
}
VecF mask_with_zeros(int64_t n, uint64_t seed) {  // 0/1, about a third 0, at least one
  VecF m;
  for (float u : uniform(n, seed)) m.push_back(u < -0.33f ? 0.0f : 1.0f);
  m[static_cast<size_t>(n / 2)] = 0.0f;
  return m;
}

// ---- one op's case: host arrays, copied into each backend's Buffers --------------------------------------------
struct Arrays {
  Arrays(std::vector<VecF> f_, std::vector<VecD> d_ = {}, std::vector<std::vector<int32_t>> i_ = {},
         std::vector<std::vector<int64_t>> l_ = {}, VecF mask_ = {})
      : f(std::move(f_)), d(std::move(d_)), i(std::move(i_)), l(std::move(l_)), mask(std::move(mask_)) {}
  std::vector<VecF> f;
  std::vector<VecD> d;
  std::vector<std::vector<int32_t>> i;
  std::vector<std::vector<int64_t>> l;
  VecF mask;  // the op's [T, N] (or [steps]) mask; empty: the op takes none
};

template <class T>
std::vector<Buffer<T>> upload_all(Backend& be, const std::vector<std::vector<T>>& host) {
  std::vector<Buffer<T>> out;
  for (const auto& h : host) out.push_back(to_buffer(be, h));
  return out;
}

struct Mem {
  std::vector<Buffer<float>> f;
  std::vector<Buffer<double>> d;
  std::vector<Buffer<int32_t>> i;
  std::vector<Buffer<int64_t>> l;
  Buffer<float> mask;
  Mem(Backend& be, const Arrays& a)
      : f(upload_all(be, a.f)), d(upload_all(be, a.d)), i(upload_all(be, a.i)), l(upload_all(be, a.l)),
        mask(to_buffer(be, a.mask)) {}
  float* F(size_t k) { return f[k].data(); }
  double* D(size_t k) { return d[k].data(); }
  int32_t* I(size_t k) { return i[k].data(); }
  int64_t* L(size_t k) { return l[k].data(); }
};

// tol 0: bit for bit (a NaN matches any NaN: CUDA returns its canonical NaN, x86 the operand's payload); else
// |gpu - cpu| <= tol max|cpu|. Reports the first offending element and the count.
template <class T>
void expect_close(const std::vector<T>& gpu, const std::vector<T>& cpu, double tol, const std::string& what) {
  ASSERT_EQ(gpu.size(), cpu.size()) << what;
  double scale = 0.0;
  for (T c : cpu)
    if (!std::isnan(c)) scale = std::max(scale, std::abs(static_cast<double>(c)));
  int64_t bad = 0, first = -1;
  for (size_t k = 0; k < cpu.size(); ++k) {
    const bool both_nan = std::isnan(gpu[k]) && std::isnan(cpu[k]);
    const bool ok = tol == 0.0 ? both_nan || std::memcmp(&gpu[k], &cpu[k], sizeof(T)) == 0
                               : std::abs(static_cast<double>(gpu[k]) - cpu[k]) <= tol * scale;
    if (!ok && bad++ == 0) first = static_cast<int64_t>(k);
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << cpu.size() << " elements differ"
                    << (tol == 0.0 ? " (bit for bit)" : " (beyond " + std::to_string(tol) + " max|cpu|)") << "; first at "
                    << first << ": gpu " << (first >= 0 ? gpu[first] : T{}) << " cpu " << (first >= 0 ? cpu[first] : T{});
}

constexpr double kExact = 0.0, kTranscendental = 1e-5;
constexpr double kBeta = 0.01;
const int64_t kSizes[] = {1, 7, 65, 4097};

class GpuBackendParity : public test::CudnnTest {
 protected:
  void SetUp() override {
    test::CudnnTest::SetUp();
    if (IsSkipped()) return;
    cpu_ = make_cpu_backend();
    gpu_ = make_cuda_backend();
  }

  // Runs make(mem, mask)'s op on both backends (mask nullptr, then with zeros when the case has one) and
  // compares every float and double array afterwards.
  template <class Make>
  void check(const std::string& op, int64_t n, const Arrays& a, double tol, Make make) {
    for (int masked = 0; masked <= (a.mask.empty() ? 0 : 1); ++masked) {
      std::vector<VecF> f[2];
      std::vector<VecD> d[2];
      Backend* be[2] = {cpu_.get(), gpu_.get()};
      for (int s = 0; s < 2; ++s) {
        Mem m(*be[s], a);
        be[s]->run(make(m, masked ? m.mask.data() : static_cast<const float*>(nullptr)));
        for (const auto& b : m.f) f[s].push_back(to_host(*be[s], b));
        for (const auto& b : m.d) d[s].push_back(to_host(*be[s], b));
      }
      const std::string what = op + " n=" + std::to_string(n) + (masked ? ", mask with zeros" : ", no mask");
      for (size_t k = 0; k < f[0].size(); ++k) expect_close(f[1][k], f[0][k], tol, what + ", float array " + std::to_string(k));
      for (size_t k = 0; k < d[0].size(); ++k) expect_close(d[1][k], d[0][k], tol, what + ", double array " + std::to_string(k));
    }
  }

  std::unique_ptr<Backend> cpu_, gpu_;
};
#else
class GpuBackendParity : public test::CudnnTest {};
#endif

// ---- every step op -----------------------------------------------------------------------------------------------
TEST_F(GpuBackendParity, EveryStepOpMatchesTheCpuBackend) {
#if defined(RL2_WITH_CUDA)
  using Run = std::function<void(int64_t n, uint64_t seed)>;
  // Shapes from n: per-element ops take n items; per-trial ops N = n trials of T steps; minibatch ops n of
  // N = n + 2 trials; softmax ops A = 2 + n % 6 actions (3, 3, 5, 7).
  auto A_of = [](int64_t n) { return static_cast<int32_t>(2 + n % 6); };
  const std::vector<std::pair<std::string, Run>> cases = {
      {"Axpy", [&](int64_t n, uint64_t s) {
         check("Axpy", n, Arrays{{uniform(n, s), uniform(n, s + 1)}}, kExact,
               [&](Mem& m, const float*) { return ops::Axpy{n, 0.37, m.F(0), m.F(1)}; });
       }},
      {"Xpby", [&](int64_t n, uint64_t s) {
         check("Xpby", n, Arrays{{uniform(n, s), uniform(n, s + 1)}}, kExact,
               [&](Mem& m, const float*) { return ops::Xpby{n, m.F(0), -1.3, m.F(1)}; });
       }},
      {"Fill", [&](int64_t n, uint64_t s) {
         check("Fill", n, Arrays{{uniform(n, s)}}, kExact, [&](Mem& m, const float*) { return ops::Fill{n, 2.5f, m.F(0)}; });
       }},
      {"Adam", [&](int64_t n, uint64_t s) {
         const double c1 = 1.0 - std::pow(ops::kAdamBeta1, 3.0), c2 = 1.0 - std::pow(ops::kAdamBeta2, 3.0);
         check("Adam", n, Arrays{{uniform(n, s), uniform(n, s + 1), uniform(n, s + 2, 0.1f), positive(n, s + 3)}}, kExact,
               [&](Mem& m, const float*) { return ops::Adam{n, m.F(0), m.F(1), m.F(2), m.F(3), 1e-3, c1, c2}; });
       }},
      {"AddBias", [&](int64_t n, uint64_t s) {  // n rows of 3
         check("AddBias", n, Arrays{{uniform(3, s), uniform(n * 3, s + 1)}}, kExact,
               [&](Mem& m, const float*) { return ops::AddBias{n, 3, m.F(0), m.F(1)}; });
       }},
      {"BiasRelu", [&](int64_t n, uint64_t s) {  // n rows of 3 channels x 2, row stride 7 (1 padding), a NaN kept
         const int64_t inner = 2, ld = 7;
         VecF a = uniform(n * ld, s + 1);
         a[static_cast<size_t>(n / 2 * ld + 3)] = std::numeric_limits<float>::quiet_NaN();
         for (const bool copy : {false, true})
           check(copy ? "BiasRelu (copy)" : "BiasRelu", n, Arrays{{uniform(3, s, 0.5f), a, uniform(n * ld, s + 2)}}, kExact,
                 [&](Mem& m, const float*) { return ops::BiasRelu{n, 3, inner, ld, m.F(0), m.F(1), copy ? m.F(2) : nullptr}; });
       }},
      {"ReluMask", [&](int64_t n, uint64_t s) {  // post with zeros (relu'(0) = 0); out apart, then in place on grad
         VecF post = uniform(n, s);
         for (size_t k = 0; k < post.size(); k += 3) post[k] = 0.0f;
         for (const bool in_place : {false, true})
           check(in_place ? "ReluMask (in place)" : "ReluMask", n, Arrays{{post, uniform(n, s + 1), uniform(n, s + 2)}}, kExact,
                 [&](Mem& m, const float*) { return ops::ReluMask{n, m.F(0), m.F(1), in_place ? m.F(1) : m.F(2)}; });
       }},
      {"Scatter", [&](int64_t n, uint64_t s) {  // into n + 5 (5 untouched)
         check("Scatter", n, Arrays{{uniform(n, s), uniform(n + 5, s + 1)}, {}, {}, {distinct(n, n + 5, s + 2)}}, kExact,
               [&](Mem& m, const float*) { return ops::Scatter{n, m.F(0), m.L(0), m.F(1)}; });
       }},
      {"Gather", [&](int64_t n, uint64_t s) {  // from n + 5, indices may repeat
         check("Gather", n, Arrays{{uniform(n + 5, s), uniform(n, s + 1)}, {}, {}, {below<int64_t>(n, s + 2, n + 5)}}, kExact,
               [&](Mem& m, const float*) { return ops::Gather{n, m.F(0), m.L(0), m.F(1)}; });
       }},
      {"GatherTrialsF", [&](int64_t n, uint64_t s) {  // [3, n, 4] of [3, n + 2, 4]
         const int64_t T = 3, N = n + 2, W = 4;
         check("GatherTrialsF", n, Arrays{{uniform(T * N * W, s), uniform(T * n * W, s + 1)}, {}, {}, {distinct(n, N, s + 2)}},
               kExact, [&](Mem& m, const float*) { return ops::GatherTrialsF{m.F(0), T, N, W, m.L(0), n, m.F(1)}; });
       }},
      {"TrialTotals", [&](int64_t n, uint64_t s) {
         const int64_t T = 5;
         check("TrialTotals", n, Arrays{{uniform(T * n, s, 2.0f)}, {doubles(n, s + 1)}}, kExact,
               [&](Mem& m, const float*) { return ops::TrialTotals{T, n, m.F(0), m.D(0)}; });
       }},
      {"Entropy", [&](int64_t n, uint64_t s) {
         const int32_t A = A_of(n);
         check("Entropy", n, Arrays{{probabilities(n, A, s)}, {doubles(n, s + 1)}, {}, {}, mask_with_zeros(n, s + 2)},
               kTranscendental, [&](Mem& m, const float* mask) { return ops::Entropy{n, A, m.F(0), m.D(0), mask}; });
       }},
      {"Values", [&](int64_t n, uint64_t s) {
         check("Values", n, Arrays{{uniform(n, s), uniform(n, s + 1)}, {}, {}, {}, mask_with_zeros(n, s + 2)}, kExact,
               [&](Mem& m, const float* mask) { return ops::Values{n, m.F(0), 0.37, 1.9, m.F(1), mask}; });
       }},
      {"Gae", [&](int64_t n, uint64_t s) {  // n trials of 6 steps
         const int64_t T = 6;
         check("Gae", n, Arrays{{uniform(T * n, s), uniform(T * n, s + 1), uniform(T * n, s + 2), uniform(T * n, s + 3)}}, kExact,
               [&](Mem& m, const float*) { return ops::Gae{T, n, m.F(0), m.F(1), 0.99, 0.3, m.F(2), m.F(3)}; });
       }},
      {"Residual", [&](int64_t n, uint64_t s) {
         check("Residual", n, Arrays{{uniform(n, s), uniform(n, s + 1)}, {doubles(n, s + 2)}}, kExact,
               [&](Mem& m, const float*) { return ops::Residual{n, m.F(0), m.F(1), m.D(0)}; });
       }},
      {"Standardise", [&](int64_t n, uint64_t s) {
         check("Standardise", n, Arrays{{uniform(n, s, 3.0f)}, {}, {}, {}, mask_with_zeros(n, s + 1)}, kExact,
               [&](Mem& m, const float* mask) { return ops::Standardise{n, 0.1, 1.7, m.F(0), mask}; });
       }},
      {"BaselineLoss", [&](int64_t n, uint64_t s) {  // a minibatch of n of n + 2 trials of 3 steps
         const int64_t T = 3, N = n + 2;
         const double scale = 2.0 / static_cast<double>(T * n);
         check("BaselineLoss", n,
               Arrays{{uniform(T * n, s), uniform(T * N, s + 1, 4.0f), uniform(T * n, s + 2)}, {doubles(T * n, s + 3)}, {},
                      {distinct(n, N, s + 4)}, mask_with_zeros(T * N, s + 5)},
               kExact, [&](Mem& m, const float* mask) {
                 return ops::BaselineLoss{T, n, N, m.L(0), m.F(0), m.F(1), 0.2, 1.3, scale, m.D(0), m.F(2), mask};
               });
       }},
      {"SurrogateStep", [&](int64_t n, uint64_t s) {
         const int32_t A = A_of(n);
         const VecF logits = uniform(n * A, s, 2.0f);
         const std::vector<int32_t> act = below<int32_t>(n, s + 1, A);
         check("SurrogateStep", n,
               Arrays{{logits, logp_near(logits, act, A, s + 2), uniform(n, s + 3), uniform(n * A, s + 4), uniform(n * A, s + 5)},
                      {doubles(n, s + 6), doubles(n, s + 7)}, {act}, {}, mask_with_zeros(n, s + 8)},
               kTranscendental, [&](Mem& m, const float* mask) {
                 return ops::SurrogateStep{n, A, m.F(0), m.I(0), m.F(1), m.F(2), kBeta, 1.0 / static_cast<double>(n),
                                           m.F(3), m.F(4), m.D(0), m.D(1), mask};
               });
       }},
      {"SurrogateKlStep", [&](int64_t n, uint64_t s) {
         const int32_t A = A_of(n);
         const VecF logits = uniform(n * A, s, 2.0f);
         const std::vector<int32_t> act = below<int32_t>(n, s + 1, A);
         check("SurrogateKlStep", n,
               Arrays{{logits, logp_near(logits, act, A, s + 2), probabilities(n, A, s + 3), uniform(n, s + 4)},
                      {doubles(n, s + 5), doubles(n, s + 6)}, {act}, {}, mask_with_zeros(n, s + 7)},
               kTranscendental, [&](Mem& m, const float* mask) {
                 return ops::SurrogateKlStep{n, A, m.F(0), m.I(0), m.F(1), m.F(2), m.F(3), kBeta, m.D(0), m.D(1), mask};
               });
       }},
      {"FisherStep", [&](int64_t n, uint64_t s) {
         const int32_t A = A_of(n);
         check("FisherStep", n,
               Arrays{{probabilities(n, A, s), uniform(n * A, s + 1), uniform(n * A, s + 2)}, {}, {}, {}, mask_with_zeros(n, s + 3)},
               kExact, [&](Mem& m, const float* mask) {
                 return ops::FisherStep{n, A, m.F(0), m.F(1), 1.0 / static_cast<double>(n), m.F(2), mask};
               });
       }},
      {"KlGrad", [&](int64_t n, uint64_t s) {
         const int32_t A = A_of(n);
         check("KlGrad", n,
               Arrays{{uniform(n * A, s, 2.0f), probabilities(n, A, s + 1), uniform(n * A, s + 2)}, {}, {}, {}, mask_with_zeros(n, s + 3)},
               kTranscendental, [&](Mem& m, const float* mask) { return ops::KlGrad{n, A, m.F(0), m.F(1), 0.5, m.F(2), mask}; });
       }},
      {"SurrogateOld", [&](int64_t n, uint64_t s) {
         const int32_t A = A_of(n);
         check("SurrogateOld", n,
               Arrays{{probabilities(n, A, s), uniform(n, s + 1)}, {doubles(n, s + 2)}, {}, {}, mask_with_zeros(n, s + 3)},
               kTranscendental, [&](Mem& m, const float* mask) { return ops::SurrogateOld{n, A, m.F(0), m.F(1), kBeta, m.D(0), mask}; });
       }},
      {"PpoStep", [&](int64_t n, uint64_t s) {  // a minibatch of n of n + 2 trials of 3 steps
         const int64_t T = 3, N = n + 2;
         const int32_t A = A_of(n);
         const VecF batch_logits = uniform(T * N * A, s, 2.0f);
         const std::vector<int32_t> act = below<int32_t>(T * N, s + 1, A);
         check("PpoStep", n,
               Arrays{{uniform(T * n * A, s + 2, 2.0f), logp_near(batch_logits, act, A, s + 3), probabilities(T * N, A, s + 4),
                       uniform(T * N, s + 5), uniform(T * n * A, s + 6), uniform(T * n * A, s + 7)},
                      {doubles(T * n, s + 8), doubles(T * n, s + 9), doubles(T * n, s + 10)}, {act},
                      {distinct(n, N, s + 11)}, mask_with_zeros(T * N, s + 12)},
               kTranscendental, [&](Mem& m, const float* mask) {
                 return ops::PpoStep{T, n, N, A, m.L(0), m.F(0), m.I(0), m.F(1), m.F(2), m.F(3), 0.2, kBeta,
                                     1.0 / static_cast<double>(T * n), m.F(4), m.F(5), m.D(0), m.D(1), m.D(2), mask};
               });
       }},
  };
  // Every op of the backend interface has a case.
#define RL2_OP_NAME(Op) #Op,
  const std::set<std::string> all = {RL2_STEP_OPS(RL2_OP_NAME)};
#undef RL2_OP_NAME
  std::set<std::string> covered;
  for (const auto& c : cases) covered.insert(c.first);
  EXPECT_EQ(covered, all) << "an op of RL2_STEP_OPS has no case here (or a case names no op)";
  uint64_t seed = 100;
  for (const auto& [name, run] : cases)
    for (const int64_t n : kSizes) {
      run(n, seed);
      seed += 100;
    }
  std::cout << "  " << cases.size() << " ops at n = 1, 7, 65, 4097\n";
#endif
}

// The rollout's own ops (rollout_ops.hpp) at the same sizes: the gate update and the step bookkeeping are
// float arithmetic and copies, so bit for bit; the heads use expf/logf (1e-5, at most one tipped draw). The environments' ops (env_ops.hpp) are checked through the
// environment batch on both backends (tests/gpu_env_parity.cpp).
TEST_F(GpuBackendParity, RolloutOpsMatchTheCpuBackend) {
#if defined(RL2_WITH_CUDA)
  uint64_t seed = 9000;
  for (const int64_t n : kSizes) {
    const int32_t H = static_cast<int32_t>(1 + n % 9);  // 2, 8, 3, 3 units: N = n trials
    check("GruGates", n,
          Arrays{{uniform(n * 6 * H, seed, 2.0f), uniform(2 * n * 3 * H, seed + 1, 2.0f), uniform(2 * n * H, seed + 2),
                  uniform(2 * n * H, seed + 3), uniform(3 * H, seed + 4), uniform(3 * H, seed + 5), uniform(3 * H, seed + 6),
                  uniform(3 * H, seed + 7)}},
          kExact, [&](Mem& m, const float*) {
            return ops::GruGates{n, H, m.F(0), m.F(1), m.F(2), m.F(3), {m.F(4), m.F(5)}, {m.F(6), m.F(7)}};
          });
    const int32_t A = static_cast<int32_t>(2 + n % 6);
    {  // the heads: N = n trials of H units, A actions
      Backend* be[2] = {cpu_.get(), gpu_.get()};
      std::vector<VecF> f[2];
      std::vector<int32_t> acts[2];
      const Arrays a{{uniform(2 * n * H, seed + 20), uniform(A * H, seed + 21), uniform(A, seed + 22), uniform(H, seed + 23),
                      uniform(1, seed + 24), uniform(n, seed + 25), uniform(n * A, seed + 26), uniform(n, seed + 27)},
                     {},
                     {std::vector<int32_t>(static_cast<size_t>(n), -1)}};
      for (int k = 0; k < 2; ++k) {
        Mem m(*be[k], a);
        Buffer<RunIds> ids = to_buffer(*be[k], std::vector<RunIds>{RunIds{7, 100}});
        be[k]->run(ops::RolloutHeads{n, H, A, 2, ids.data(), m.F(0), m.F(1), m.F(2), m.F(3), m.F(4), m.I(0), m.F(5),
                                     m.F(6), m.F(7)});
        for (const auto& b : m.f) f[k].push_back(to_host(*be[k], b));
        acts[k] = to_host(*be[k], m.i[0]);
      }
      for (size_t k = 0; k < f[0].size(); ++k)
        expect_close(f[1][k], f[0][k], kTranscendental, "RolloutHeads n=" + std::to_string(n) + ", array " + std::to_string(k));
      int64_t differ = 0;  // a draw within float rounding of a CDF boundary may tip
      for (size_t k = 0; k < acts[0].size(); ++k) differ += acts[0][k] != acts[1][k];
      EXPECT_LE(differ, 1) << "RolloutHeads n=" << n << ": drawn actions differ";
    }
    const InputLayout layout{4, 3};  // obs 4, 3 actions: x rows of 9
    for (const bool after_reset : {true, false})
      for (const bool rendered : {false, true}) {
        std::vector<uint8_t> dones_u8;
        for (int32_t d : below<int32_t>(n, seed + 8, 2)) dones_u8.push_back(static_cast<uint8_t>(d));
        // floats: rewards, obs, mask, x_next; ints: actions, episodes done; the dones are the uint8 copy below
        Arrays a{{uniform(n, seed + 9), uniform(n * layout.obs, seed + 10), uniform(n, seed + 11),
                  uniform(n * layout.size(), seed + 12)},
                 {},
                 {below<int32_t>(n, seed + 13, 3), below<int32_t>(n, seed + 14, 3)}};
        Backend* be[2] = {cpu_.get(), gpu_.get()};
        std::vector<VecF> f[2];
        std::vector<int32_t> eps[2];
        for (int s = 0; s < 2; ++s) {
          Mem m(*be[s], a);
          Buffer<uint8_t> dones = to_buffer(*be[s], dones_u8);
          be[s]->run(ops::RolloutRecord{layout, n, 2, rendered, m.F(1), after_reset ? nullptr : m.I(0), m.F(0),
                                        dones.data(), m.I(1), m.F(2), m.F(3)});
          for (const auto& b : m.f) f[s].push_back(to_host(*be[s], b));
          eps[s] = to_host(*be[s], m.i[1]);
        }
        const std::string what = std::string("RolloutRecord n=") + std::to_string(n) +
                                 (after_reset ? " after a reset" : " after a step") + (rendered ? ", rendered" : "");
        for (size_t k = 0; k < f[0].size(); ++k) expect_close(f[1][k], f[0][k], kExact, what + ", array " + std::to_string(k));
        EXPECT_EQ(eps[1], eps[0]) << what << ": episodes done";
      }
    seed += 100;
  }
#endif
}

// ---- the reductions ----------------------------------------------------------------------------------------------
TEST_F(GpuBackendParity, ReductionsMatchTheCpuBackend) {
#if defined(RL2_WITH_CUDA)
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  // Same value, or both NaN.
  auto same = [](double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); };
  // (T, N): 1, 7, 65, 4097 and 300009 elements (past the 1024 x 256 threads of a full first stage).
  const std::pair<int64_t, int64_t> shapes[] = {{1, 1}, {1, 7}, {5, 13}, {17, 241}, {3, 100003}};
  uint64_t seed = 5000;
  for (const auto& [T, N] : shapes) {
    const int64_t n = T * N;
    const VecF xf = uniform(n, seed++, 2.0f), yf = uniform(n, seed++, 2.0f), zeros_mask = mask_with_zeros(n, seed++);
    const VecD xd = doubles(n, seed++), per_trial = doubles(N, seed++);
    Buffer<float> gx = to_buffer(*gpu_, xf), gy = to_buffer(*gpu_, yf), gm = to_buffer(*gpu_, zeros_mask);
    Buffer<double> gxd = to_buffer(*gpu_, xd), gtrial = to_buffer(*gpu_, per_trial);
    const std::string at = "T=" + std::to_string(T) + " N=" + std::to_string(N);
    for (const bool masked : {false, true}) {
      const float* cm = masked ? zeros_mask.data() : nullptr;
      const float* dm = masked ? gm.data() : nullptr;
      const std::string what = at + (masked ? ", mask with zeros" : ", no mask");
      double active = 0.0, mag_f = 0.0, mag_d = 0.0;
      for (int64_t k = 0; k < n; ++k)
        if (!masked || zeros_mask[k] != 0.0f) active += 1.0, mag_f += std::abs(xf[k]), mag_d += std::abs(xd[k]);
      EXPECT_NEAR(gpu_->step_sum(T, N, gx.data(), dm), cpu_->step_sum(T, N, xf.data(), cm), 1e-12 * mag_f) << what;
      EXPECT_NEAR(gpu_->step_sum(T, N, gxd.data(), dm), cpu_->step_sum(T, N, xd.data(), cm), 1e-12 * mag_d) << what;
      if (active > 0.0) {
        const auto gf = gpu_->mean_var(T, N, gx.data(), dm, active), cf = cpu_->mean_var(T, N, xf.data(), cm, active);
        const auto gd = gpu_->mean_var(T, N, gxd.data(), dm, active), cd = cpu_->mean_var(T, N, xd.data(), cm, active);
        EXPECT_NEAR(gf.first, cf.first, 1e-12 * mag_f / active) << what;
        EXPECT_NEAR(gf.second, cf.second, 1e-12 * cf.second + 1e-300) << what;
        EXPECT_NEAR(gd.first, cd.first, 1e-12 * mag_d / active) << what;
        EXPECT_NEAR(gd.second, cd.second, 1e-12 * cd.second + 1e-300) << what;
        // The ranks' parts (train/shard.hpp): CUDA's one part is the CPU's chunk parts added up.
        const TrialSegments segs = TrialSegments::chunks(N, T);
        const double mean = cf.first;
        for (const double* center : {static_cast<const double*>(nullptr), &mean}) {
          const std::vector<double> g = gpu_->step_sum_parts(T, segs, gx.data(), dm, center);
          const std::vector<double> c = cpu_->step_sum_parts(T, segs, xf.data(), cm, center);
          ASSERT_EQ(g.size(), 1u) << what;
          ASSERT_EQ(static_cast<int64_t>(c.size()), segs.count()) << what;
          double total = 0.0;
          for (double q : c) total += q;
          const double tol = center ? 1e-12 * cf.second * active + 1e-300 : 1e-12 * mag_f;
          EXPECT_NEAR(g[0], total, tol) << what << (center ? ", centred" : "");
        }
      }
      // max |a - b| with one mask entry per `width` elements: the mask's [n] over n * width elements.
      for (const int64_t width : {int64_t{1}, int64_t{3}}) {
        const VecF a = uniform(n * width, seed++), b = uniform(n * width, seed++);
        Buffer<float> ga = to_buffer(*gpu_, a), gb = to_buffer(*gpu_, b);
        EXPECT_EQ(gpu_->max_abs_diff(n * width, ga.data(), gb.data(), dm, width),
                  cpu_->max_abs_diff(n * width, a.data(), b.data(), cm, width))
            << what << ", width " << width;
      }
    }
    double mag_dot = 0.0, mag_trial = 0.0;
    for (int64_t k = 0; k < n; ++k) mag_dot += std::abs(static_cast<double>(xf[k]) * yf[k]);
    for (double v : per_trial) mag_trial += std::abs(v);
    EXPECT_NEAR(gpu_->dot(n, gx.data(), gy.data()), cpu_->dot(n, xf.data(), yf.data()), 1e-12 * mag_dot) << at;
    EXPECT_NEAR(gpu_->trial_sum(N, T, gtrial.data()), cpu_->trial_sum(N, T, per_trial.data()), 1e-12 * mag_trial) << at;
    EXPECT_EQ(gpu_->max(n, gxd.data()), cpu_->max(n, xd.data())) << at;
    EXPECT_TRUE(gpu_->all_finite(n, gx.data())) << at;
    EXPECT_TRUE(cpu_->all_finite(n, xf.data())) << at;

    // NaN and infinity, at the last element (the far end of the grid-stride loop) and in the middle.
    for (const int64_t k : {n - 1, n / 2}) {
      for (const double bad : {nan, inf}) {
        VecD d = xd;
        d[k] = bad;
        VecF f = xf;
        f[k] = static_cast<float>(bad);
        Buffer<double> gd = to_buffer(*gpu_, d);
        Buffer<float> gf = to_buffer(*gpu_, f);
        const std::string what = at + ", " + std::to_string(bad) + " at " + std::to_string(k);
        EXPECT_TRUE(same(gpu_->max(n, gd.data()), cpu_->max(n, d.data()))) << what;
        EXPECT_FALSE(gpu_->all_finite(n, gf.data())) << what;
        EXPECT_FALSE(cpu_->all_finite(n, f.data())) << what;
        // max_abs_diff: NaN where the element is active; skipped where it is masked. inf - x = inf.
        const double gd_all = gpu_->max_abs_diff(n, gf.data(), gy.data(), nullptr, 1);
        EXPECT_TRUE(same(gd_all, cpu_->max_abs_diff(n, f.data(), yf.data(), nullptr, 1))) << what;
        EXPECT_TRUE(std::isnan(bad) ? std::isnan(gd_all) : gd_all == inf) << what << ": " << gd_all;
        VecF skip = zeros_mask;
        skip[k] = 0.0f;
        Buffer<float> gskip = to_buffer(*gpu_, skip);
        const double gd_skip = gpu_->max_abs_diff(n, gf.data(), gy.data(), gskip.data(), 1);
        EXPECT_TRUE(same(gd_skip, cpu_->max_abs_diff(n, f.data(), yf.data(), skip.data(), 1))) << what << ", masked there";
        EXPECT_TRUE(std::isfinite(gd_skip)) << what << ", masked there: " << gd_skip;
      }
    }
  }
  // Empty and fully masked: max of nothing is -inf, a fully masked difference 0.
  Buffer<double> one_d = to_buffer(*gpu_, VecD{1.0});
  Buffer<float> a = to_buffer(*gpu_, VecF{1.0f, 2.0f}), b = to_buffer(*gpu_, VecF{3.0f, -1.0f}),
                none = to_buffer(*gpu_, VecF{0.0f});
  EXPECT_EQ(gpu_->max(0, one_d.data()), -inf);
  EXPECT_EQ(cpu_->max(0, nullptr), -inf);
  const VecF ha{1.0f, 2.0f}, hb{3.0f, -1.0f}, hnone{0.0f};
  EXPECT_EQ(gpu_->max_abs_diff(2, a.data(), b.data(), none.data(), 2), 0.0);
  EXPECT_EQ(cpu_->max_abs_diff(2, ha.data(), hb.data(), hnone.data(), 2), 0.0);
  EXPECT_EQ(gpu_->max_abs_diff(2, a.data(), b.data(), nullptr, 1), 3.0);
#endif
}

// ---- the column sums of a net's backward: the head bias's gradient ------------------------------------------------
// d/d head_b of sum(d_out · out) = the column sums of d_out [T N, O] (CudaNet::backward's grouped reduction).
TEST_F(GpuBackendParity, NetBackwardHeadBiasIsTheColumnSums) {
#if defined(RL2_WITH_CUDA)
  const std::pair<int64_t, int64_t> shapes[] = {{1, 1}, {7, 1}, {5, 13}, {17, 241}, {3, 100003}};
  uint64_t seed = 9000;
  for (const int32_t O : {1, 5}) {
    for (const auto& [T, N] : shapes) {
      const NetShape shape{GruShape{3, 4, O}, false, {}};
      const int64_t M = T * N;
      VecF params(static_cast<size_t>(shape.size()));
      gru_init(shape.gru, seed++, 0, 1.0f, params.data());
      const VecF x = uniform(M * shape.input(), seed++), d_out = uniform(M * O, seed++);
      auto net = gpu_->make_net(shape, T, N);
      Buffer<float> gp = to_buffer(*gpu_, params), gx = to_buffer(*gpu_, x), gd = to_buffer(*gpu_, d_out);
      Buffer<float> out(*gpu_, M * O), grad(*gpu_, shape.size());
      net->forward(gp.data(), gx.data(), N, out.data());
      net->backward(gp.data(), gx.data(), N, gd.data(), grad.data());
      const VecF g = to_host(*gpu_, grad);
      const int64_t head_b = gru_layout(shape.gru).head_b;
      for (int32_t o = 0; o < O; ++o) {
        double sum = 0.0, mag = 0.0;
        for (int64_t r = 0; r < M; ++r) sum += d_out[r * O + o], mag += std::abs(d_out[r * O + o]);
        const double want = static_cast<float>(sum), got = g[head_b + o];
        EXPECT_NEAR(got, want, 0x1p-23 * std::abs(want) + 1e-12 * mag)
            << "O=" << O << " T=" << T << " N=" << N << ": column " << o << " of " << M << " rows";
      }
    }
  }
#endif
}

}  // namespace
}  // namespace rl2
