// Reference maze encoder (include/rl2/policy/encoder.hpp): obvious loop versions of forward, backward and
// forward-mode JVP, in float and double. Serial: one step after another, direct convolution loops in
// torch's index order. The fast path (encoder_cpu.cpp) is checked against these, and these against finite
// differences in float64 (tests/test_encoder.cpp).
//
// Per layer z = W u + b, o = relu(z) (conv or FC), with mask m = [o > 0] (relu'(0) = 0):
//   backward: dz = m ⊙ do,  dW += dz ⊗ u,  db += Σ dz,  du = Wᵀ dz (skipped for the image)
//   JVP:      to = m ⊙ (V u + vb + W tu)   with tu = 0 for the image and the extra inputs.
#include <algorithm>
#include <cmath>

#include "rl2/core/check.hpp"
#include "rl2/core/rng.hpp"
#include "rl2/policy/encoder.hpp"

namespace rl2 {


namespace {

template <class Real>
using Tensors = EncoderTensors<Real>;

// One convolution layer's sizes: Ci×Hi×Wi -> Co×Ho×Wo with a K×K kernel, stride S, no padding.
struct Conv {
  int64_t ci, hi, wi, co, k, s, ho, wo;
  Conv(int64_t ci_, int64_t hi_, int64_t wi_, int64_t co_, int64_t k_, int64_t s_)
      : ci(ci_), hi(hi_), wi(wi_), co(co_), k(k_), s(s_), ho((hi_ - k_) / s_ + 1), wo((wi_ - k_) / s_ + 1) {}
  int64_t out_size() const { return co * ho * wo; }
  int64_t w_at(int64_t o, int64_t i, int64_t ky, int64_t kx) const { return ((o * ci + i) * k + ky) * k + kx; }
  int64_t in_at(int64_t i, int64_t oy, int64_t ox, int64_t ky, int64_t kx) const {
    return (i * hi + oy * s + ky) * wi + ox * s + kx;
  }
};

// out [Co, Ho, Wo] += w [Co, Ci, K, K] * in [Ci, Hi, Wi].
template <class Real>
void conv_add(const Conv& c, const Real* w, const Real* in, Real* out) {
  for (int64_t o = 0; o < c.co; ++o) {
    for (int64_t oy = 0; oy < c.ho; ++oy) {
      for (int64_t ox = 0; ox < c.wo; ++ox) {
        Real a = 0;
        for (int64_t i = 0; i < c.ci; ++i) {
          for (int64_t ky = 0; ky < c.k; ++ky) {
            for (int64_t kx = 0; kx < c.k; ++kx) a += w[c.w_at(o, i, ky, kx)] * in[c.in_at(i, oy, ox, ky, kx)];
          }
        }
        out[(o * c.ho + oy) * c.wo + ox] += a;
      }
    }
  }
}

// Backward of conv_add for dout [Co, Ho, Wo]: dw += dout ⊗ in, db [Co] += Σ dout, din += wᵀ dout
// (din nullptr: skipped).
template <class Real>
void conv_backward(const Conv& c, const Real* w, const Real* in, const Real* dout, Real* dw, Real* db, Real* din) {
  for (int64_t o = 0; o < c.co; ++o) {
    for (int64_t oy = 0; oy < c.ho; ++oy) {
      for (int64_t ox = 0; ox < c.wo; ++ox) {
        const Real d = dout[(o * c.ho + oy) * c.wo + ox];
        db[o] += d;
        for (int64_t i = 0; i < c.ci; ++i) {
          for (int64_t ky = 0; ky < c.k; ++ky) {
            for (int64_t kx = 0; kx < c.k; ++kx) {
              dw[c.w_at(o, i, ky, kx)] += d * in[c.in_at(i, oy, ox, ky, kx)];
              if (din) din[c.in_at(i, oy, ox, ky, kx)] += d * w[c.w_at(o, i, ky, kx)];
            }
          }
        }
      }
    }
  }
}

// out [O] += w [O, N] in [N].
template <class Real>
void linear_add(int64_t O, int64_t N, const Real* w, const Real* in, Real* out) {
  for (int64_t o = 0; o < O; ++o) {
    Real a = 0;
    for (int64_t i = 0; i < N; ++i) a += w[o * N + i] * in[i];
    out[o] += a;
  }
}

// Backward of linear_add for dout [O]: dw += dout ⊗ in, db [O] += dout, din += wᵀ dout (nullptr: skipped).
template <class Real>
void linear_backward(int64_t O, int64_t N, const Real* w, const Real* in, const Real* dout, Real* dw, Real* db,
                     Real* din) {
  for (int64_t o = 0; o < O; ++o) {
    db[o] += dout[o];
    for (int64_t i = 0; i < N; ++i) {
      dw[o * N + i] += dout[o] * in[i];
      if (din) din[i] += dout[o] * w[o * N + i];
    }
  }
}

// a [channels, n]: every element of channel j set to b[j].
template <class Real>
void fill_channels(int64_t channels, int64_t n, const Real* b, Real* a) {
  for (int64_t j = 0; j < channels; ++j) {
    for (int64_t i = 0; i < n; ++i) a[j * n + i] = b[j];
  }
}

// In place; NaN passes through (as torch), like std::max(a, 0) in the fast path.
template <class Real>
void relu(int64_t n, Real* a) {
  for (int64_t i = 0; i < n; ++i) a[i] = a[i] < 0 ? Real(0) : a[i];
}

// d [n] = 0 where the post-ReLU value o is not positive.
template <class Real>
void mask(int64_t n, const Real* o, Real* d) {
  for (int64_t i = 0; i < n; ++i) d[i] = o[i] > 0 ? d[i] : Real(0);
}

}  // namespace

template <class Real>
void encoder_forward_ref(const EncoderShape& s, const Real* params, const Real* x, int64_t M, EncoderCache<Real>& c,
                         Real* y) {
  RL2_CHECK(M >= 0, "encoder_forward_ref: negative size");
  const Tensors<const Real> p(s, params);
  const Conv c1(s.channels, s.height, s.width, s.filters, s.kernel, s.stride);
  const Conv c2(s.filters, c1.ho, c1.wo, s.filters, s.kernel, s.stride);
  const int64_t in = s.in(), out = s.out(), flat = s.flat(), Ni = s.image_fc, Ne = s.extra_fc, P1 = c1.ho * c1.wo;
  c.resize(s, M);
  for (int64_t m = 0; m < M; ++m) {
    const Real* img = x + m * in;
    Real* f1 = c.f1.data() + m * c1.out_size();
    Real* f2 = c.f2.data() + m * flat;
    Real* ym = c.y.data() + m * out;
    fill_channels<Real>(s.filters, P1, p.conv1_b, f1);
    conv_add(c1, p.conv1_w, img, f1);
    relu(c1.out_size(), f1);
    fill_channels<Real>(s.filters, c2.ho * c2.wo, p.conv2_b, f2);
    conv_add(c2, p.conv2_w, f1, f2);
    relu(flat, f2);
    fill_channels<Real>(Ni, 1, p.image_fc_b, ym);
    fill_channels<Real>(s.extra_fc, 1, p.extra_fc_b, ym + Ni);
    linear_add(Ni, flat, p.image_fc_w, f2, ym);
    linear_add(Ne, int64_t{s.extra_in}, p.extra_fc_w, img + s.image_size(), ym + Ni);
    relu(out, ym);
    for (int64_t j = 0; j < out; ++j) y[m * out + j] = ym[j];
  }
}

template <class Real>
void encoder_backward_ref(const EncoderShape& s, const Real* params, const Real* x, int64_t M,
                          const EncoderCache<Real>& c, const Real* d_y, Real* d_params) {
  RL2_CHECK(c.M == M, "encoder_backward_ref: cache is from another forward");
  const Tensors<const Real> p(s, params);
  const Tensors<Real> g(s, d_params);
  const Conv c1(s.channels, s.height, s.width, s.filters, s.kernel, s.stride);
  const Conv c2(s.filters, c1.ho, c1.wo, s.filters, s.kernel, s.stride);
  const int64_t in = s.in(), out = s.out(), flat = s.flat(), Ni = s.image_fc;
  std::vector<Real> dy(static_cast<size_t>(out)), d2(static_cast<size_t>(flat)), d1(static_cast<size_t>(c1.out_size()));
  for (int64_t m = 0; m < M; ++m) {
    const Real* img = x + m * in;
    const Real* f1 = c.f1.data() + m * c1.out_size();
    const Real* f2 = c.f2.data() + m * flat;
    for (int64_t j = 0; j < out; ++j) dy[static_cast<size_t>(j)] = d_y[m * out + j];
    mask(out, c.y.data() + m * out, dy.data());
    std::fill(d2.begin(), d2.end(), Real(0));
    linear_backward(Ni, flat, p.image_fc_w, f2, dy.data(), g.image_fc_w, g.image_fc_b, d2.data());
    linear_backward(int64_t{s.extra_fc}, int64_t{s.extra_in}, p.extra_fc_w, img + s.image_size(), dy.data() + Ni,
                    g.extra_fc_w, g.extra_fc_b, static_cast<Real*>(nullptr));
    mask(flat, f2, d2.data());
    std::fill(d1.begin(), d1.end(), Real(0));
    conv_backward(c2, p.conv2_w, f1, d2.data(), g.conv2_w, g.conv2_b, d1.data());
    mask(c1.out_size(), f1, d1.data());
    conv_backward(c1, p.conv1_w, img, d1.data(), g.conv1_w, g.conv1_b, static_cast<Real*>(nullptr));
  }
}

template <class Real>
void encoder_jvp_ref(const EncoderShape& s, const Real* params, const Real* x, int64_t M, const EncoderCache<Real>& c,
                     const Real* v, Real* d_y) {
  RL2_CHECK(c.M == M, "encoder_jvp_ref: cache is from another forward");
  const Tensors<const Real> p(s, params);
  const Tensors<const Real> dv(s, v);
  const Conv c1(s.channels, s.height, s.width, s.filters, s.kernel, s.stride);
  const Conv c2(s.filters, c1.ho, c1.wo, s.filters, s.kernel, s.stride);
  const int64_t in = s.in(), out = s.out(), flat = s.flat(), Ni = s.image_fc;
  std::vector<Real> t1(static_cast<size_t>(c1.out_size())), t2(static_cast<size_t>(flat));
  for (int64_t m = 0; m < M; ++m) {
    const Real* img = x + m * in;
    const Real* f1 = c.f1.data() + m * c1.out_size();
    const Real* f2 = c.f2.data() + m * flat;
    Real* ty = d_y + m * out;
    fill_channels<Real>(s.filters, c1.ho * c1.wo, dv.conv1_b, t1.data());
    conv_add(c1, dv.conv1_w, img, t1.data());
    mask(c1.out_size(), f1, t1.data());
    fill_channels<Real>(s.filters, c2.ho * c2.wo, dv.conv2_b, t2.data());
    conv_add(c2, dv.conv2_w, f1, t2.data());
    conv_add(c2, p.conv2_w, t1.data(), t2.data());
    mask(flat, f2, t2.data());
    fill_channels<Real>(Ni, 1, dv.image_fc_b, ty);
    fill_channels<Real>(s.extra_fc, 1, dv.extra_fc_b, ty + Ni);
    linear_add(Ni, flat, dv.image_fc_w, f2, ty);
    linear_add(Ni, flat, p.image_fc_w, t2.data(), ty);
    linear_add(int64_t{s.extra_fc}, int64_t{s.extra_in}, dv.extra_fc_w, img + s.image_size(), ty + Ni);
    mask(out, c.y.data() + m * out, ty);
  }
}

#define RL2_ENCODER_REF_INSTANTIATE(Real)                                                                          \
  template void encoder_forward_ref<Real>(const EncoderShape&, const Real*, const Real*, int64_t,                  \
                                          EncoderCache<Real>&, Real*);                                             \
  template void encoder_backward_ref<Real>(const EncoderShape&, const Real*, const Real*, int64_t,                 \
                                           const EncoderCache<Real>&, const Real*, Real*);                         \
  template void encoder_jvp_ref<Real>(const EncoderShape&, const Real*, const Real*, int64_t,                      \
                                      const EncoderCache<Real>&, const Real*, Real*);

RL2_ENCODER_REF_INSTANTIATE(float)
RL2_ENCODER_REF_INSTANTIATE(double)

}  // namespace rl2
