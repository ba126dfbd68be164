// The networks' parameter layouts and initialisation (gru.hpp, encoder.hpp, network.hpp): backend-neutral,
// so every backend, the checkpoints and the exports share them.
#include <cmath>

#include "rl2/core/check.hpp"
#include "rl2/core/rng.hpp"
#include "rl2/policy/network.hpp"

namespace rl2 {

GruLayout gru_layout(const GruShape& s) {
  RL2_CHECK(s.input > 0 && s.hidden > 0 && s.out > 0, "GRU sizes must be positive");
  const int64_t g = 3 * int64_t{s.hidden};
  GruLayout l{};
  l.weight_ih = 0;
  l.weight_hh = l.weight_ih + g * s.input;
  l.bias_ih = l.weight_hh + g * s.hidden;
  l.bias_hh = l.bias_ih + g;
  l.head_w = l.bias_hh + g;
  l.head_b = l.head_w + int64_t{s.out} * s.hidden;
  l.total = l.head_b + s.out;
  return l;
}

void gru_init(const GruShape& shape, uint64_t seed, uint32_t which, float head_scale, float* params) {
  const GruLayout l = gru_layout(shape);
  RL2_CHECK(which < 240, "gru_init: `which` must leave the purpose below 256");
  RL2_CHECK(l.total <= int64_t{4} * kMaxBlocks, "gru_init: more parameters than one random stream holds");
  RandomStream rs(seed, 0, 0, static_cast<Purpose>(16 + which));
  const double bound = 1.0 / std::sqrt(static_cast<double>(shape.hidden));
  for (int64_t i = 0; i < l.head_w; ++i) params[i] = static_cast<float>(bound * uniform_signed(rs.next_u32()));
  for (int64_t i = l.head_w; i < l.head_b; ++i) {
    params[i] = static_cast<float>(head_scale * bound * uniform_signed(rs.next_u32()));
  }
  for (int64_t i = l.head_b; i < l.total; ++i) params[i] = 0.0f;
}

EncoderLayout encoder_layout(const EncoderShape& s) {
  RL2_CHECK(s.channels > 0 && s.height > 0 && s.width > 0 && s.filters > 0 && s.kernel > 0 && s.stride > 0 &&
                s.image_fc > 0 && s.extra_in > 0 && s.extra_fc > 0,
            "encoder sizes must be positive");
  RL2_CHECK(s.height >= s.kernel && s.width >= s.kernel && s.h1() >= s.kernel && s.w1() >= s.kernel,
            "encoder: the image is too small for two convolutions");
  const int64_t F = s.filters, KK = int64_t{s.kernel} * s.kernel;
  EncoderLayout l{};
  l.conv1_w = 0;
  l.conv1_b = l.conv1_w + F * s.channels * KK;
  l.conv2_w = l.conv1_b + F;
  l.conv2_b = l.conv2_w + F * F * KK;
  l.image_fc_w = l.conv2_b + F;
  l.image_fc_b = l.image_fc_w + s.image_fc * s.flat();
  l.extra_fc_w = l.image_fc_b + s.image_fc;
  l.extra_fc_b = l.extra_fc_w + int64_t{s.extra_fc} * s.extra_in;
  l.total = l.extra_fc_b + s.extra_fc;
  return l;
}

void encoder_init(const EncoderShape& s, uint64_t seed, uint32_t which, float* params) {
  const EncoderLayout l = encoder_layout(s);
  RL2_CHECK(which < 8, "encoder_init: `which` must be below 8");
  RL2_CHECK(l.total <= int64_t{4} * kMaxBlocks, "encoder_init: more parameters than one random stream holds");
  RandomStream rs(seed, 0, 1, static_cast<Purpose>(static_cast<uint32_t>(Purpose::kInit) + 8 + which));
  const int64_t KK = int64_t{s.kernel} * s.kernel;
  // [begin, end) of each tensor and its fan-in, in layout order.
  const struct {
    int64_t begin, end, fan_in;
  } tensors[] = {{l.conv1_w, l.conv2_w, s.channels * KK},  {l.conv2_w, l.image_fc_w, s.filters * KK},
                 {l.image_fc_w, l.extra_fc_w, s.flat()}, {l.extra_fc_w, l.total, s.extra_in}};
  for (const auto& t : tensors) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(t.fan_in));
    for (int64_t i = t.begin; i < t.end; ++i) params[i] = static_cast<float>(bound * uniform_signed(rs.next_u32()));
  }
}

int64_t NetShape::cache_floats_per_step() const {
  int64_t n = 5 * int64_t{gru.hidden};  // h, r, z, n, hn
  if (encoder) {
    const int64_t f1 = int64_t{enc.filters} * enc.h1() * enc.w1();
    n += f1 + enc.flat() + enc.out()      // the encoder's cache
         + 2 * int64_t{enc.out()}         // y, dy
         + enc.out() + enc.flat() + 1;    // the encoder's backward scratch
  }
  return n;
}

void net_init(const NetShape& s, uint64_t seed, uint32_t which, float head_scale, float* params) {
  gru_init(s.gru, seed, which, head_scale, params);
  if (s.encoder) encoder_init(s.enc, seed, which, params + s.gru_size());
}

}  // namespace rl2
