// Adam (Kingma & Ba 2015) over one flat parameter vector: the baseline's regression and PPO's policy
// steps. Moments are part of the resumable training state, so a resumed run repeats the same steps.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace rl2 {

struct AdamState {
  std::vector<float> m, v;  // first and second moments, [n] (empty until the first step)
  int64_t t = 0;            // steps taken
};

// One step params -= lr * m_hat / (sqrt(v_hat) + eps) from grad [n]. Returns false, and changes nothing,
// when grad holds a non-finite value.
inline bool adam_step(AdamState& s, float* params, const float* grad, int64_t n, double lr) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(grad[i])) return false;
  if (static_cast<int64_t>(s.m.size()) != n) {
    s.m.assign(static_cast<size_t>(n), 0.0f);
    s.v.assign(static_cast<size_t>(n), 0.0f);
    s.t = 0;
  }
  constexpr double kB1 = 0.9, kB2 = 0.999, kEps = 1e-8;
  s.t += 1;
  const double c1 = 1.0 - std::pow(kB1, static_cast<double>(s.t));
  const double c2 = 1.0 - std::pow(kB2, static_cast<double>(s.t));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    s.m[i] = static_cast<float>(kB1 * s.m[i] + (1 - kB1) * grad[i]);
    s.v[i] = static_cast<float>(kB2 * s.v[i] + (1 - kB2) * static_cast<double>(grad[i]) * grad[i]);
    params[i] -= static_cast<float>(lr * (s.m[i] / c1) / (std::sqrt(s.v[i] / c2) + kEps));
  }
  return true;
}

}  // namespace rl2
