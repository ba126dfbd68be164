// Fast float GRU on the CPU (include/rl2/policy/gru.hpp): the product's hot path when no GPU is used.
// Parallel layout: the B trials are cut into the fixed chunks of core/chunks.hpp (or the caller's segments),
// spread over the OpenMP threads; each segment runs the whole time loop on its own (trials never interact,
// so there is no synchronisation per step): per step one [b, I] x [I, 3H] and one [b, H] x [H, 3H]
// single-threaded OpenBLAS GEMM for the gate pre-activations (backward: [b, O] x [O, H] and [b, 3H] x
// [3H, H] carrying dh back in time), then the gate math of each trial in a vectorised loop, then the head:
// one GEMM per step on the segment's rows. Backward's weight gradients are summed per segment over its T·b
// rows (one GEMM each, on the segment's rows gathered contiguous) and the segment sums added in order, so
// no bit depends on the thread count. A segment computes alone, so no bit depends on the rows around it
// either: a rank holding some of the batch's segments computes them exactly as one process does
// (train/shard.hpp). Scratch lives in GruCache::work, so no time loop allocates.
// Equations and the derivation of backward and JVP: gru.hpp and gru_ref.cpp (same gate order r, z, n).
#include <algorithm>
#include <climits>
#include <cmath>

#include "cpu/cpu_blas.hpp"
#include "rl2/core/chunks.hpp"
#include "rl2/core/check.hpp"
#include "rl2/policy/gru.hpp"
#include "rl2/policy/gru_gates.hpp"

