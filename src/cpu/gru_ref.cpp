// Reference GRU (include/rl2/policy/gru.hpp): obvious loop versions of forward, back-propagation through
// time, forward-mode JVP and one step, in float and double.
// Serial: one trial after another, gate rows r, z, n as torch.nn.GRU. These are what the fast path
// (gru_cpu.cpp) and the CUDA kernels are checked against; they are themselves checked against finite
// differences in float64 (tests/test_gru.cpp).
//
// Backward, with a_* the pre-activations and dh the gradient reaching h' = h[t+1]:
//   dz = dh ⊙ (h − n)   dn = dh ⊙ (1 − z)   da_n = dn ⊙ (1 − n²)   da_r = da_n ⊙ hn ⊙ r(1 − r)
//   da_z = dz ⊙ z(1 − z)   dhn = da_n ⊙ r;   input-side gate grads [da_r, da_z, da_n], hidden-side
//   [da_r, da_z, dhn];   dh_prev = dh ⊙ z + R_hhᵀ [da_r, da_z, dhn].
// JVP (tangents written with a leading t; tx the input tangent, zero unless given):
//   ta_g = Vx_g x + vb_g + Vh_g h + R_g th + W_g tx (+ the r ⊙ hn term for n),
//   th' = tz ⊙ (h − n) + (1 − z) ⊙ tn + z ⊙ th,   tout = V_Hw h' + H_w th' + v_Hb.
#include <cmath>

#include "rl2/core/check.hpp"
#include "rl2/core/rng.hpp"
#include "rl2/policy/gru.hpp"

namespace rl2 {


namespace {

template <class Real>
Real sigmoid(Real a) {
  return Real(1) / (Real(1) + std::exp(-a));
}

template <class Real>
Real dot(const Real* a, const Real* b, int64_t n) {
  Real s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Pointers to the six tensors of one flat vector (parameters, a gradient or a direction).
template <class Real>
using Tensors = GruTensors<Real>;

// One trial, one step: x [I], h [H] -> h_next [H] and the gates r, z, n, hn [H].
template <class Real>
void cell_ref(const GruShape& s, const Tensors<const Real>& p, const Real* x, const Real* h, Real* h_next, Real* r,
              Real* z, Real* n, Real* hn) {
  const int64_t I = s.input, H = s.hidden;
  for (int64_t j = 0; j < H; ++j) {
    const int64_t jr = j, jz = H + j, jn = 2 * H + j;
    r[j] = sigmoid(p.b_ih[jr] + p.b_hh[jr] + dot(p.w_ih + jr * I, x, I) + dot(p.w_hh + jr * H, h, H));
    z[j] = sigmoid(p.b_ih[jz] + p.b_hh[jz] + dot(p.w_ih + jz * I, x, I) + dot(p.w_hh + jz * H, h, H));
    hn[j] = p.b_hh[jn] + dot(p.w_hh + jn * H, h, H);
    n[j] = std::tanh(p.b_ih[jn] + dot(p.w_ih + jn * I, x, I) + r[j] * hn[j]);
    h_next[j] = (Real(1) - z[j]) * n[j] + z[j] * h[j];
  }
}

// out [O] = head_w h + head_b for one trial.
template <class Real>
void head_ref(const GruShape& s, const Tensors<const Real>& p, const Real* h, Real* out) {
  for (int64_t o = 0; o < s.out; ++o) out[o] = p.head_b[o] + dot(p.head_w + o * s.hidden, h, s.hidden);
}

}  // namespace

template <class Real>
void gru_forward_ref(const GruShape& s, const Real* params, const Real* x, int64_t T, int64_t B, GruCache<Real>& c,
                     Real* out) {
  RL2_CHECK(T >= 0 && B >= 0, "gru_forward_ref: negative size");
  const Tensors<const Real> p(s, params);
  const int64_t I = s.input, H = s.hidden, O = s.out;
  c.resize(s, T, B);
  for (int64_t i = 0; i < B * H; ++i) c.h[static_cast<size_t>(i)] = 0;
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t b = 0; b < B; ++b) {
      const int64_t tb = t * B + b;
      Real* h_next = c.h.data() + (tb + B) * H;
      cell_ref(s, p, x + tb * I, c.h.data() + tb * H, h_next, c.r.data() + tb * H, c.z.data() + tb * H,
               c.n.data() + tb * H, c.hn.data() + tb * H);
      head_ref(s, p, h_next, out + tb * O);
    }
  }
}

