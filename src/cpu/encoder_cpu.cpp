// Fast float maze encoder on the CPU (include/rl2/policy/encoder.hpp), the twin of encoder_ref.cpp.
// Parallel layout: the M steps are cut into fixed groups of kGroupRows rows (from row 0, whatever the
// thread count), spread over the OpenMP threads (cpu_blas.hpp). A thread walks its group in pieces of R
// steps, R·H1·W1 ≈ kChunkCols, so that a piece's im2col buffers stay in L2. A convolution over a piece is
// one single-threaded GEMM, W [F, Ci·K·K] x col [Ci·K·K, R·Ho·Wo], whose output is channel-major over the
// piece ([F, R·Ho·Wo]: step r's position q at column r·Ho·Wo + q); bias and ReLU are applied while
// scattering it to the cache's per-step CHW rows. The FC layers are one GEMM per group. Backward and JVP
// run the same groups and pieces (the im2col of the image and of f1 is rebuilt, not kept); backward sums
// each group's weight gradients into the group's own partial vector, and the partials are added in group
// order, so no bit depends on the thread count. Equations: encoder.hpp and encoder_ref.cpp.
#include <algorithm>
#include <climits>

#include "cpu/cpu_blas.hpp"
#include "rl2/core/check.hpp"
#include "rl2/policy/encoder.hpp"