namespace rl2 {
namespace {

using cpu::add_col_sums;
using cpu::gather_steps;
using cpu::gemm;
using cpu::scatter_steps;
using cpu::work;

// Trials are independent through time, so each segment of trials (core/chunks.hpp; by default the chunks
// of B trials of T steps) runs the whole time loop with no synchronisation per step: body(unit, b0, b1).
template <class F>
void for_segments(const TrialSegments& segs, F&& body) {
  cpu::for_units(segs.count(), [&](int64_t u, int) { body(u, segs.begin(u), segs.end(u)); });
}

TrialSegments segments_or_chunks(const TrialSegments* segs, int64_t B, int64_t T) {
  if (segs == nullptr) return TrialSegments::chunks(B, T);
  RL2_CHECK(segs->trials() == B, "GRU: the segments do not cover the batch");
  return *segs;
}

using Tensors = GruTensors<const float>;

void check_sizes(int64_t T, int64_t B) {
  RL2_CHECK(T >= 0 && B >= 0, "GRU: negative size");
  RL2_CHECK(T * B <= INT_MAX, "GRU: T * B rows exceed what one BLAS call takes");
}

// The element-wise kernels below handle one trial's H units; __restrict lets the compiler vectorise them.

// Forward gates of one trial. gi, gh: [3H] = W_ih x, W_hh h (no biases); b_ih, b_hh: [3H];
// h, h_next: [H]; r, z, n, hn: [H] kept for backward when kKeep (the rollout step keeps nothing).
template <bool kKeep>
void forward_row(int64_t H, const float* __restrict gi, const float* __restrict gh, const float* __restrict b_ih,
                 const float* __restrict b_hh, const float* __restrict h, float* __restrict h_next,
                 float* __restrict r, float* __restrict z, float* __restrict n, float* __restrict hn) {
  // The inlined gru_unit reads through copies of the restrict pointers, which GCC does not trace: ivdep
  // says what __restrict says (no iteration writes what another reads), so the loop vectorises.
#pragma GCC ivdep
  for (int64_t j = 0; j < H; ++j) {
    float rj, zj, nj, hnj;  // gru_gates.hpp: the CUDA rollout's gate arithmetic too
    h_next[j] = gru_unit(H, j, gi, gh, b_ih, b_hh, h[j], rj, zj, nj, hnj);
    if constexpr (kKeep) {
      r[j] = rj;
      z[j] = zj;
      n[j] = nj;
      hn[j] = hnj;
    }
  }
}

// Backward through the gates of one trial. dh: [H], in: gradient reaching h', out: dh ⊙ z (the direct
// path to h; the caller adds W_hhᵀ dg). dg: [3H] = [da_r, da_z, dhn] (hidden side); da_n: [H].
void backward_row(int64_t H, float* __restrict dh, const float* __restrict h, const float* __restrict r,
                  const float* __restrict z, const float* __restrict n, const float* __restrict hn,
                  float* __restrict dg, float* __restrict da_n) {
  for (int64_t j = 0; j < H; ++j) {
    const float dz = dh[j] * (h[j] - n[j]);
    const float dan = dh[j] * (1.0f - z[j]) * (1.0f - n[j] * n[j]);
    dg[j] = dan * hn[j] * r[j] * (1.0f - r[j]);
    dg[H + j] = dz * z[j] * (1.0f - z[j]);
    dg[2 * H + j] = dan * r[j];
    da_n[j] = dan;
    dh[j] *= z[j];
  }
}

// Tangent of one trial's step. tgi: [3H] = V_ih x; tgh: [3H] = V_hh h + W_hh th; vb_ih, vb_hh: [3H] bias
// directions; h, r, z, n, hn: [H] from the forward; th, th_next: [H] tangents of h and h'.
void jvp_row(int64_t H, const float* __restrict tgi, const float* __restrict tgh, const float* __restrict vb_ih,
             const float* __restrict vb_hh, const float* __restrict h, const float* __restrict r,
             const float* __restrict z, const float* __restrict n, const float* __restrict hn,
             const float* __restrict th, float* __restrict th_next) {
  for (int64_t j = 0; j < H; ++j) {
    const float tr = r[j] * (1.0f - r[j]) * (tgi[j] + vb_ih[j] + tgh[j] + vb_hh[j]);
    const float tz = z[j] * (1.0f - z[j]) * (tgi[H + j] + vb_ih[H + j] + tgh[H + j] + vb_hh[H + j]);
    const float thn = tgh[2 * H + j] + vb_hh[2 * H + j];
    const float tn = (1.0f - n[j] * n[j]) * (tgi[2 * H + j] + vb_ih[2 * H + j] + tr * hn[j] + r[j] * thn);
    th_next[j] = tz * (h[j] - n[j]) + (1.0f - z[j]) * tn + z[j] * th[j];
  }
}

// out [rows, O] = h [rows, H] head_wᵀ + head_b.
void head_rows(int64_t rows, int64_t H, int64_t O, const float* head_w, const float* head_b, const float* h,
               float* out) {
  for (int64_t i = 0; i < rows; ++i) std::copy(head_b, head_b + O, out + i * O);
  gemm(false, true, rows, O, H, h, H, head_w, H, 1.0f, out, O);
}

// head_rows on the rows b0 .. b0 + m of every step of h [T, B, H] and out [T, B, O]: one GEMM per step on
// the segment's own rows, so a segment's outputs never depend on the rows around it.
void head_segment(int64_t T, int64_t B, int64_t b0, int64_t m, int64_t H, int64_t O, const float* head_w,
                  const float* head_b, const float* h, float* out) {
  for (int64_t t = 0; t < T; ++t) head_rows(m, H, O, head_w, head_b, h + (t * B + b0) * H, out + (t * B + b0) * O);
}

}  // namespace

void gru_forward(const GruShape& s, const float* params, const float* x, int64_t T, int64_t B, GruCache<float>& c,
                 float* out, const TrialSegments* segs) {
  check_sizes(T, B);
  const Tensors p(s, params);
  const int64_t I = s.input, H = s.hidden, O = s.out, G = 3 * H, BH = B * H;
  c.resize(s, T, B);
  std::fill(c.h.begin(), c.h.begin() + BH, 0.0f);
  if (T == 0 || B == 0) return;
  float* gi = work(c.work, 2 * B * G);  // [B, 3H]
  float* gh = gi + B * G;               // [B, 3H]
  for_segments(segments_or_chunks(segs, B, T), [&](int64_t, int64_t b0, int64_t b1) {
    const int64_t m = b1 - b0;
    float* gis = gi + b0 * G;
    float* ghs = gh + b0 * G;
    for (int64_t t = 0; t < T; ++t) {
      gemm(false, true, m, G, I, x + (t * B + b0) * I, I, p.w_ih, I, 0.0f, gis, G);
      if (t == 0) {
        std::fill(ghs, ghs + m * G, 0.0f);  // h_0 = 0
      } else {
        gemm(false, true, m, G, H, c.h.data() + t * BH + b0 * H, H, p.w_hh, H, 0.0f, ghs, G);
      }
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t e = t * BH + b * H;  // trial b at step t in the [T, B, H] tensors
        forward_row<true>(H, gi + b * G, gh + b * G, p.b_ih, p.b_hh, c.h.data() + e, c.h.data() + BH + e,
                          c.r.data() + e, c.z.data() + e, c.n.data() + e, c.hn.data() + e);
      }
    }
    head_segment(T, B, b0, m, H, O, p.head_w, p.head_b, c.h.data() + BH, out);
  });
}