template <class Real>
void gru_backward_ref(const GruShape& s, const Real* params, const Real* x, int64_t T, int64_t B,
                      const GruCache<Real>& c, const Real* d_out, Real* d_params, Real* d_x) {
  RL2_CHECK(c.T == T && c.B == B, "gru_backward_ref: cache is from another forward");
  const Tensors<const Real> p(s, params);
  const Tensors<Real> g(s, d_params);
  const int64_t I = s.input, H = s.hidden, O = s.out;
  std::vector<Real> dh(static_cast<size_t>(B * H), Real(0));  // gradient at h[t+1]: [B, H]
  std::vector<Real> dh_prev(static_cast<size_t>(H));
  for (int64_t t = T - 1; t >= 0; --t) {
    for (int64_t b = 0; b < B; ++b) {
      const int64_t tb = t * B + b;
      const Real* xt = x + tb * I;
      const Real* h_prev = c.h.data() + tb * H;
      const Real* h_next = c.h.data() + (tb + B) * H;
      const Real* r = c.r.data() + tb * H;
      const Real* z = c.z.data() + tb * H;
      const Real* n = c.n.data() + tb * H;
      const Real* hn = c.hn.data() + tb * H;
      const Real* dout = d_out + tb * O;
      Real* dhb = dh.data() + b * H;
      for (int64_t o = 0; o < O; ++o) {
        g.head_b[o] += dout[o];
        for (int64_t j = 0; j < H; ++j) {
          g.head_w[o * H + j] += dout[o] * h_next[j];
          dhb[j] += dout[o] * p.head_w[o * H + j];
        }
      }
      Real* dxt = d_x ? d_x + tb * I : nullptr;
      if (dxt) {
        for (int64_t i = 0; i < I; ++i) dxt[i] = 0;
      }
      for (int64_t j = 0; j < H; ++j) dh_prev[static_cast<size_t>(j)] = dhb[j] * z[j];
      for (int64_t j = 0; j < H; ++j) {
        const int64_t jr = j, jz = H + j, jn = 2 * H + j;
        const Real dz = dhb[j] * (h_prev[j] - n[j]);
        const Real dn = dhb[j] * (Real(1) - z[j]);
        const Real da_n = dn * (Real(1) - n[j] * n[j]);
        const Real da_r = da_n * hn[j] * r[j] * (Real(1) - r[j]);
        const Real da_z = dz * z[j] * (Real(1) - z[j]);
        const Real dhn = da_n * r[j];
        g.b_ih[jr] += da_r;
        g.b_ih[jz] += da_z;
        g.b_ih[jn] += da_n;
        g.b_hh[jr] += da_r;
        g.b_hh[jz] += da_z;
        g.b_hh[jn] += dhn;
        for (int64_t i = 0; i < I; ++i) {
          g.w_ih[jr * I + i] += da_r * xt[i];
          g.w_ih[jz * I + i] += da_z * xt[i];
          g.w_ih[jn * I + i] += da_n * xt[i];
          if (dxt) dxt[i] += da_r * p.w_ih[jr * I + i] + da_z * p.w_ih[jz * I + i] + da_n * p.w_ih[jn * I + i];
        }
        for (int64_t k = 0; k < H; ++k) {
          g.w_hh[jr * H + k] += da_r * h_prev[k];
          g.w_hh[jz * H + k] += da_z * h_prev[k];
          g.w_hh[jn * H + k] += dhn * h_prev[k];
          dh_prev[static_cast<size_t>(k)] +=
              da_r * p.w_hh[jr * H + k] + da_z * p.w_hh[jz * H + k] + dhn * p.w_hh[jn * H + k];
        }
      }
      for (int64_t j = 0; j < H; ++j) dhb[j] = dh_prev[static_cast<size_t>(j)];
    }
  }
}

