// Counter-based randomness shared bit for bit by the CPU and the GPU (DESIGN.md section 2).
//
// Philox4x32-10 (Random123) keyed by the 64-bit seed; the 128-bit counter is
// (trial id lo, trial id hi, step, purpose << 24 | block). Every random number of a trial is a pure
// function of (seed, trial, step, purpose, block): no generator state crosses threads or devices.
// Bits become floats only through integer arithmetic and exact power-of-two scalings, and the few
// transcendental functions we need (log, for exponentials and normals) are computed here in double
// with + - * / and sqrt only, which IEEE 754 rounds identically on both sides when FMA contraction is
// off (-ffp-contract=off on the host, -fmad=false for environment kernels).
#pragma once

#include <Random123/philox.h>

#include <cstdint>
#include <cmath>
#include <cstring>

#include "rl2/core/hd.hpp"

namespace rl2 {

// Disjoint trial-id streams: training draws ids from [0, 2^62), hyperparameter tuning of the
// baselines from kTuneStream + i, evaluation (RL² eval and baselines) from kEvalStream + i.
constexpr uint64_t kTuneStream = uint64_t{1} << 62;
constexpr uint64_t kEvalStream = uint64_t{1} << 63;

// What a block of random bits is for; part of the counter, so streams for different purposes never overlap.
enum class Purpose : uint32_t {
  kTask = 1,        // sampling the task (arm means, MDP rewards and transitions, which maze)
  kReward = 2,      // reward noise at a step
  kTransition = 3,  // next-state draw at a step
  kAction = 4,      // the learned policy's action sample at a step
  kBaseline = 5,    // a classical baseline's own randomness at a step (ties, posterior samples)
  kShuffle = 6,     // the trainer's minibatch order (trial = iteration, step = epoch)
  kMaze = 7,        // a maze configuration (trial = configuration id): layout, start pose, target
  kInit = 16,       // parameter initialisation (kInit + which network)
};

constexpr uint32_t kMaxBlocks = uint32_t{1} << 24;  // blocks of 4 words per (trial, step, purpose)

struct Bits4 {
  uint32_t v[4];
};

// The four 32-bit words of block `block` for (seed, trial, step, purpose).
RL2_HD_INLINE Bits4 philox_bits(uint64_t seed, uint64_t trial, uint32_t step, Purpose purpose,
                                uint32_t block) {
  r123::Philox4x32 gen;
  r123::Philox4x32::ctr_type ctr = {{static_cast<uint32_t>(trial), static_cast<uint32_t>(trial >> 32), step,
                                     (static_cast<uint32_t>(purpose) << 24) | (block & (kMaxBlocks - 1))}};
  r123::Philox4x32::key_type key = {{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)}};
  r123::Philox4x32::ctr_type out = gen(ctr, key);
  return Bits4{{out.v[0], out.v[1], out.v[2], out.v[3]}};
}

// Uniform float in [0, 1) on the 2^24 grid: exact on every IEEE machine.
RL2_HD_INLINE float u01(uint32_t x) { return static_cast<float>(x >> 8) * 0x1p-24f; }
// Uniform float in (0, 1] on the 2^24 grid (safe for log).
RL2_HD_INLINE float u01_open0(uint32_t x) { return static_cast<float>((x >> 8) + 1) * 0x1p-24f; }
// Uniform double in (-1, 1), symmetric, on the 2^-31 grid (exact).
RL2_HD_INLINE double uniform_signed(uint32_t x) {
  return (static_cast<double>(static_cast<int32_t>(x)) + 0.5) * 0x1p-31;
}
// Uniform integer in [0, n) by multiply-shift (bias below 2^-32 * n; identical on both sides).
RL2_HD_INLINE uint32_t uniform_int(uint32_t x, uint32_t n) {
  return static_cast<uint32_t>((static_cast<uint64_t>(x) * n) >> 32);
}

// Natural log of a positive, finite, normal double, from + - * / only (relative error ~1e-16).
// log x = e ln2 + 2 atanh(s), s = (m - 1)/(m + 1), m in [sqrt(1/2), sqrt(2)).
RL2_HD_INLINE double log_exact(double x) {
  uint64_t bits;
  memcpy(&bits, &x, sizeof bits);
  int e = static_cast<int>((bits >> 52) & 0x7ff) - 1023;
  bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
  double m;
  memcpy(&m, &bits, sizeof m);
  if (m > 1.4142135623730951) {
    m *= 0.5;
    e += 1;
  }
  const double s = (m - 1.0) / (m + 1.0);
  const double s2 = s * s;  // < 0.0295, so 11 odd terms reach double precision
  double p = 1.0 / 21;
  p = p * s2 + 1.0 / 19;
  p = p * s2 + 1.0 / 17;
  p = p * s2 + 1.0 / 15;
  p = p * s2 + 1.0 / 13;
  p = p * s2 + 1.0 / 11;
  p = p * s2 + 1.0 / 9;
  p = p * s2 + 1.0 / 7;
  p = p * s2 + 1.0 / 5;
  p = p * s2 + 1.0 / 3;
  p = p * s2;
  constexpr double kLn2Hi = 6.93147180369123816490e-01;  // ln 2 split so e * kLn2Hi is exact
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  const double de = static_cast<double>(e);
  return de * kLn2Hi + (2.0 * s + (2.0 * s * p + de * kLn2Lo));
}

// A sequential reader over the blocks of one (seed, trial, step, purpose): word after word.
struct RandomStream {
  uint64_t seed;
  uint64_t trial;
  uint32_t step;
  Purpose purpose;
  uint32_t block = 0;
  uint32_t lane = 4;
  Bits4 buf{};

  RL2_HD RandomStream(uint64_t seed_, uint64_t trial_, uint32_t step_, Purpose purpose_)
      : seed(seed_), trial(trial_), step(step_), purpose(purpose_) {}

  RL2_HD_INLINE uint32_t next_u32() {
    if (lane == 4) {
      buf = philox_bits(seed, trial, step, purpose, block++);
      lane = 0;
    }
    return buf.v[lane++];
  }
  RL2_HD_INLINE float uniform() { return u01(next_u32()); }          // [0, 1)
  RL2_HD_INLINE float uniform_open0() { return u01_open0(next_u32()); }  // (0, 1]
  // Exponential(1) in double: -log U, U in (0, 1].
  RL2_HD_INLINE double exponential() { return -log_exact(static_cast<double>(uniform_open0())); }
  // Standard normal in double by Marsaglia's polar method (needs only log and sqrt, both exact-rounded
  // or computed above). Rejection probability 1 - pi/4 per try; 64 failures in a row (p < 1e-43) give 0.
  RL2_HD_INLINE double normal() {
    for (int tries = 0; tries < 64; ++tries) {
      const double u = uniform_signed(next_u32());
      const double v = uniform_signed(next_u32());
      const double s = u * u + v * v;
      if (s < 1.0 && s > 0.0) return u * ::sqrt(-2.0 * log_exact(s) / s);
    }
    return 0.0;
  }
};

}  // namespace rl2
