// Softmax policy head helpers shared by rollouts (CPU loop, CUDA kernel) and training.
#pragma once

#include <cmath>
#include <cstdint>

#include "rl2/core/hd.hpp"

namespace rl2 {

// p = softmax(logits) over A actions, computed stably; returns log of the normaliser (logsumexp).
RL2_HD inline float softmax(const float* logits, int32_t A, float* p) {
  float m = logits[0];
  for (int32_t a = 1; a < A; ++a) m = logits[a] > m ? logits[a] : m;
  float sum = 0.0f;
  for (int32_t a = 0; a < A; ++a) {
    p[a] = expf(logits[a] - m);
    sum += p[a];
  }
  const float inv = 1.0f / sum;
  for (int32_t a = 0; a < A; ++a) p[a] *= inv;
  return m + logf(sum);
}

// Inverse-CDF draw from p with a uniform u in [0, 1); the last action absorbs rounding.
RL2_HD inline int32_t sample_categorical(const float* p, int32_t A, float u) {
  float cum = 0.0f;
  for (int32_t a = 0; a < A - 1; ++a) {
    cum += p[a];
    if (u < cum) return a;
  }
  return A - 1;
}

}  // namespace rl2
