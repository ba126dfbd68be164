// One RL² network (DESIGN.md sections 3 and 6): the policy or the baseline, over T steps of B trials
// (time-major). Without an encoder it is the GRU + head of gru.hpp; with one (the maze) each step's
// input x = [image, onehot(prev a), prev r, prev d] first goes through the conv encoder of encoder.hpp,
// whose output y [T, B, 288] is the GRU's input:   x -> encoder -> y -> GRU -> head -> out.
// The flat parameter vector is [GRU + head (gru_layout) | encoder (encoder_layout)], so bandit and MDP
// vectors and checkpoints are exactly the GRU's. Without an encoder every call is exactly the GRU call
// (bit for bit). Backward chains gru_backward's input gradient into encoder_backward; the JVP feeds
// encoder_jvp's output tangent to gru_jvp as its input tangent dx. Fast float path only; the tests build
// float64 references from the *_ref functions of both parts.
#pragma once

#include <cstdint>
#include <vector>

#include "rl2/policy/encoder.hpp"
#include "rl2/policy/gru.hpp"

namespace rl2 {

struct NetShape {
  GruShape gru;          // gru.input = enc.out() when there is an encoder
  bool encoder = false;  // the maze: an image observation
  EncoderShape enc;

  int64_t input() const { return encoder ? enc.in() : gru.input; }  // floats of x per step
  int64_t gru_size() const { return gru_layout(gru).total; }       // offset of the encoder's parameters
  int64_t size() const { return gru_size() + (encoder ? encoder_layout(enc).total : 0); }
  // Floats a NetCache holds per step (T * B rows), for memory estimates.
  int64_t cache_floats_per_step() const;
};

// Forward results kept for backward and JVP, plus the encoder's output and a tangent/gradient buffer.
struct NetCache {
  GruCache<float> gru;
  EncoderCache<float> enc;
  std::vector<float> y;   // [T, B, enc.out()] the GRU's input (empty without an encoder)
  std::vector<float> dy;  // [T, B, enc.out()] scratch: d loss / dy (backward), the tangent of y (JVP)
};

// gru_init for the GRU and head, encoder_init for the encoder, both with `which` (0 policy, 1 baseline).
// params: [shape.size()].
void net_init(const NetShape& shape, uint64_t seed, uint32_t which, float head_scale, float* params);
// segs: the units of work (gru.hpp, encoder.hpp; nullptr: the GRU's chunks and the encoder's row groups):
// each segment computes alone, encoder and GRU, and backward can give each segment's partial gradient.
// x: [T, B, input()]; out: [T, B, gru.out]. Fills cache.
void net_forward(const NetShape& shape, const float* params, const float* x, int64_t T, int64_t B, NetCache& cache,
                 float* out, const TrialSegments* segs = nullptr);
// Where backward's partial sums go with parts: parameters [offset, offset + size) have `units` partials of
// size floats, stored one after another, range after range; the gradient is, per range, exactly
// float(Σ_u partial u in double, in order). A network: the GRU's segments, then the encoder's units.
struct PartsRange {
  int64_t offset, size, units;
};
std::vector<PartsRange> net_parts_layout(const NetShape& shape, int64_t T, int64_t B, const TrialSegments& segs);
// d_out: [T, B, gru.out]. ACCUMULATES (+=) into d_params [size()]. cache: from the forward at params, x.
// With parts: the partial sums of net_parts_layout instead (d_params untouched).
void net_backward(const NetShape& shape, const float* params, const float* x, int64_t T, int64_t B, NetCache& cache,
                  const float* d_out, float* d_params, const TrialSegments* segs = nullptr, float* parts = nullptr);
// d_out [T, B, gru.out] (overwritten) = directional derivative of out along v [size()]; x fixed.
void net_jvp(const NetShape& shape, const float* params, const float* x, int64_t T, int64_t B, NetCache& cache,
             const float* v, float* d_out, const TrialSegments* segs = nullptr);
// One rollout step: x [B, input()], h [B, H] -> h_next [B, H], out [B, gru.out]. scratch holds the
// encoder's work for these B rows (any NetCache not in use). segs: the GRU's units (nullptr: 32 trials).
void net_step(const NetShape& shape, const float* params, const float* x, const float* h, int64_t B,
              NetCache& scratch, float* h_next, float* out, const TrialSegments* segs = nullptr);

}  // namespace rl2
