// One TRPO policy update (Schulman et al. 2015; DESIGN.md section 4), written once against a backend.
//
// maximise L(theta) = E[pi_theta(a|s) / pi_old(a|s) * A]  subject to  mean KL(pi_old || pi_theta) <= delta.
// Natural direction x = (F + damping I)^-1 g by conjugate gradient on Fisher-vector products, scaled so
// the quadratic KL model equals delta, then a backtracking line search (x0.8, at most 15 tries) that
// accepts the first step that improves L and keeps the true KL <= delta; otherwise the old parameters
// stay. A non-finite loss or gradient skips the update without touching the parameters.
//
// Backend `Be` provides the vector ops of cg.hpp plus
//   double surrogate_grad(Vec& grad);                  // at theta_old: L(theta_old) and its gradient
//   void fvp(const Vec& v, Vec& out);                  // F v at theta_old (no damping)
//   void get_params(Vec&); void set_params(const Vec&);
//   SurrogateKl surrogate_kl();                        // L and mean KL at the current parameters
// Every phase ends with a scalar the host reads (a dot product, the surrogate), so on a device backend
// the wall times of the phases (gradient, conjugate gradient, line search) include their device work.
#pragma once

#include <chrono>
#include <cmath>

#include "rl2/algo/cg.hpp"
#include "rl2/algo/update.hpp"

namespace rl2 {

struct TrpoConfig {
  double max_kl = 0.01;
  int cg_iterations = 10;
  double cg_damping = 0.01;  // DESIGN.md: choose in 1e-3..1e-1
  double backtrack_ratio = 0.8;
  int max_backtracks = 15;
  // Fraction of the batch's trials the Fisher-vector products use (the backend's business; 1: all).
  double fvp_subsample = 1.0;
};

namespace detail {
// Adds the seconds since `t0` to `acc` and restarts t0.
inline void lap(std::chrono::steady_clock::time_point& t0, double& acc) {
  const auto now = std::chrono::steady_clock::now();
  acc += std::chrono::duration<double>(now - t0).count();
  t0 = now;
}
}  // namespace detail

template <class Be>
UpdateStats trpo_step(Be& be, const TrpoConfig& cfg) {
  using Vec = typename Be::Vec;
  UpdateStats st;
  auto t0 = std::chrono::steady_clock::now();
  Vec grad = be.make_vec();
  st.surrogate_before = be.surrogate_grad(grad);
  const double gg = be.dot(grad, grad);
  detail::lap(t0, st.seconds_gradient);
  if (!std::isfinite(st.surrogate_before) || !std::isfinite(gg)) {
    st.status = UpdateStatus::kNonFinite;
    st.reason = "non-finite surrogate or gradient";
    return st;
  }
  if (gg == 0.0) {
    st.reason = "zero gradient";
    return st;
  }
  Vec tmp = be.make_vec();
  auto damped_fvp = [&](const Vec& v, Vec& out) {
    be.fvp(v, out);
    be.axpy(cfg.cg_damping, v, out);
  };
  Vec dir = be.make_vec();
  const CgResult cg = conjugate_gradient<Be>(be, damped_fvp, grad, dir, cfg.cg_iterations);
  st.cg_iterations = cg.iterations;
  st.cg_residual = cg.residual;
  damped_fvp(dir, tmp);
  const double shs = 0.5 * be.dot(dir, tmp);  // 0.5 x^T F x: the KL model of step x
  detail::lap(t0, st.seconds_cg);
  if (!cg.finite || !std::isfinite(shs) || shs <= 0.0) {
    st.status = UpdateStatus::kNonFinite;
    st.reason = "non-finite or non-positive curvature in conjugate gradient";
    return st;
  }
  const double scale = std::sqrt(cfg.max_kl / shs);  // full step = scale * x has model KL = max_kl
  st.expected_gain = scale * be.dot(grad, dir);
  Vec old_params = be.make_vec();
  be.get_params(old_params);
  Vec candidate = be.make_vec();
  double frac = 1.0;
  for (int k = 0; k < cfg.max_backtracks; ++k, frac *= cfg.backtrack_ratio) {
    st.steps = k + 1;
    be.copy(old_params, candidate);
    be.axpy(frac * scale, dir, candidate);
    be.set_params(candidate);
    const SurrogateKl s = be.surrogate_kl();
    if (std::isfinite(s.surrogate) && std::isfinite(s.kl) && s.kl <= cfg.max_kl && s.surrogate > st.surrogate_before) {
      detail::lap(t0, st.seconds_line_search);
      st.status = UpdateStatus::kAccepted;
      st.surrogate_gain = s.surrogate - st.surrogate_before;
      st.kl = s.kl;
      return st;
    }
  }
  be.set_params(old_params);
  detail::lap(t0, st.seconds_line_search);
  st.status = UpdateStatus::kRejected;
  st.reason = "line search found no step that improves the surrogate within the KL limit";
  return st;
}

}  // namespace rl2
