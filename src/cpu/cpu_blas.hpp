// Private helpers of the fast float CPU path (gru_cpu.cpp, encoder_cpu.cpp): row-major OpenBLAS wrappers
// and the one parallel layout they share: n independent rows (trials, or steps) split into one contiguous
// slab per OpenMP thread, each slab's GEMMs single-threaded.
#pragma once

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace rl2::cpu {

// Row-major C [m, n] = op(A) [m, k] op(B) [k, n] + beta C; op transposes when the flag is set.
inline void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), 1.0f, a, static_cast<int>(lda), b,
              static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

// y [n] += column sums of the row-major A [m, n] (leading dimension lda); ones: [m] of 1.
inline void add_col_sums(int64_t m, int64_t n, const float* a, int64_t lda, const float* ones, float* y) {
  cblas_sgemv(CblasRowMajor, CblasTrans, static_cast<int>(m), static_cast<int>(n), 1.0f, a, static_cast<int>(lda),
              ones, 1, 1.0f, y, 1);
}

// Grows a scratch vector to at least n elements (never shrinks, so repeated calls do not allocate).
inline float* work(std::vector<float>& w, int64_t n) {
  if (static_cast<int64_t>(w.size()) < n) w.resize(static_cast<size_t>(n));
  return w.data();
}

// How many slabs for_slabs makes of n rows when a slab should hold at least min_rows of them.
inline int slab_count(int64_t n, int64_t min_rows) {
  return static_cast<int>(std::clamp<int64_t>(n / std::max<int64_t>(1, min_rows), 1, omp_get_max_threads()));
}

// Runs body(slab, r0, r1) on slabs [r0, r1) of n rows, slab in [0, slab_count(n, min_rows)), one slab per
// OpenMP thread. The slabs' GEMMs run single-threaded: a pthreads OpenBLAS is set to one thread for the
// region and restored after (an OpenMP OpenBLAS does that by itself inside a parallel region). With one
// slab there is no region and BLAS keeps all its threads.
template <class F>
void for_slabs(int64_t n, int64_t min_rows, F&& body) {
  const int threads = slab_count(n, min_rows);
  if (threads <= 1) {
    body(0, int64_t{0}, n);
    return;
  }
  const bool pthreads_blas = openblas_get_parallel() == 1;
  const int blas_threads = openblas_get_num_threads();
  if (pthreads_blas) openblas_set_num_threads(1);
#pragma omp parallel num_threads(threads)
  {
    const int64_t i = omp_get_thread_num(), k = omp_get_num_threads();
    body(static_cast<int>(i), n * i / k, n * (i + 1) / k);
  }
  if (pthreads_blas) openblas_set_num_threads(blas_threads);
}

}  // namespace rl2::cpu
