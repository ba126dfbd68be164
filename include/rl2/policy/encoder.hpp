// The maze policy's observation encoder (DESIGN.md section 6), applied to each step on its own (no
// recurrence): its output y is the GRU's input (gru.hpp). Per step, x = [image (C·H·W, CHW, as the maze
// observes it), extra (onehot(prev a), prev r, prev d)], exactly what encode_input (policy.hpp) writes:
//   f1 = relu(conv1(image))    conv1: C -> F filters, K×K, stride S, no padding   [F, H1, W1]
//   f2 = relu(conv2(f1))       conv2: F -> F, K×K, stride S, no padding          [F, H2, W2], flattened CHW
//   y  = [relu(W_img f2 + b_img), relu(W_ext extra + b_ext)]                      [image_fc + extra_fc]
// with H1 = (H − K)/S + 1 (floor), H2 = (H1 − K)/S + 1, likewise W; torch's Conv2d/Linear/ReLU, and
// relu'(0) = 0 as torch. The other inputs get their own FC (extra_fc = 32 units: they are |A| + 2 = 5
// numbers, and a narrow branch keeps the GRU input I = 256 + 32 = 288 small).
// Cost at the maze size (3×30×40, F = 16, K = 5, S = 2: f1 16×13×18, f2 16×5×7 = 560; 151 440 parameters),
// per step, in multiply-adds: conv1 280 800, conv2 224 000, image_fc 143 360, extra_fc 160, so forward
// ≈ 1.30 MFLOP, backward (weight gradients, input gradients of all but conv1) ≈ 2.03 MFLOP and JVP
// ≈ 2.03 MFLOP; a GRU-256 step with I = 288 is ≈ 0.84 MFLOP forward.
// Two CPU forms share one parameter layout: `*_ref` (obvious loops, float and double) and the fast float
// path (im2col + OpenBLAS GEMMs, steps spread over OpenMP threads). Forward, backward (parameter
// gradients; the image's gradient is never needed) and forward-mode JVP for the Gauss-Newton product of
// TRPO (DESIGN.md section 4), which then moves the GRU's input: gru_jvp's dx.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "rl2/core/chunks.hpp"

namespace rl2 {

struct EncoderShape {
  int32_t channels = 3, height = 30, width = 40;  // image, CHW
  int32_t filters = 16, kernel = 5, stride = 2;   // both conv layers
  int32_t image_fc = 256;                         // units of the image branch's FC
  int32_t extra_in = 5;                           // |A| + 2: onehot(prev a), prev r, prev d
  int32_t extra_fc = 32;                          // units of the extra inputs' FC