template <class Real>
void gru_jvp_ref(const GruShape& s, const Real* params, const Real* x, int64_t T, int64_t B,
                 const GruCache<Real>& c, const Real* v, Real* d_out, const Real* dx) {
  RL2_CHECK(c.T == T && c.B == B, "gru_jvp_ref: cache is from another forward");
  const Tensors<const Real> p(s, params);
  const Tensors<const Real> dv(s, v);
  const int64_t I = s.input, H = s.hidden, O = s.out;
  std::vector<Real> th(static_cast<size_t>(B * H), Real(0));  // tangent of h[t]: [B, H], zero at t = 0
  std::vector<Real> th_next(static_cast<size_t>(H));
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t b = 0; b < B; ++b) {
      const int64_t tb = t * B + b;
      const Real* xt = x + tb * I;
      const Real* txt = dx ? dx + tb * I : nullptr;
      const Real* h_prev = c.h.data() + tb * H;
      const Real* h_next = c.h.data() + (tb + B) * H;
      const Real* r = c.r.data() + tb * H;
      const Real* z = c.z.data() + tb * H;
      const Real* n = c.n.data() + tb * H;
      const Real* hn = c.hn.data() + tb * H;
      Real* thb = th.data() + b * H;
      for (int64_t j = 0; j < H; ++j) {
        const int64_t jr = j, jz = H + j, jn = 2 * H + j;
        Real ta_r = dv.b_ih[jr] + dv.b_hh[jr] + dot(dv.w_ih + jr * I, xt, I) + dot(dv.w_hh + jr * H, h_prev, H) +
                    dot(p.w_hh + jr * H, thb, H);
        Real ta_z = dv.b_ih[jz] + dv.b_hh[jz] + dot(dv.w_ih + jz * I, xt, I) + dot(dv.w_hh + jz * H, h_prev, H) +
                    dot(p.w_hh + jz * H, thb, H);
        Real ta_xn = dv.b_ih[jn] + dot(dv.w_ih + jn * I, xt, I);  // input side of the n gate
        if (txt) {
          ta_r += dot(p.w_ih + jr * I, txt, I);
          ta_z += dot(p.w_ih + jz * I, txt, I);
          ta_xn += dot(p.w_ih + jn * I, txt, I);
        }
        const Real thn = dv.b_hh[jn] + dot(dv.w_hh + jn * H, h_prev, H) + dot(p.w_hh + jn * H, thb, H);
        const Real tr = r[j] * (Real(1) - r[j]) * ta_r;
        const Real tz = z[j] * (Real(1) - z[j]) * ta_z;
        const Real ta_n = ta_xn + tr * hn[j] + r[j] * thn;
        const Real tn = (Real(1) - n[j] * n[j]) * ta_n;
        th_next[static_cast<size_t>(j)] = tz * (h_prev[j] - n[j]) + (Real(1) - z[j]) * tn + z[j] * thb[j];
      }
      for (int64_t j = 0; j < H; ++j) thb[j] = th_next[static_cast<size_t>(j)];
      Real* dout = d_out + tb * O;
      for (int64_t o = 0; o < O; ++o) {
        dout[o] = dv.head_b[o] + dot(dv.head_w + o * H, h_next, H) + dot(p.head_w + o * H, thb, H);
      }
    }
  }
}

template <class Real>
void gru_step_ref(const GruShape& s, const Real* params, const Real* x, const Real* h, int64_t B, Real* h_next,
                  Real* out) {
  const Tensors<const Real> p(s, params);
  const int64_t I = s.input, H = s.hidden, O = s.out;
  std::vector<Real> gates(static_cast<size_t>(4 * H));  // r, z, n, hn of one trial: [4, H]
  for (int64_t b = 0; b < B; ++b) {
    Real* hb = h_next + b * H;
    cell_ref(s, p, x + b * I, h + b * H, hb, gates.data(), gates.data() + H, gates.data() + 2 * H,
             gates.data() + 3 * H);
    head_ref(s, p, hb, out + b * O);
  }
}

#define RL2_GRU_REF_INSTANTIATE(Real)                                                                             \
  template void gru_forward_ref<Real>(const GruShape&, const Real*, const Real*, int64_t, int64_t,                \
                                      GruCache<Real>&, Real*);                                                    \
  template void gru_backward_ref<Real>(const GruShape&, const Real*, const Real*, int64_t, int64_t,               \
                                       const GruCache<Real>&, const Real*, Real*, Real*);                         \
  template void gru_jvp_ref<Real>(const GruShape&, const Real*, const Real*, int64_t, int64_t,                    \
                                  const GruCache<Real>&, const Real*, Real*, const Real*);                        \
  template void gru_step_ref<Real>(const GruShape&, const Real*, const Real*, const Real*, int64_t, Real*, Real*);

RL2_GRU_REF_INSTANTIATE(float)
RL2_GRU_REF_INSTANTIATE(double)

}  // namespace rl2
