// Private helpers of the fast float CPU path (gru_cpu.cpp, encoder_cpu.cpp): row-major OpenBLAS wrappers
// and the one parallel layout they share: fixed units of work (trial chunks, row groups) spread over the
// OpenMP threads, each unit's GEMMs single-threaded, partial sums per unit added in unit order.
#pragma once

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace rl2::cpu {

// Every parallel loop of the CPU backend runs BLAS single-threaded: BLAS's own threading splits a call
// in a way that depends on its thread count, and the CPU backend's results must not (core/chunks.hpp).
// Set once, on the first call (never during static initialisation).
inline void single_threaded_blas() {
  static const bool once = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)once;
}

// Row-major C [m, n] = op(A) [m, k] op(B) [k, n] + beta C; op transposes when the flag is set.
inline void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  single_threaded_blas();
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), 1.0f, a, static_cast<int>(lda), b,
              static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

// y [n] += column sums of the row-major A [m, n] (leading dimension lda); ones: [m] of 1.
inline void add_col_sums(int64_t m, int64_t n, const float* a, int64_t lda, const float* ones, float* y) {
  single_threaded_blas();
  cblas_sgemv(CblasRowMajor, CblasTrans, static_cast<int>(m), static_cast<int>(n), 1.0f, a, static_cast<int>(lda),
              ones, 1, 1.0f, y, 1);
}

// Grows a scratch vector to at least n elements (never shrinks, so repeated calls do not allocate).
inline float* work(std::vector<float>& w, int64_t n) {
  if (static_cast<int64_t>(w.size()) < n) w.resize(static_cast<size_t>(n));
  return w.data();
}

// Runs body(unit, thread) for every unit in [0, count) on the OpenMP threads (dynamically: units may
// differ in cost), thread in [0, omp_get_max_threads()) naming the caller's per-thread scratch. Units are
// fixed by the caller from the problem alone (trial chunks, row groups), every BLAS call is made per unit
// and single-threaded, and each unit writes only its own outputs and partial sums: which thread runs a
// unit, and how many threads there are, changes no bit of the result.
template <class F>
void for_units(int64_t count, F&& body) {
  if (count <= 1 || omp_get_max_threads() <= 1 || omp_in_parallel()) {
    for (int64_t u = 0; u < count; ++u) body(u, 0);
    return;
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t u = 0; u < count; ++u) body(u, omp_get_thread_num());
}

// Units whose partial sums are in memory at once (a fixed number, so the sums' order never depends on
// the thread count); it bounds memory at kWaveUnits regions however large the batch.
constexpr int64_t kWaveUnits = 64;

// Runs body(unit, region) for every unit in [0, count), in waves of kWaveUnits units spread over the
// threads (for_units). Each unit gets its own region of `stride` floats (stride >= n) whose first n floats
// it must fill with its partial sum; the rest is its scratch. After each wave the partials are added to a
// float64 accumulator in unit order, and at the end out [n] += the accumulator: a sum in unit order,
// parallel over elements only. With parts, nothing is summed: unit u's partial goes to parts[u·n, (u+1)·n)
// for a caller that adds them itself in the same order (ranks, train/shard.hpp).
template <class F>
void for_units_summed(int64_t count, int64_t n, int64_t stride, float* out, float* parts, F&& body) {
  if (count <= 0) return;
  thread_local std::vector<float> regions;
  const int64_t wave = std::min(count, kWaveUnits);
  float* base = work(regions, wave * stride);
  std::vector<double> acc(parts ? 0 : static_cast<size_t>(n), 0.0);
  for (int64_t w0 = 0; w0 < count; w0 += wave) {
    const int64_t units = std::min(count - w0, wave);
    for_units(units, [&](int64_t u, int) { body(w0 + u, base + u * stride); });
    if (parts) {
      for (int64_t u = 0; u < units; ++u) std::copy(base + u * stride, base + u * stride + n, parts + (w0 + u) * n);
      continue;
    }
#pragma omp parallel for schedule(static) if (n * units >= (int64_t{1} << 16))
    for (int64_t j = 0; j < n; ++j) {
      double s = acc[j];
      for (int64_t u = 0; u < units; ++u) s += base[u * stride + j];
      acc[j] = s;
    }
  }
  if (!parts)
    for (int64_t j = 0; j < n; ++j) out[j] = static_cast<float>(out[j] + acc[j]);
}

// dst [T, m, w] (contiguous) = rows b0 .. b0 + m of every step of the time-major src [T, B, w].
inline void gather_steps(const float* src, int64_t T, int64_t B, int64_t w, int64_t b0, int64_t m, float* dst) {
  for (int64_t t = 0; t < T; ++t) std::copy(src + (t * B + b0) * w, src + (t * B + b0 + m) * w, dst + t * m * w);
}

// The inverse: rows b0 .. b0 + m of every step of the time-major dst [T, B, w] = src [T, m, w].
inline void scatter_steps(const float* src, int64_t T, int64_t B, int64_t w, int64_t b0, int64_t m, float* dst) {
  for (int64_t t = 0; t < T; ++t) std::copy(src + t * m * w, src + (t + 1) * m * w, dst + (t * B + b0) * w);
}

}  // namespace rl2::cpu
