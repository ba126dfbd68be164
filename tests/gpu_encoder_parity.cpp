// The maze encoder on cuDNN + cuBLAS (src/cuda/encoder_cudnn.hpp, kernels/encoder.cu) against the CPU's
// float64 reference (encoder_forward_ref<double>, encoder_backward_ref<double>, src/cpu/encoder_ref.cpp),
// on the maze shape (EncoderShape{}) and an awkward small one (2×11×13 image, 3 filters 3×3 stride 2:
// f1 3×5×6, f2 3×2×2 with f1's last column outside every window; image_fc 7, extra 4 -> 5).
// Tolerances (FP32 on the GPU against float64):
//   forward       max |y - y_ref| <= 1e-5 (1 + max |y_ref|): sums of at most 560 float products per layer,
//                 as the CPU fast path's 1e-5 (tests/test_encoder.cpp).
//   backward      per parameter tensor, accumulated into a non-zero start:
//                 max |(g - start) - g_ref| <= 1e-4 max |g_ref| + 1e-6 max |start + g_ref| (the second
//                 term: the float rounding of adding into the start, a few ulps).
//   chunking      bit for bit: dyadic data (every value a small multiple of a power of two) make every
//                 partial sum exact in float whatever the order (bounds at ChunkedRowsMatchExactly...),
//                 so rows beyond cuDNN's chunk size must give the float64 reference's values exactly.
//   determinism   bit for bit: two backward runs, and a second encoder, give the same gradient.
// Every GPU test skips with the reason when the build has no cuDNN or no GPU is usable (label `gpu`);
// GpuEncoderBytes needs no GPU and runs wherever the encoder is built.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "gpu_test_util.hpp"
#include "numeric_test_util.hpp"
#include "rl2/core/check.hpp"
#include "rl2/core/device.hpp"
#include "rl2/core/rng.hpp"
#include "rl2/env/maze.hpp"
#include "rl2/policy/encoder.hpp"
#include "rl2/policy/policy.hpp"
#if defined(RL2_WITH_CUDA)
#include "cuda_check.hpp"
#include "gpu_handles.hpp"
#include "cudnn_check.hpp"
#include "cuda/encoder_cudnn.hpp"
#endif