void gru_backward(const GruShape& s, const float* params, const float* x, int64_t T, int64_t B,
                  const GruCache<float>& c, const float* d_out, float* d_params, float* d_x, const TrialSegments* segs,
                  float* parts) {
  check_sizes(T, B);
  RL2_CHECK(c.T == T && c.B == B, "gru_backward: cache is from another forward");
  if (T == 0 || B == 0) return;
  const Tensors p(s, params);
  const GruLayout l = gru_layout(s);
  const int64_t I = s.input, H = s.hidden, O = s.out, G = 3 * H, BH = B * H, P = l.total;
  const TrialSegments ch = segments_or_chunks(segs, B, T);
  // Per segment of up to b trials, its region: its partial gradient g [P] (for_units_summed adds them in
  // segment order, or keeps them in parts); dh [b, H] (the gradient reaching h[t+1]); dgh [T, b, 3H]
  // (hidden-side gate grads [da_r, da_z, dhn]); dan [T, b, H] (da_n, the input side of the n gate);
  // hs [T+1, b, H], xs [T, b, I], ds [T, b, O]: the segment's rows of h, x and d_out; ones [T·b].
  const int64_t b = ch.max_size(), per_chunk = P + b * H + T * b * (G + H + I + O + 1) + (T + 1) * b * H;
  cpu::for_units_summed(ch.count(), P, per_chunk, d_params, parts, [&](int64_t chunk, float* g) {
    const int64_t b0 = ch.begin(chunk), m = ch.end(chunk) - b0, rows = T * m;
    float* dh = g + P;
    float* dgh = dh + m * H;
    float* dan = dgh + rows * G;
    float* hs = dan + rows * H;
    float* xs = hs + (T + 1) * m * H;
    float* ds = xs + rows * I;
    float* ones = ds + rows * O;
    std::fill(dh, dh + m * H, 0.0f);
    for (int64_t t = T - 1; t >= 0; --t) {
      float* dgs = dgh + t * m * G;
      gemm(false, false, m, H, O, d_out + (t * B + b0) * O, O, p.head_w, H, 1.0f, dh, H);  // dh += d_out_t head_w
      for (int64_t j = 0; j < m; ++j) {
        const int64_t e = t * BH + (b0 + j) * H;
        backward_row(H, dh + j * H, c.h.data() + e, c.r.data() + e, c.z.data() + e, c.n.data() + e,
                     c.hn.data() + e, dgs + j * G, dan + (t * m + j) * H);
      }
      if (t > 0) gemm(false, false, m, H, G, dgs, G, p.w_hh, H, 1.0f, dh, H);  // dh += dgh_t W_hh
    }
    gather_steps(c.h.data(), T + 1, B, H, b0, m, hs);
    gather_steps(x, T, B, I, b0, m, xs);
    gather_steps(d_out, T, B, O, b0, m, ds);
    std::fill(ones, ones + rows, 1.0f);
    std::fill(g, g + P, 0.0f);
    gemm(true, false, G, H, rows, dgh, G, hs, H, 0.0f, g + l.weight_hh, H);                // dghᵀ h[0..T)
    gemm(true, false, 2 * H, I, rows, dgh, G, xs, I, 0.0f, g + l.weight_ih, I);            // r, z rows
    gemm(true, false, H, I, rows, dan, H, xs, I, 0.0f, g + l.weight_ih + 2 * H * I, I);    // n rows
    gemm(true, false, O, H, rows, ds, O, hs + m * H, H, 0.0f, g + l.head_w, H);            // d_outᵀ h[1..T]
    add_col_sums(rows, G, dgh, G, ones, g + l.bias_hh);
    add_col_sums(rows, 2 * H, dgh, G, ones, g + l.bias_ih);
    add_col_sums(rows, H, dan, H, ones, g + l.bias_ih + 2 * H);
    add_col_sums(rows, O, ds, O, ones, g + l.head_b);
    if (d_x) {  // the chunk's rows of d_x, computed contiguous in xs (x's rows are no longer needed)
      gemm(false, false, rows, I, 2 * H, dgh, G, p.w_ih, I, 0.0f, xs, I);
      gemm(false, false, rows, I, H, dan, H, p.w_ih + 2 * H * I, I, 1.0f, xs, I);
      scatter_steps(xs, T, B, I, b0, m, d_x);
    }
  });
}