  int32_t h1() const { return (height - kernel) / stride + 1; }
  int32_t w1() const { return (width - kernel) / stride + 1; }
  int32_t h2() const { return (h1() - kernel) / stride + 1; }
  int32_t w2() const { return (w1() - kernel) / stride + 1; }
  int64_t image_size() const { return int64_t{channels} * height * width; }
  int64_t flat() const { return int64_t{filters} * h2() * w2(); }  // image_fc's fan-in
  int64_t in() const { return image_size() + extra_in; }            // per-step input x
  int32_t out() const { return image_fc + extra_fc; }               // per-step output y = the GRU's input
};

// Offsets (in elements) of each tensor inside ONE flat parameter vector, in this order, row-major,
// shapes and names as torch: conv1.weight [F, C, K, K], conv1.bias [F], conv2.weight [F, F, K, K],
// conv2.bias [F], image_fc.weight [image_fc, F·H2·W2], image_fc.bias [image_fc],
// extra_fc.weight [extra_fc, extra_in], extra_fc.bias [extra_fc]. `total` is the vector's length.
struct EncoderLayout {
  int64_t conv1_w, conv1_b, conv2_w, conv2_b, image_fc_w, image_fc_b, extra_fc_w, extra_fc_b, total;
};
// Checks the shape (positive sizes, an image large enough for both convolutions).
EncoderLayout encoder_layout(const EncoderShape& shape);

// Pointers to each tensor inside one flat parameter (or gradient, or direction) vector; T is Real or
// const Real.
template <class T>
struct EncoderTensors {
  T *conv1_w, *conv1_b, *conv2_w, *conv2_b, *image_fc_w, *image_fc_b, *extra_fc_w, *extra_fc_b;
  EncoderTensors(const EncoderShape& s, T* p) {
    const EncoderLayout l = encoder_layout(s);
    conv1_w = p + l.conv1_w;
    conv1_b = p + l.conv1_b;
    conv2_w = p + l.conv2_w;
    conv2_b = p + l.conv2_b;
    image_fc_w = p + l.image_fc_w;
    image_fc_b = p + l.image_fc_b;
    extra_fc_w = p + l.extra_fc_w;
    extra_fc_b = p + l.extra_fc_b;
  }
};

// Initialisation like torch's Conv2d and Linear defaults: every tensor, biases included,
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = C·K·K, F·K·K, F·H2·W2, extra_in. The bits come from
// RandomStream(seed, trial 0, step 1, Purpose(kInit + 8 + which)), read in layout order: a purpose of its
// own per network (`which`: 0 policy, 1 baseline, ...; below 8), and step 1 keeps it apart from every
// gru_init stream (step 0) whatever its `which`. params: [encoder_layout(shape).total].
void encoder_init(const EncoderShape& shape, uint64_t seed, uint32_t which, float* params);

// Everything forward keeps for backward and JVP, for M steps (rows). The ReLU masks are `> 0` on these
// post-activation values (relu'(0) = 0).
template <class Real>
struct EncoderCache {
  int64_t M = 0;
  std::vector<Real> f1;  // [M, F, H1, W1] conv1 output after ReLU
  std::vector<Real> f2;  // [M, F·H2·W2] conv2 output after ReLU, flattened CHW: image_fc's input
  std::vector<Real> y;   // [M, out] the output (its ReLU mask)
  // Scratch of the fast path (im2col buffers, per-thread gradients), reused between calls so they do not
  // allocate; not part of the forward's result. Mutable because backward and JVP take the cache as const:
  // one call at a time per cache.
  mutable std::vector<Real> work;
  void resize(const EncoderShape& shape, int64_t rows) {
    M = rows;
    const size_t m = static_cast<size_t>(rows);
    f1.resize(m * static_cast<size_t>(shape.filters * shape.h1() * shape.w1()));
    f2.resize(m * static_cast<size_t>(shape.flat()));
    y.resize(m * static_cast<size_t>(shape.out()));
  }
};

// ---- references (float and double) ----------------------------------------------------------------
// x: [M, in] per-step inputs; y: [M, out]. Resizes and fills cache.
template <class Real>
void encoder_forward_ref(const EncoderShape& shape, const Real* params, const Real* x, int64_t M,
                         EncoderCache<Real>& cache, Real* y);
// d_y: [M, out] gradient of the loss w.r.t. y. ACCUMULATES (+=) into d_params [total].
// cache: from the forward at params, x.
template <class Real>
void encoder_backward_ref(const EncoderShape& shape, const Real* params, const Real* x, int64_t M,
                          const EncoderCache<Real>& cache, const Real* d_y, Real* d_params);
// Forward mode: d_y [M, out] (overwritten) = directional derivative of y along the parameter direction
// v [total], x fixed. cache: from the forward at params, x.
template <class Real>
void encoder_jvp_ref(const EncoderShape& shape, const Real* params, const Real* x, int64_t M,
                     const EncoderCache<Real>& cache, const Real* v, Real* d_y);

// ---- fast float path (im2col + OpenBLAS + OpenMP), same contracts as the references -----------------
// The M rows are cut into units spread over the OpenMP threads (BLAS single-threaded, as gru_cpu.cpp).
// Backward sums each unit's weight gradient alone and adds them in unit order; with parts it keeps them,
// [units, size] (gru.hpp).

// A unit of the encoder's work: the m rows b0 .. b0 + m of each step t0 .. t1 - 1 of a time-major batch of
// B rows per step. Without segments: groups of 256 consecutive rows (B = M, one step). With segments (of
// B trials, M = T·B rows; network.hpp): each segment's rows in blocks of about 256 rows (256 / m steps),
// segment after segment, so a segment computes alone, whatever rows surround it (train/shard.hpp).
struct EncoderUnit {
  int64_t B, b0, m, t0, t1;
};
std::vector<EncoderUnit> encoder_units(int64_t M, const TrialSegments* segs);
void encoder_forward(const EncoderShape& shape, const float* params, const float* x, int64_t M,
                     EncoderCache<float>& cache, float* y, const TrialSegments* segs = nullptr);
void encoder_backward(const EncoderShape& shape, const float* params, const float* x, int64_t M,
                      const EncoderCache<float>& cache, const float* d_y, float* d_params,
                      const TrialSegments* segs = nullptr, float* parts = nullptr);
void encoder_jvp(const EncoderShape& shape, const float* params, const float* x, int64_t M,
                 const EncoderCache<float>& cache, const float* v, float* d_y, const TrialSegments* segs = nullptr);

}  // namespace rl2
