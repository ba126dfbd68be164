// The encoder -> GRU -> head composition of include/rl2/policy/network.hpp on the fast float CPU path.
// The encoder runs on all T·B rows at once (its rows are independent steps, time-major like x), then the
// GRU's time loop runs on its output; backward and JVP chain the two through y's gradient and tangent.
#include "rl2/policy/network.hpp"

#include <vector>

#include "rl2/core/check.hpp"

namespace rl2 {


void net_forward(const NetShape& s, const float* params, const float* x, int64_t T, int64_t B, NetCache& c,
                 float* out, const TrialSegments* segs) {
  if (!s.encoder) {
    gru_forward(s.gru, params, x, T, B, c.gru, out, segs);
    return;
  }
  c.y.resize(static_cast<size_t>(T * B * s.enc.out()));
  encoder_forward(s.enc, params + s.gru_size(), x, T * B, c.enc, c.y.data(), segs);
  gru_forward(s.gru, params, c.y.data(), T, B, c.gru, out, segs);
}

void net_backward(const NetShape& s, const float* params, const float* x, int64_t T, int64_t B, NetCache& c,
                  const float* d_out, float* d_params, const TrialSegments* segs, float* parts) {
  if (!s.encoder) {
    gru_backward(s.gru, params, x, T, B, c.gru, d_out, d_params, nullptr, segs, parts);
    return;
  }
  c.dy.resize(c.y.size());
  if (parts == nullptr) {
    gru_backward(s.gru, params, c.y.data(), T, B, c.gru, d_out, d_params, c.dy.data(), segs);
    encoder_backward(s.enc, params + s.gru_size(), x, T * B, c.enc, c.dy.data(), d_params + s.gru_size(), segs);
    return;
  }
  RL2_CHECK(segs != nullptr, "net_backward: partial sums need the segments");
  const int64_t Pg = s.gru_size();
  gru_backward(s.gru, params, c.y.data(), T, B, c.gru, d_out, nullptr, c.dy.data(), segs, parts);
  encoder_backward(s.enc, params + Pg, x, T * B, c.enc, c.dy.data(), nullptr, segs, parts + segs->count() * Pg);
}

std::vector<PartsRange> net_parts_layout(const NetShape& s, int64_t T, int64_t B, const TrialSegments& segs) {
  std::vector<PartsRange> out{{0, s.gru_size(), segs.count()}};
  if (s.encoder)
    out.push_back({s.gru_size(), s.size() - s.gru_size(), static_cast<int64_t>(encoder_units(T * B, &segs).size())});
  return out;
}

void net_jvp(const NetShape& s, const float* params, const float* x, int64_t T, int64_t B, NetCache& c,
             const float* v, float* d_out, const TrialSegments* segs) {
  if (!s.encoder) {
    gru_jvp(s.gru, params, x, T, B, c.gru, v, d_out, nullptr, segs);
    return;
  }
  c.dy.resize(c.y.size());
  encoder_jvp(s.enc, params + s.gru_size(), x, T * B, c.enc, v + s.gru_size(), c.dy.data(), segs);
  gru_jvp(s.gru, params, c.y.data(), T, B, c.gru, v, d_out, c.dy.data(), segs);
}

void net_step(const NetShape& s, const float* params, const float* x, const float* h, int64_t B, NetCache& scratch,
              float* h_next, float* out, const TrialSegments* segs) {
  if (!s.encoder) {
    gru_step(s.gru, params, x, h, B, h_next, out, segs);
    return;
  }
  scratch.y.resize(static_cast<size_t>(B * s.enc.out()));
  encoder_forward(s.enc, params + s.gru_size(), x, B, scratch.enc, scratch.y.data(), segs);
  gru_step(s.gru, params, scratch.y.data(), h, B, h_next, out, segs);
}

}  // namespace rl2