namespace rl2 {
namespace {

using cpu::add_col_sums;
using cpu::gemm;
using cpu::work;

// Columns of a chunk's conv1 GEMM: 2048 keeps col1 [75, 2048] (600 KB) in a 1 MB L2 at the maze size.
constexpr int64_t kChunkCols = 2048;
// Rows of a group: the unit of work of a thread and of the weight gradients' partial sums.
constexpr int64_t kGroupRows = 256;

using Tensors = EncoderTensors<const float>;

// The sizes the loops need, from the shape.
struct Dims {
  int64_t C, H, W, F, K, S, H1, W1, P1, H2, W2, P2, KK1, KK2, in, out, flat, Ni, Ne, E, R;
  explicit Dims(const EncoderShape& s)
      : C(s.channels), H(s.height), W(s.width), F(s.filters), K(s.kernel), S(s.stride), H1(s.h1()), W1(s.w1()),
        P1(H1 * W1), H2(s.h2()), W2(s.w2()), P2(H2 * W2), KK1(C * K * K), KK2(F * K * K), in(s.in()), out(s.out()),
        flat(s.flat()), Ni(s.image_fc), Ne(s.extra_fc), E(s.extra_in), R(std::max<int64_t>(1, kChunkCols / P1)) {}
  // Scratch floats of one thread: col1 [KK1, R·P1], a1 [F, R·P1], col2 [KK2, R·P2], a2 [F, R·P2].
  int64_t thread_floats() const { return (KK1 + F) * R * P1 + (KK2 + F) * R * P2; }
};

// One thread's scratch, carved from the cache's work vector.
struct Scratch {
  float *col1, *a1, *col2, *a2;
  Scratch(const Dims& d, float* base) {
    col1 = base;
    a1 = col1 + d.KK1 * d.R * d.P1;
    col2 = a1 + d.F * d.R * d.P1;
    a2 = col2 + d.KK2 * d.R * d.P2;
  }
};

// im2col of one step: col [(c·K + ky)·K + kx, ·] (row stride ld) at column oy·Wo + ox gets
// src[c·cs + (oy·S + ky)·Wi + ox·S + kx]. cs is the distance between channels: Hi·Wi in a CHW row, the
// chunk's column count in a channel-major chunk buffer.
void im2col(int64_t Ci, int64_t Wi, int64_t K, int64_t S, int64_t Ho, int64_t Wo, const float* src, int64_t cs,
            float* col, int64_t ld) {
  for (int64_t c = 0; c < Ci; ++c) {
    for (int64_t ky = 0; ky < K; ++ky) {
      for (int64_t kx = 0; kx < K; ++kx) {
        float* dst = col + ((c * K + ky) * K + kx) * ld;
        for (int64_t oy = 0; oy < Ho; ++oy) {
          const float* row = src + c * cs + (oy * S + ky) * Wi + kx;
          for (int64_t ox = 0; ox < Wo; ++ox) dst[oy * Wo + ox] = row[ox * S];
        }
      }
    }
  }
}

// The adjoint of im2col: dst[c·cs + (oy·S + ky)·Wi + ox·S + kx] += col[(c·K + ky)·K + kx, oy·Wo + ox].
void col2im_add(int64_t Ci, int64_t Wi, int64_t K, int64_t S, int64_t Ho, int64_t Wo, const float* col, int64_t ld,
                float* dst, int64_t cs) {
  for (int64_t c = 0; c < Ci; ++c) {
    for (int64_t ky = 0; ky < K; ++ky) {
      for (int64_t kx = 0; kx < K; ++kx) {
        const float* src = col + ((c * K + ky) * K + kx) * ld;
        for (int64_t oy = 0; oy < Ho; ++oy) {
          float* row = dst + c * cs + (oy * S + ky) * Wi + kx;
          for (int64_t ox = 0; ox < Wo; ++ox) row[ox * S] += src[oy * Wo + ox];
        }
      }
    }
  }
}

// dst[q] = grad[q] where the ReLU's output o[q] > 0, else 0 (dst may be grad); returns Σ dst, in order (the
// bias's gradient).
float relu_masked(int64_t n, const float* o, const float* grad, float* dst) {
  float sum = 0.0f;
  for (int64_t q = 0; q < n; ++q) {
    dst[q] = o[q] > 0.0f ? grad[q] : 0.0f;
    sum += dst[q];
  }
  return sum;
}

// run(first row, rows) for each run of contiguous rows of a unit: its m rows at each of its steps.
template <class F>
void for_runs(const EncoderUnit& u, F&& run) {
  for (int64_t t = u.t0; t < u.t1; ++t) run(t * u.B + u.b0, u.m);
}

// Scratch for every thread that for_unit_runs may run.
int64_t scratch_floats(const Dims& d) { return omp_get_max_threads() * d.thread_floats(); }

// Runs body(unit, its thread's scratch, first row, rows) for every run of every unit of the M rows, the
// units spread over the threads.
template <class F>
void for_unit_runs(const Dims& d, const std::vector<EncoderUnit>& units, float* scratch, F&& body) {
  cpu::for_units(static_cast<int64_t>(units.size()), [&](int64_t u, int thread) {
    const Scratch sc(d, scratch + thread * d.thread_floats());
    for_runs(units[static_cast<size_t>(u)], [&](int64_t r0, int64_t n) { body(u, sc, r0, n); });
  });
}

// Runs piece(first row, rows) over the pieces of R rows of the rows [r0, r0 + n).
template <class F>
void for_pieces(const Dims& d, int64_t r0, int64_t n, F&& piece) {
  for (int64_t a = r0; a < r0 + n; a += d.R) piece(a, std::min(d.R, r0 + n - a));
}

// col1 = im2col of the images of steps [a, a + nr); a1 [F, nr·P1] = w * col1 (conv1's pre-activation
// with weights w, or its tangent with the direction's weights).
void conv1_piece(const Dims& d, const float* x, int64_t a, int64_t nr, const float* w, const Scratch& sc) {
  const int64_t ld1 = nr * d.P1;
  for (int64_t r = 0; r < nr; ++r) {
    im2col(d.C, d.W, d.K, d.S, d.H1, d.W1, x + (a + r) * d.in, d.H * d.W, sc.col1 + r * d.P1, ld1);
  }
  gemm(false, false, d.F, ld1, d.KK1, w, d.KK1, sc.col1, ld1, 0.0f, sc.a1, ld1);
}

// y [M, n] (row stride ld) = b, row by row.
void fill_rows(int64_t M, int64_t n, const float* b, float* y, int64_t ld) {
  for (int64_t m = 0; m < M; ++m) std::copy(b, b + n, y + m * ld);
}

void check_rows(int64_t M) {
  RL2_CHECK(M >= 0, "encoder: negative size");
  RL2_CHECK(M <= INT_MAX, "encoder: more steps than one BLAS call takes");
}

}  // namespace

std::vector<EncoderUnit> encoder_units(int64_t M, const TrialSegments* segs) {
  std::vector<EncoderUnit> units;
  if (segs == nullptr) {
    for (int64_t r0 = 0; r0 < M; r0 += kGroupRows) units.push_back({M, r0, std::min(kGroupRows, M - r0), 0, 1});
    return units;
  }
  if (M == 0) return units;
  const int64_t B = segs->trials();
  RL2_CHECK(B > 0 && M % B == 0, "encoder: the segments do not cover whole steps of the rows");
  const int64_t T = M / B;
  for (int64_t u = 0; u < segs->count(); ++u) {
    const int64_t b0 = segs->begin(u), m = segs->end(u) - b0, steps = std::max<int64_t>(1, kGroupRows / m);
    for (int64_t t0 = 0; t0 < T; t0 += steps) units.push_back({B, b0, m, t0, std::min(T, t0 + steps)});
  }
  return units;
}

void encoder_forward(const EncoderShape& s, const float* params, const float* x, int64_t M, EncoderCache<float>& c,
                     float* y, const TrialSegments* segs) {
  check_rows(M);
  const Tensors p(s, params);
  const Dims d(s);
  c.resize(s, M);
  if (M == 0) return;
  float* scratch = work(c.work, scratch_floats(d));
  for_unit_runs(d, encoder_units(M, segs), scratch, [&](int64_t, const Scratch& sc, int64_t r0, int64_t n) {
    for_pieces(d, r0, n, [&](int64_t a, int64_t nr) {
      const int64_t ld1 = nr * d.P1, ld2 = nr * d.P2;
      conv1_piece(d, x, a, nr, p.conv1_w, sc);
      for (int64_t r = 0; r < nr; ++r) {
        for (int64_t f = 0; f < d.F; ++f) {
          const float* z = sc.a1 + f * ld1 + r * d.P1;
          float* o = c.f1.data() + ((a + r) * d.F + f) * d.P1;
          for (int64_t q = 0; q < d.P1; ++q) o[q] = std::max(z[q] + p.conv1_b[f], 0.0f);
        }
        im2col(d.F, d.W1, d.K, d.S, d.H2, d.W2, c.f1.data() + (a + r) * d.F * d.P1, d.P1, sc.col2 + r * d.P2, ld2);
      }
      gemm(false, false, d.F, ld2, d.KK2, p.conv2_w, d.KK2, sc.col2, ld2, 0.0f, sc.a2, ld2);
      for (int64_t r = 0; r < nr; ++r) {
        for (int64_t f = 0; f < d.F; ++f) {
          const float* z = sc.a2 + f * ld2 + r * d.P2;
          float* o = c.f2.data() + (a + r) * d.flat + f * d.P2;
          for (int64_t q = 0; q < d.P2; ++q) o[q] = std::max(z[q] + p.conv2_b[f], 0.0f);
        }
      }
    });
    float* ys = c.y.data() + r0 * d.out;
    fill_rows(n, d.Ni, p.image_fc_b, ys, d.out);
    fill_rows(n, d.Ne, p.extra_fc_b, ys + d.Ni, d.out);
    gemm(false, true, n, d.Ni, d.flat, c.f2.data() + r0 * d.flat, d.flat, p.image_fc_w, d.flat, 1.0f, ys, d.out);
    gemm(false, true, n, d.Ne, d.E, x + r0 * d.in + s.image_size(), d.in, p.extra_fc_w, d.E, 1.0f, ys + d.Ni, d.out);
    for (int64_t i = 0; i < n * d.out; ++i) ys[i] = std::max(ys[i], 0.0f);
    std::copy(ys, ys + n * d.out, y + r0 * d.out);
  });
}

void encoder_backward(const EncoderShape& s, const float* params, const float* x, int64_t M,
                      const EncoderCache<float>& c, const float* d_y, float* d_params, const TrialSegments* segs,
                      float* parts) {
  check_rows(M);
  RL2_CHECK(c.M == M, "encoder_backward: cache is from another forward");
  if (M == 0) return;
  const Tensors p(s, params);
  const Dims d(s);
  const int64_t P = encoder_layout(s).total;
  float* dz = work(c.work, M * (d.out + d.flat + 1) + scratch_floats(d));  // masked d_y: [M, out]
  float* d2 = dz + M * d.out;                                              // [M, flat] at f2
  float* ones = d2 + M * d.flat;                                           // [M]
  float* scratch = ones + M;
  std::fill(ones, ones + M, 1.0f);
  // Each unit's weight gradient is its own partial [P], added in unit order (cpu_blas.hpp), or kept in parts.
  const std::vector<EncoderUnit> units = encoder_units(M, segs);
  cpu::for_units_summed(static_cast<int64_t>(units.size()), P, P, d_params, parts, [&](int64_t unit, float* part) {
    const Scratch sc(d, scratch + omp_get_thread_num() * d.thread_floats());
    const EncoderTensors<float> g(s, part);
    std::fill(part, part + P, 0.0f);
    // The FC layers' weight gradients in one GEMM over the unit's rows, gathered contiguous (a segment's
    // rows lie at every step: per run, each GEMM would read and write the whole weight gradient again).
    int64_t U = 0;
    for_runs(units[static_cast<size_t>(unit)], [&](int64_t, int64_t n) { U += n; });
    thread_local std::vector<float> rows;
    float* gdz = work(rows, U * (d.out + d.flat + d.E));  // [U, out] masked d_y
    float* gf2 = gdz + U * d.out;                          // [U, flat] f2
    float* gxe = gf2 + U * d.flat;                         // [U, E] the extra inputs
    int64_t k = 0;
    for_runs(units[static_cast<size_t>(unit)], [&](int64_t r0, int64_t n) {
      float* dzg = dz + r0 * d.out;
      for (int64_t i = 0; i < n * d.out; ++i)
        dzg[i] = c.y[static_cast<size_t>(r0 * d.out + i)] > 0.0f ? d_y[r0 * d.out + i] : 0.0f;
      std::copy_n(dzg, n * d.out, gdz + k * d.out);
      std::copy_n(c.f2.data() + r0 * d.flat, n * d.flat, gf2 + k * d.flat);
      for (int64_t r = 0; r < n; ++r) std::copy_n(x + (r0 + r) * d.in + s.image_size(), d.E, gxe + (k + r) * d.E);
      k += n;
    });
    gemm(true, false, d.Ni, d.flat, U, gdz, d.out, gf2, d.flat, 0.0f, g.image_fc_w, d.flat);
    gemm(true, false, d.Ne, d.E, U, gdz + d.Ni, d.out, gxe, d.E, 0.0f, g.extra_fc_w, d.E);
    add_col_sums(U, d.Ni, gdz, d.out, ones, g.image_fc_b);
    add_col_sums(U, d.Ne, gdz + d.Ni, d.out, ones, g.extra_fc_b);
    for_runs(units[static_cast<size_t>(unit)], [&](int64_t r0, int64_t n) {
      const float* dzg = dz + r0 * d.out;
      gemm(false, false, n, d.flat, d.Ni, dzg, d.out, p.image_fc_w, d.flat, 0.0f, d2 + r0 * d.flat, d.flat);
      for_pieces(d, r0, n, [&](int64_t a, int64_t nr) {
        const int64_t ld1 = nr * d.P1, ld2 = nr * d.P2;
        // a2 [F, nr·P2] = ReLU-masked gradient at conv2's pre-activation; col2 = im2col(f1).
        for (int64_t r = 0; r < nr; ++r) {
          for (int64_t f = 0; f < d.F; ++f) {
            const float* g2 = d2 + (a + r) * d.flat + f * d.P2;
            const float* o = c.f2.data() + (a + r) * d.flat + f * d.P2;
            g.conv2_b[f] += relu_masked(d.P2, o, g2, sc.a2 + f * ld2 + r * d.P2);
          }
          im2col(d.F, d.W1, d.K, d.S, d.H2, d.W2, c.f1.data() + (a + r) * d.F * d.P1, d.P1, sc.col2 + r * d.P2, ld2);
        }
        gemm(false, true, d.F, d.KK2, ld2, sc.a2, ld2, sc.col2, ld2, 1.0f, g.conv2_w, d.KK2);
        // col2 := W2ᵀ a2, the gradient at conv2's columns, then summed back onto f1's positions in a1.
        gemm(true, false, d.KK2, ld2, d.F, p.conv2_w, d.KK2, sc.a2, ld2, 0.0f, sc.col2, ld2);
        std::fill(sc.a1, sc.a1 + d.F * ld1, 0.0f);
        for (int64_t r = 0; r < nr; ++r) {
          col2im_add(d.F, d.W1, d.K, d.S, d.H2, d.W2, sc.col2 + r * d.P2, ld2, sc.a1 + r * d.P1, ld1);
          for (int64_t f = 0; f < d.F; ++f) {
            float* dzc = sc.a1 + f * ld1 + r * d.P1;
            g.conv1_b[f] += relu_masked(d.P1, c.f1.data() + ((a + r) * d.F + f) * d.P1, dzc, dzc);
          }
          im2col(d.C, d.W, d.K, d.S, d.H1, d.W1, x + (a + r) * d.in, d.H * d.W, sc.col1 + r * d.P1, ld1);
        }
        gemm(false, true, d.F, d.KK1, ld1, sc.a1, ld1, sc.col1, ld1, 1.0f, g.conv1_w, d.KK1);
      });
    });
  });
}

void encoder_jvp(const EncoderShape& s, const float* params, const float* x, int64_t M, const EncoderCache<float>& c,
                 const float* v, float* d_y, const TrialSegments* segs) {
  check_rows(M);
  RL2_CHECK(c.M == M, "encoder_jvp: cache is from another forward");
  if (M == 0) return;
  const Tensors p(s, params);
  const Tensors dv(s, v);
  const Dims d(s);
  float* t2 = work(c.work, M * d.flat + scratch_floats(d));  // tangent of f2: [M, flat]
  float* scratch = t2 + M * d.flat;
  for_unit_runs(d, encoder_units(M, segs), scratch, [&](int64_t, const Scratch& sc, int64_t r0, int64_t n) {
    for_pieces(d, r0, n, [&](int64_t a, int64_t nr) {
      const int64_t ld1 = nr * d.P1, ld2 = nr * d.P2;
      // a1 [F, nr·P1] = tangent of f1 = mask ⊙ (V1 * image + vb1).
      conv1_piece(d, x, a, nr, dv.conv1_w, sc);
      for (int64_t r = 0; r < nr; ++r) {
        for (int64_t f = 0; f < d.F; ++f) {
          const float* o = c.f1.data() + ((a + r) * d.F + f) * d.P1;
          float* t = sc.a1 + f * ld1 + r * d.P1;
          for (int64_t q = 0; q < d.P1; ++q) t[q] = o[q] > 0.0f ? t[q] + dv.conv1_b[f] : 0.0f;
        }
        im2col(d.F, d.W1, d.K, d.S, d.H2, d.W2, c.f1.data() + (a + r) * d.F * d.P1, d.P1, sc.col2 + r * d.P2, ld2);
      }
      // a2 = V2 * f1 + W2 * t1, then the tangent of f2 = mask ⊙ (a2 + vb2).
      gemm(false, false, d.F, ld2, d.KK2, dv.conv2_w, d.KK2, sc.col2, ld2, 0.0f, sc.a2, ld2);
      for (int64_t r = 0; r < nr; ++r) {
        im2col(d.F, d.W1, d.K, d.S, d.H2, d.W2, sc.a1 + r * d.P1, ld1, sc.col2 + r * d.P2, ld2);
      }
      gemm(false, false, d.F, ld2, d.KK2, p.conv2_w, d.KK2, sc.col2, ld2, 1.0f, sc.a2, ld2);
      for (int64_t r = 0; r < nr; ++r) {
        for (int64_t f = 0; f < d.F; ++f) {
          const float* z = sc.a2 + f * ld2 + r * d.P2;
          const float* o = c.f2.data() + (a + r) * d.flat + f * d.P2;
          float* t = t2 + (a + r) * d.flat + f * d.P2;
          for (int64_t q = 0; q < d.P2; ++q) t[q] = o[q] > 0.0f ? z[q] + dv.conv2_b[f] : 0.0f;
        }
      }
    });
    float* dyg = d_y + r0 * d.out;
    const float* f2 = c.f2.data() + r0 * d.flat;
    fill_rows(n, d.Ni, dv.image_fc_b, dyg, d.out);
    fill_rows(n, d.Ne, dv.extra_fc_b, dyg + d.Ni, d.out);
    gemm(false, true, n, d.Ni, d.flat, f2, d.flat, dv.image_fc_w, d.flat, 1.0f, dyg, d.out);
    gemm(false, true, n, d.Ni, d.flat, t2 + r0 * d.flat, d.flat, p.image_fc_w, d.flat, 1.0f, dyg, d.out);
    gemm(false, true, n, d.Ne, d.E, x + r0 * d.in + s.image_size(), d.in, dv.extra_fc_w, d.E, 1.0f, dyg + d.Ni, d.out);
    for (int64_t i = 0; i < n * d.out; ++i) dyg[i] = c.y[static_cast<size_t>(r0 * d.out + i)] > 0.0f ? dyg[i] : 0.0f;
  });
}

}  // namespace rl2
