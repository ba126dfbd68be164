// The recurrent core of the RL² policy and baseline (DESIGN.md section 3): one GRU layer in cuDNN's form
// (= torch.nn.GRU, gate rows r, z, n) followed by a linear head, over T steps of B trials (time-major):
//   r  = σ(W_r x + b_Wr + R_r h + b_Rr)        z = σ(W_z x + b_Wz + R_z h + b_Rz)
//   n  = tanh(W_n x + b_Wn + r ⊙ (R_n h + b_Rn))  h' = (1 − z) ⊙ n + z ⊙ h        out = H_w h' + H_b
// with h_0 = 0 at trial start and h carried across all T steps (no resets inside a trial).
// Three CPU forms share one parameter layout: `*_ref` (obvious loops, float and double: the references
// everything else is checked against), and the fast float path (OpenBLAS GEMMs for the matrix work,
// gate math spread over trials with OpenMP). Forward, back-propagation through time, forward-mode JVP
// (for the Gauss-Newton product Jᵀ M J v of TRPO, DESIGN.md section 4) and a one-step form for rollouts.
#pragma once

#include <cstdint>
#include <vector>

#include "rl2/core/chunks.hpp"

namespace rl2 {

struct GruShape {
  int32_t input;   // I
  int32_t hidden;  // H
  int32_t out;     // O: |A| logits for the policy, 1 for the baseline
};

// Offsets (in elements) of each tensor inside ONE flat parameter vector, in this order, row-major,
// shapes as torch: weight_ih [3H, I], weight_hh [3H, H], bias_ih [3H], bias_hh [3H], head_w [O, H],
// head_b [O]; rows of the GRU tensors are gates r, z, n. `total` is the vector's length.
struct GruLayout {
  int64_t weight_ih, weight_hh, bias_ih, bias_hh, head_w, head_b, total;
};
GruLayout gru_layout(const GruShape& shape);

// Pointers to each tensor inside one flat parameter (or gradient, or direction) vector; T is Real or
// const Real.
template <class T>
struct GruTensors {
  T *w_ih, *w_hh, *b_ih, *b_hh, *head_w, *head_b;
  GruTensors(const GruShape& s, T* p) {
    const GruLayout l = gru_layout(s);
    w_ih = p + l.weight_ih;
    w_hh = p + l.weight_hh;
    b_ih = p + l.bias_ih;
    b_hh = p + l.bias_hh;
    head_w = p + l.head_w;
    head_b = p + l.head_b;
  }
};

// Initialisation like torch: every GRU tensor U(-1/sqrt(H), 1/sqrt(H)); head_w is head_scale times that
// (e.g. 0.01 for the policy head, so the initial policy is near uniform); head_b is zero. The bits come
// from RandomStream(seed, trial 0, step 0, Purpose(16 + which)), read in layout order: a purpose value of
// its own per network (`which`: 0 policy, 1 baseline, ...; below 240), disjoint from every environment
// stream. params: [gru_layout(shape).total].
void gru_init(const GruShape& shape, uint64_t seed, uint32_t which, float head_scale, float* params);

// Everything forward keeps for backward and JVP, for T steps x B trials (time-major).
template <class Real>
struct GruCache {
  int64_t T = 0, B = 0;
  std::vector<Real> h;            // [T+1, B, H]; h[0] = 0
  std::vector<Real> r, z, n, hn;  // [T, B, H]; hn = R_n h + b_Rn (needed for the reset gate's backward)
  // Scratch of the fast path, reused between calls so its time loops never allocate; not part of the
  // forward's result. Mutable because backward and JVP take the cache as const: one call at a time per cache.
  mutable std::vector<Real> work;
  void resize(const GruShape& shape, int64_t steps, int64_t trials) {
    T = steps;
    B = trials;
    const size_t bh = static_cast<size_t>(trials) * static_cast<size_t>(shape.hidden);
    h.resize(static_cast<size_t>(steps + 1) * bh);
    r.resize(static_cast<size_t>(steps) * bh);
    z.resize(r.size());
    n.resize(r.size());
    hn.resize(r.size());
  }
};

// ---- references (float and double) ----------------------------------------------------------------
// x: [T, B, I] inputs; out: [T, B, O] head outputs. Resizes and fills cache.
template <class Real>
void gru_forward_ref(const GruShape& shape, const Real* params, const Real* x, int64_t T, int64_t B,
                     GruCache<Real>& cache, Real* out);
// d_out: [T, B, O] gradient of the loss w.r.t. out. ACCUMULATES (+=) into d_params [total].
// d_x: [T, B, I] gradient w.r.t. x, OVERWRITTEN (nullptr: skipped). cache: from the forward at params, x.
template <class Real>
void gru_backward_ref(const GruShape& shape, const Real* params, const Real* x, int64_t T, int64_t B,
                      const GruCache<Real>& cache, const Real* d_out, Real* d_params, Real* d_x);
// Forward mode: d_out [T, B, O] (overwritten) = directional derivative of out along the parameter
// direction v [total] and the input direction dx [T, B, I] (nullptr: x fixed; the maze policy moves x
// through its encoder, include/rl2/policy/encoder.hpp). cache: from the forward at params, x.
template <class Real>
void gru_jvp_ref(const GruShape& shape, const Real* params, const Real* x, int64_t T, int64_t B,
                 const GruCache<Real>& cache, const Real* v, Real* d_out, const Real* dx = nullptr);
// One step for rollouts: x [B, I], h [B, H] -> h_next [B, H], out [B, O]. h_next must not alias h.
template <class Real>
void gru_step_ref(const GruShape& shape, const Real* params, const Real* x, const Real* h, int64_t B,
                  Real* h_next, Real* out);

// ---- fast float path (OpenBLAS + OpenMP), same contracts as the references -------------------------
// Trials are split into one slab per OpenMP thread (OMP_NUM_THREADS); a pthreads OpenBLAS is set to one
// thread while the slabs run and restored after, so calls from several host threads at once stay correct
// but may oversubscribe the cores.
// segs: the units of work and of the weight gradients' partial sums (core/chunks.hpp); nullptr: the
// chunks of B trials of T steps (gru_step: of 1 step). parts (backward): instead of accumulating into
// d_params, each segment's partial gradient [segs.count(), size] (rank sums, train/shard.hpp); d_params
// accumulates exactly float(Σ_u parts[u] in double, in segment order).
void gru_forward(const GruShape& shape, const float* params, const float* x, int64_t T, int64_t B,
                 GruCache<float>& cache, float* out, const TrialSegments* segs = nullptr);
void gru_backward(const GruShape& shape, const float* params, const float* x, int64_t T, int64_t B,
                  const GruCache<float>& cache, const float* d_out, float* d_params, float* d_x,
                  const TrialSegments* segs = nullptr, float* parts = nullptr);
void gru_jvp(const GruShape& shape, const float* params, const float* x, int64_t T, int64_t B,
             const GruCache<float>& cache, const float* v, float* d_out, const float* dx = nullptr,
             const TrialSegments* segs = nullptr);
// Scratch is a per-thread buffer that grows once, so repeated calls do not allocate.
void gru_step(const GruShape& shape, const float* params, const float* x, const float* h, int64_t B,
              float* h_next, float* out, const TrialSegments* segs = nullptr);

}  // namespace rl2