namespace rl2 {
namespace {

using test::random_vec;
using test::to_double;
using test::VecD;
using test::VecF;

class GpuEncoder : public test::CudnnTest {};

#if defined(RL2_WITH_CUDA)
constexpr EncoderShape kMaze{};                                // 3×30×40, 16 filters 5×5 stride 2, 256 + 32
constexpr EncoderShape kAwkward{2, 11, 13, 3, 3, 2, 7, 4, 5};  // f1 3×5×6, f2 3×2×2

std::string name(const EncoderShape& s) {
  return std::to_string(s.channels) + "x" + std::to_string(s.height) + "x" + std::to_string(s.width) +
         " F=" + std::to_string(s.filters) + " K=" + std::to_string(s.kernel) + " S=" + std::to_string(s.stride) +
         " fc=" + std::to_string(s.image_fc) + "+" + std::to_string(s.extra_fc);
}

VecF init_params(const EncoderShape& s, uint64_t seed) {
  VecF p(static_cast<size_t>(encoder_layout(s).total));
  encoder_init(s, seed, 0, p.data());
  return p;
}

// M maze-shape input rows as the maze trainer writes them: a random walk through a few configurations,
// each row [Maze::observe (3×30×40 in [-1, 1]), onehot(prev action), prev reward, prev done].
VecF maze_rows(int64_t M, uint64_t seed) {
  const MazeParams mp;
  const InputLayout layout{static_cast<int32_t>(Maze::obs_size(mp)), Maze::num_actions(mp)};
  EXPECT_EQ(layout.size(), kMaze.in());
  VecF task(static_cast<size_t>(Maze::task_size(mp))), obs(static_cast<size_t>(layout.obs));
  VecF x(static_cast<size_t>(M * kMaze.in()));
  RandomStream rs(seed, 3, 0, static_cast<Purpose>(250));
  Maze::State st{};
  int32_t prev_a = -1;
  float prev_r = 0.0f, prev_d = 0.0f;
  for (int64_t m = 0; m < M; ++m) {
    if (m % 50 == 0) {  // a new configuration every 50 steps
      Maze::make_config(mp, seed, static_cast<uint64_t>(m / 50), task.data());
      Maze::reset(mp, task.data(), st);
      prev_a = -1, prev_r = 0.0f, prev_d = 0.0f;
    }
    Maze::observe(mp, task.data(), st, obs.data());
    encode_input(layout, obs.data(), prev_a, prev_r, prev_d, x.data() + m * kMaze.in());
    prev_a = static_cast<int32_t>(rs.next_u32() % 3);
    const StepOut out = Maze::step(mp, task.data(), st, prev_a, 0, 0);
    prev_r = out.reward;
    prev_d = static_cast<float>(out.done);
  }
  return x;
}

// The float64 reference: y [M, out] and the gradient [total] of sum(d_y · y), accumulated from zero.
struct Ref {
  VecD y, grad;
};
Ref reference(const EncoderShape& s, const VecF& p, const VecF& x, int64_t M, const VecF& d_y) {
  const VecD pd = to_double(p), xd = to_double(x), dyd = to_double(d_y);
  Ref r{VecD(static_cast<size_t>(M * s.out())), VecD(p.size(), 0.0)};
  EncoderCache<double> cache;
  encoder_forward_ref<double>(s, pd.data(), xd.data(), M, cache, r.y.data());
  encoder_backward_ref<double>(s, pd.data(), xd.data(), M, cache, dyd.data(), r.grad.data());
  return r;
}

struct Slice {
  const char* name;
  int64_t begin, end;
};
std::vector<Slice> slices(const EncoderShape& s) {
  const EncoderLayout l = encoder_layout(s);
  return {{"conv1.weight", l.conv1_w, l.conv1_b},          {"conv1.bias", l.conv1_b, l.conv2_w},
          {"conv2.weight", l.conv2_w, l.conv2_b},          {"conv2.bias", l.conv2_b, l.image_fc_w},
          {"image_fc.weight", l.image_fc_w, l.image_fc_b}, {"image_fc.bias", l.image_fc_b, l.extra_fc_w},
          {"extra_fc.weight", l.extra_fc_w, l.extra_fc_b}, {"extra_fc.bias", l.extra_fc_b, l.total}};
}

using Gpu = test::GpuHandles;  // the backend's stream and handles, copies on it (tests/gpu_handles.hpp)

// One forward and one backward on the GPU: y [M, out] and start + gradient.
struct GpuOut {
  VecF y, grad;
};
GpuOut run_gpu(const Gpu& g, CudnnEncoder& enc, const VecF& p, const VecF& x, int64_t M, const VecF& d_y,
               const VecF& start) {
  const EncoderShape& s = enc.shape();
  DeviceBuffer<float> dp = g.upload(p), dx = g.upload(x), ddy = g.upload(d_y), dg = g.upload(start);
  DeviceBuffer<float> dyo(static_cast<size_t>(M * s.out()));
  enc.forward(dp.data(), dx.data(), M, dyo.data());
  enc.backward(dp.data(), dx.data(), M, ddy.data(), dg.data());
  return {g.download(dyo), g.download(dg)};
}

double max_abs(const VecD& v) {
  double m = 0.0;
  for (double e : v) m = std::max(m, std::abs(e));
  return m;
}

// Forward: max |y - y_ref| <= 1e-5 (1 + max |y_ref|).
void expect_forward(const VecF& y, const VecD& ref, const std::string& what) {
  ASSERT_EQ(y.size(), ref.size());
  double worst = 0.0;
  size_t at = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    const double d = std::abs(static_cast<double>(y[i]) - ref[i]);
    if (!(d <= worst)) worst = d, at = i;  // NaN is the worst
  }
  const double tol = 1e-5 * (1.0 + max_abs(ref));
  std::cout << "  " << what << ": forward max |diff| " << worst << " (tol " << tol << ")\n";
  EXPECT_LE(worst, tol) << what << ": worst at element " << at << ": gpu " << y[at] << " ref " << ref[at];
}

// Backward, per tensor: max |(g - start) - g_ref| <= 1e-4 max |g_ref| + 1e-6 max |start + g_ref|.
void expect_backward(const EncoderShape& s, const VecF& g, const VecF& start, const VecD& ref,
                     const std::string& what) {
  std::string report;
  for (const Slice& sl : slices(s)) {
    double worst = 0.0, mag = 0.0, total = 0.0;
    for (int64_t i = sl.begin; i < sl.end; ++i) {
      const size_t k = static_cast<size_t>(i);
      const double d = std::abs((static_cast<double>(g[k]) - start[k]) - ref[k]);
      if (!(d <= worst)) worst = d;
      mag = std::max(mag, std::abs(ref[k]));
      total = std::max(total, std::abs(start[k] + ref[k]));
    }
    const double tol = 1e-4 * mag + 1e-6 * total;
    report += std::string(" ") + sl.name + " " + std::to_string(mag > 0 ? worst / mag : worst);
    EXPECT_LE(worst, tol) << what << ": d_" << sl.name << " max |diff| " << worst << ", max |g_ref| " << mag;
  }
  std::cout << "  " << what << ": backward max |diff| / max |g_ref| per tensor:" << report << "\n";
}
#endif

// ---- forward and backward against float64, M = 1, 7, 300 ------------------------------------------------
// One encoder per shape (max_rows 300) serves every M, so its descriptors change size between calls.
TEST_F(GpuEncoder, ForwardAndBackwardMatchFloat64Reference) {
#if defined(RL2_WITH_CUDA)
  Gpu g;
  uint64_t seed = 500;
  for (const EncoderShape& s : {kMaze, kAwkward}) {
    CudnnEncoder enc(g.dnn, g.blas, g.stream, s, 300);
    for (const int64_t M : {int64_t{1}, int64_t{7}, int64_t{300}}) {
      for (const bool maze : {false, true}) {
        if (maze && s.in() != kMaze.in()) continue;  // maze observations only fit the maze shape
        const std::string what = name(s) + " M=" + std::to_string(M) + (maze ? " maze images" : " random inputs");
        SCOPED_TRACE(what);
        const VecF p = init_params(s, ++seed);
        const VecF x = maze ? maze_rows(M, ++seed) : random_vec(static_cast<size_t>(M * s.in()), ++seed);
        const VecF d_y = random_vec(static_cast<size_t>(M * s.out()), ++seed);
        const VecF start = random_vec(p.size(), ++seed);  // backward accumulates into non-zero gradients
        const Ref ref = reference(s, p, x, M, d_y);
        const GpuOut out = run_gpu(g, enc, p, x, M, d_y, start);
        expect_forward(out.y, ref.y, what);
        expect_backward(s, out.grad, start, ref.grad, what);
      }
    }
  }
#endif
}

// ---- chunking: more rows than one cuDNN call takes ---------------------------------------------------------
// kChunk mirrors encoder_cudnn.cpp's kMaxChunkRows (the rows per cuDNN call at a tiny shape). Tiny shape:
// 1×3×3 image, 1 filter 2×2 stride 1 (f1 1×2×2, f2 1×1×1), image_fc 1, extra 1 -> 1; M = 2 kChunk + 5
// rows: two full chunks and a partial one.
// Dyadic data: fixed parameters in multiples of 1/16 with |.| <= 1/4 (chosen so that every layer's ReLU
// is active on some rows and not on others, and every gradient tensor is non-zero), inputs in {0, ±1/4,
// ±1/2, ±3/4}, d_y in {-1, 0, 1}, start in multiples of 1/64 within [-1, 1]. Then every product and
// partial sum is a multiple of δ with |sum| < 2^24 δ, hence exact in float in any order (bounds: the sum
// of |terms| over all M = 65541 rows; with the start added every gradient is a multiple of 1/64 below
// 2^24 / 64 = 262144 in magnitude):
//   forward  conv1 δ 1/16, |.| <= 3/4; conv2 δ 1/64, <= 9/16; FC δ 1/256, < 1 (a few terms each)
//   dW_img   Σ dz f2        δ 1/64, <= 65541 · 9/16       = 36867
//   dW_ext   Σ dz x         δ 1/4,  <= 65541 · 3/4        = 49156
//   dW2      Σ d2 f1        δ 1/64, <= 65541 · 1/4 · 3/4  = 12289
//   dW1      Σ d1 x (4 pos) δ 1/64, <= 65541 · 4/16 · 3/4 = 12289
//   biases   summed in double, exact; each a multiple of 1/16 below 2^17
// so the GPU's numbers equal the float64 reference's exactly, and so does any split into smaller calls
// (checked on the CPU: encoder_*_ref<float> and the OpenBLAS fast path, two other orders, are exact too).
TEST_F(GpuEncoder, ChunkedRowsMatchExactlyOnDyadicData) {
#if defined(RL2_WITH_CUDA)
  constexpr int64_t kChunk = 32768;
  const EncoderShape s{1, 3, 3, 1, 2, 1, 1, 1, 1};
  const int64_t M = 2 * kChunk + 5;
  RandomStream rs(77, 0, 0, static_cast<Purpose>(250));
  const auto pick = [&](int n, float step, float offset) {
    return static_cast<float>(static_cast<int>(rs.next_u32() % static_cast<uint32_t>(n))) * step + offset;
  };
  // conv1.weight [1, 1, 2, 2], conv1.bias, conv2.weight [1, 1, 2, 2], conv2.bias, image_fc.weight [1, 1],
  // image_fc.bias (y_img = 1/16 - f2/4: inactive where f2 >= 1/4), extra_fc.weight, extra_fc.bias.
  const VecF p = {0.25f, -0.25f, 0.25f, 0.25f, 0.0f, 0.25f, 0.25f, -0.25f, 0.25f, 0.0f, -0.25f, 0.0625f, 0.25f, 0.0f};
  ASSERT_EQ(static_cast<int64_t>(p.size()), encoder_layout(s).total);
  VecF x(static_cast<size_t>(M * s.in())), d_y(static_cast<size_t>(M * s.out())), start(p.size());
  for (float& e : x) e = pick(7, 0.25f, -0.75f);
  for (float& e : d_y) e = pick(3, 1.0f, -1.0f);
  for (float& e : start) e = pick(129, 1.0f / 64, -1.0f);

  Gpu g;
  CudnnEncoder enc(g.dnn, g.blas, g.stream, s, M);
  const Ref ref = reference(s, p, x, M, d_y);
  const GpuOut one = run_gpu(g, enc, p, x, M, d_y, start);
  int64_t y_diff = 0, g_diff = 0;
  for (size_t i = 0; i < one.y.size(); ++i) y_diff += static_cast<double>(one.y[i]) != ref.y[i];
  for (size_t i = 0; i < one.grad.size(); ++i) g_diff += static_cast<double>(one.grad[i]) != start[i] + ref.grad[i];
  std::cout << "  M=" << M << ": " << y_diff << " outputs and " << g_diff << " gradient elements differ from float64\n";
  EXPECT_EQ(y_diff, 0) << "outputs differ from the float64 reference (a chunk offset or descriptor error)";
  EXPECT_EQ(g_diff, 0) << "gradient differs from start + the float64 reference";

  // The same rows in smaller calls (one per chunk, the last one partial), accumulating into one gradient.
  DeviceBuffer<float> dp = g.upload(p), dx = g.upload(x), ddy = g.upload(d_y), dg = g.upload(start);
  DeviceBuffer<float> dyo(static_cast<size_t>(M * s.out()));
  for (const int64_t r0 : {int64_t{0}, kChunk, 2 * kChunk}) {
    const int64_t n = std::min(kChunk, M - r0);
    enc.forward(dp.data(), dx.data() + r0 * s.in(), n, dyo.data() + r0 * s.out());
    enc.backward(dp.data(), dx.data() + r0 * s.in(), n, ddy.data() + r0 * s.out(), dg.data());
  }
  EXPECT_TRUE(g.download(dyo) == one.y) << "outputs of one call and of one call per chunk differ";
  EXPECT_TRUE(g.download(dg) == one.grad) << "gradients of one call and of one call per chunk differ";
#endif
}

// ---- determinism ---------------------------------------------------------------------------------------------
// Deterministic algorithms only (no atomics in cuDNN's backward, fixed-order bias sums): two backward runs
// after one forward, and a second encoder on the same data, give the same bits.
TEST_F(GpuEncoder, BackwardIsBitwiseDeterministic) {
#if defined(RL2_WITH_CUDA)
  const EncoderShape s = kMaze;
  const int64_t M = 300;
  const VecF p = init_params(s, 901), x = maze_rows(M, 902);
  const VecF d_y = random_vec(static_cast<size_t>(M * s.out()), 903);
  Gpu g;
  CudnnEncoder enc(g.dnn, g.blas, g.stream, s, M);
  DeviceBuffer<float> dp = g.upload(p), dx = g.upload(x), ddy = g.upload(d_y);
  const VecF zeros(p.size(), 0.0f);
  DeviceBuffer<float> g1 = g.upload(zeros), g2 = g.upload(zeros), g3 = g.upload(zeros);
  DeviceBuffer<float> y1(static_cast<size_t>(M * s.out())), y2(y1.size());
  enc.forward(dp.data(), dx.data(), M, y1.data());
  enc.backward(dp.data(), dx.data(), M, ddy.data(), g1.data());
  enc.backward(dp.data(), dx.data(), M, ddy.data(), g2.data());
  CudnnEncoder other(g.dnn, g.blas, g.stream, s, M);
  other.forward(dp.data(), dx.data(), M, y2.data());
  other.backward(dp.data(), dx.data(), M, ddy.data(), g3.data());
  const VecF a = g.download(g1), b = g.download(g2), c = g.download(g3);
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << "two backward runs differ";
  EXPECT_EQ(std::memcmp(a.data(), c.data(), a.size() * sizeof(float)), 0) << "a second encoder's gradient differs";
  EXPECT_TRUE(g.download(y1) == g.download(y2)) << "a second encoder's output differs";
#endif
}

// ---- contract checks ---------------------------------------------------------------------------------------
// backward needs the last forward's rows; M above max_rows is refused; M = 0 does nothing.
TEST_F(GpuEncoder, RejectsRowsOutsideTheContract) {
#if defined(RL2_WITH_CUDA)
  const EncoderShape s = kAwkward;
  const VecF p = init_params(s, 950), x = random_vec(static_cast<size_t>(9 * s.in()), 951);
  const VecF d_y = random_vec(static_cast<size_t>(9 * s.out()), 952);
  Gpu g;
  CudnnEncoder enc(g.dnn, g.blas, g.stream, s, 8);
  DeviceBuffer<float> dp = g.upload(p), dx = g.upload(x), ddy = g.upload(d_y), dg(p.size());
  DeviceBuffer<float> y(static_cast<size_t>(9 * s.out()));
  EXPECT_THROW(enc.forward(dp.data(), dx.data(), 9, y.data()), Error);
  enc.forward(dp.data(), dx.data(), 7, y.data());
  EXPECT_THROW(enc.backward(dp.data(), dx.data(), 5, ddy.data(), dg.data()), Error);
  enc.forward(dp.data(), dx.data(), 0, y.data());
  EXPECT_NO_THROW(enc.backward(dp.data(), dx.data(), 0, ddy.data(), dg.data()));
#endif
}

// ---- the memory formula (no GPU needed) ----------------------------------------------------------------------
// bytes() is positive, grows with the rows, and counts at least the activations kept for backward
// (f1, f2 and y of every row).
TEST(GpuEncoderBytes, GrowsWithRowsAndCoversTheActivations) {
#if !defined(RL2_WITH_CUDA)
  GTEST_SKIP() << test::cudnn_skip_reason();
#else
  for (const EncoderShape& s : {kMaze, kAwkward}) {
    SCOPED_TRACE(name(s));
    double last = 0.0;
    for (const int64_t rows : {int64_t{1}, int64_t{7}, int64_t{300}, int64_t{32768}, int64_t{100000}}) {
      const double b = CudnnEncoder::bytes(s, rows);
      const double kept = 4.0 * static_cast<double>(rows) *
                          static_cast<double>(int64_t{s.filters} * s.h1() * s.w1() + s.flat() + s.out());
      EXPECT_GT(b, last) << rows << " rows";
      EXPECT_GE(b, kept) << rows << " rows";
      last = b;
    }
  }
  std::cout << "  maze shape: " << format_bytes(CudnnEncoder::bytes(kMaze, 1)) << " for 1 row, "
            << format_bytes(CudnnEncoder::bytes(kMaze, 32000)) << " for 32000 rows\n";
#endif
}

}  // namespace
}  // namespace rl2