void gru_jvp(const GruShape& s, const float* params, const float* x, int64_t T, int64_t B, const GruCache<float>& c,
             const float* v, float* d_out, const float* dx, const TrialSegments* segs) {
  check_sizes(T, B);
  RL2_CHECK(c.T == T && c.B == B, "gru_jvp: cache is from another forward");
  if (T == 0 || B == 0) return;
  const Tensors p(s, params);
  const Tensors dv(s, v);
  const int64_t I = s.input, H = s.hidden, O = s.out, G = 3 * H, BH = B * H;
  float* tgi = work(c.work, 2 * B * G + BH + T * BH);  // x V_ihᵀ (+ dx W_ihᵀ): [B, 3H]
  float* tgh = tgi + B * G;                            // h V_hhᵀ + th W_hhᵀ: [B, 3H]
  float* zeros = tgh + B * G;                          // tangent of h[0]: [B, H]
  float* th = zeros + BH;                              // tangents of h[1..T]: [T, B, H]
  std::fill(zeros, zeros + BH, 0.0f);
  for_segments(segments_or_chunks(segs, B, T), [&](int64_t, int64_t b0, int64_t b1) {
    const int64_t m = b1 - b0;
    float* tgis = tgi + b0 * G;
    float* tghs = tgh + b0 * G;
    for (int64_t t = 0; t < T; ++t) {
      const float* th_prev = t > 0 ? th + (t - 1) * BH : zeros;
      gemm(false, true, m, G, I, x + (t * B + b0) * I, I, dv.w_ih, I, 0.0f, tgis, G);
      if (dx) gemm(false, true, m, G, I, dx + (t * B + b0) * I, I, p.w_ih, I, 1.0f, tgis, G);
      if (t == 0) {
        std::fill(tghs, tghs + m * G, 0.0f);
      } else {
        gemm(false, true, m, G, H, c.h.data() + t * BH + b0 * H, H, dv.w_hh, H, 0.0f, tghs, G);
        gemm(false, true, m, G, H, th_prev + b0 * H, H, p.w_hh, H, 1.0f, tghs, G);
      }
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t e = t * BH + b * H;
        jvp_row(H, tgi + b * G, tgh + b * G, dv.b_ih, dv.b_hh, c.h.data() + e, c.r.data() + e, c.z.data() + e,
                c.n.data() + e, c.hn.data() + e, th_prev + b * H, th + e);
      }
    }
    head_segment(T, B, b0, m, H, O, dv.head_w, dv.head_b, c.h.data() + BH, d_out);  // V_Hw h' + v_Hb
    for (int64_t t = 0; t < T; ++t)                                                  // + H_w th'
      gemm(false, true, m, O, H, th + t * BH + b0 * H, H, p.head_w, H, 1.0f, d_out + (t * B + b0) * O, O);
  });
}

void gru_step(const GruShape& s, const float* params, const float* x, const float* h, int64_t B, float* h_next,
              float* out, const TrialSegments* segs) {
  check_sizes(1, B);
  if (B == 0) return;
  const Tensors p(s, params);
  const int64_t I = s.input, H = s.hidden, O = s.out, G = 3 * H;
  thread_local std::vector<float> scratch;
  float* gi = work(scratch, 2 * B * G);  // [B, 3H]
  float* gh = gi + B * G;                // [B, 3H]
  for_segments(segments_or_chunks(segs, B, 1), [&](int64_t, int64_t b0, int64_t b1) {
    const int64_t m = b1 - b0;
    gemm(false, true, m, G, I, x + b0 * I, I, p.w_ih, I, 0.0f, gi + b0 * G, G);
    gemm(false, true, m, G, H, h + b0 * H, H, p.w_hh, H, 0.0f, gh + b0 * G, G);
    for (int64_t b = b0; b < b1; ++b) {
      forward_row<false>(H, gi + b * G, gh + b * G, p.b_ih, p.b_hh, h + b * H, h_next + b * H, nullptr, nullptr,
                         nullptr, nullptr);
    }
    head_rows(m, H, O, p.head_w, p.head_b, h_next + b0 * H, out + b0 * O);
  });
}

}  // namespace rl2
