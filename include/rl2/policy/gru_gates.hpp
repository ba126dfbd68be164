// The GRU's gate update for one unit, written once (RL2_HD): the CPU's GRU (src/cpu/gru_cpu.cpp) and the
// CUDA rollout (ops::GruGates below, kernels/step_ops.cu) both run it, so on identical projections they compute
// identical bits (host: -ffp-contract=off; device: -fmad=false, no libm call on either side).
//
// exp without a libm call, so the CPU's gate loops vectorise (libm's expf and tanhf took a third of the
// forward's time): x = k ln2 + f with |f| <= ln2/2, exp(f) by Cephes' expf polynomial, 2^k through the
// exponent bits. Accuracy: relative error below 1e-7 on [-87, 87], so sigma and tanh are within about
// 1e-7 of the correctly rounded functions (tanh: absolute). |x| is first clamped to 87 on the bit pattern
// (an integer min: a float compare would put a branch in the loop), where sigma and tanh have long
// saturated and 2^k stays a normal float; adding x - x (0 when finite) turns NaN and +-inf into NaN.
#pragma once

#include <cstdint>

#include "rl2/core/hd.hpp"

namespace rl2 {

RL2_HD_INLINE uint32_t float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  return __builtin_bit_cast(uint32_t, x);
#endif
}

RL2_HD_INLINE float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  return __builtin_bit_cast(float, u);
#endif
}

RL2_HD_INLINE float exp_approx(float x) {
  constexpr float kRound = 12582912.0f;    // 1.5 * 2^23: adding it rounds to an integer in the low bits
  constexpr uint32_t kMaxMag = 0x42ae0000;  // 87.0f
  const uint32_t bits = float_bits(x);
  const uint32_t mag = bits & 0x7fffffffu;
  const float xc = bits_float((mag < kMaxMag ? mag : kMaxMag) | (bits & 0x80000000u));
  const float t = xc * 1.44269504088896341f + kRound;
  const float k = t - kRound;
  const float f = (xc - k * 0.693359375f) - k * -2.12194440e-4f;  // ln2 split so k * hi is exact
  float p = 1.9875691500e-4f;
  p = p * f + 1.3981999507e-3f;
  p = p * f + 8.3334519073e-3f;
  p = p * f + 4.1665795894e-2f;
  p = p * f + 1.6666665459e-1f;
  p = p * f + 5.0000001201e-1f;
  const float e = p * f * f + f + 1.0f;
  const int32_t ki = static_cast<int32_t>(float_bits(t)) - static_cast<int32_t>(float_bits(kRound));
  return e * bits_float(static_cast<uint32_t>((ki + 127) << 23)) + (x - x);
}

RL2_HD_INLINE float sigmoid_approx(float a) { return 1.0f / (1.0f + exp_approx(-a)); }
// tanh a = 2 sigma(2a) - 1: absolute error ~1e-7 (relative error grows only where tanh itself is ~0).
RL2_HD_INLINE float tanh_approx(float a) { return 2.0f / (1.0f + exp_approx(-2.0f * a)) - 1.0f; }

// One unit j of h' from the gate pre-activations of its trial: gi, gh [3H] = W_ih x, W_hh h (no biases),
// b_ih, b_hh [3H], h_j; gates r, z, n in torch's order, the reset applied after the recurrent product.
// Returns h'_j; r, z, n and hn = (W_hh h)_n + b_hn are what backward keeps.
RL2_HD_INLINE float gru_unit(int64_t H, int64_t j, const float* __restrict__ gi, const float* __restrict__ gh,
                             const float* __restrict__ b_ih, const float* __restrict__ b_hh, float h, float& r,
                             float& z, float& n, float& hn) {
  r = sigmoid_approx(gi[j] + b_ih[j] + gh[j] + b_hh[j]);
  z = sigmoid_approx(gi[H + j] + b_ih[H + j] + gh[H + j] + b_hh[H + j]);
  hn = gh[2 * H + j] + b_hh[2 * H + j];
  n = tanh_approx(gi[2 * H + j] + b_ih[2 * H + j] + r * hn);
  return (1.0f - z) * n + z * h;
}


namespace ops {

// The fused gate update of the rollout's two networks after their GEMMs: item e of [2, N, H] is unit j of
// trial i of network net (0 the policy, 1 the baseline; same input and hidden sizes).
struct GruGates {
  int64_t trials;
  int32_t hidden;
  const float* gi;  // [N, 2, 3H] x W_ihᵀ of both networks (one GEMM over the packed W_ih [6H, I])
  const float* gh;  // [2, N, 3H] h W_hhᵀ per network
  const float* h;   // [2, N, H] before the step
  float* h_next;    // [2, N, H] after it
  const float* b_ih[2];
  const float* b_hh[2];
  int64_t count() const { return 2 * trials * hidden; }
  RL2_HD void operator()(int64_t e) const {
    const int64_t H = hidden, NH = trials * H;
    const int net = e >= NH ? 1 : 0;
    const int64_t k = e - net * NH, i = k / H, j = k - i * H;
    float r, z, n, hn;
    h_next[e] = gru_unit(H, j, gi + (i * 2 + net) * 3 * H, gh + (net * trials + i) * 3 * H, b_ih[net], b_hh[net], h[e],
                         r, z, n, hn);
  }
};

}  // namespace ops

}  // namespace rl2
