// Conjugate gradient for F x = b with F symmetric positive definite, given only products F v
// (DESIGN.md section 4: the natural-gradient direction from Fisher-vector products).
// Written once against a vector-ops backend `Ops` that provides
//   using Vec; Vec make_vec(); double dot(const Vec&, const Vec&);
//   void axpy(double a, const Vec& x, Vec& y);       // y += a x
//   void xpby(const Vec& x, double b, Vec& y);       // y = x + b y
//   void copy(const Vec& from, Vec& to); void fill_zero(Vec&);
// so the CPU and the CUDA backends share it; only scalars cross to the host.
#pragma once

#include <cmath>
#include <functional>

namespace rl2 {

struct CgResult {
  int iterations = 0;
  double residual = 0.0;  // |r|^2 at exit
  bool finite = true;
};

// Solves F x = b starting from x = 0. fvp(v, out) writes F v into out.
template <class Ops>
CgResult conjugate_gradient(Ops& ops, const std::function<void(const typename Ops::Vec&, typename Ops::Vec&)>& fvp,
                            const typename Ops::Vec& b, typename Ops::Vec& x, int iterations, double residual_tol = 1e-10) {
  CgResult res;
  auto r = ops.make_vec();
  auto p = ops.make_vec();
  auto fp = ops.make_vec();
  ops.fill_zero(x);
  ops.copy(b, r);
  ops.copy(b, p);
  double rr = ops.dot(r, r);
  for (int i = 0; i < iterations && rr > residual_tol; ++i) {
    fvp(p, fp);
    const double pfp = ops.dot(p, fp);
    if (!std::isfinite(pfp) || pfp <= 0.0) {
      res.finite = std::isfinite(pfp);
      break;
    }
    const double alpha = rr / pfp;
    ops.axpy(alpha, p, x);
    ops.axpy(-alpha, fp, r);
    const double rr_new = ops.dot(r, r);
    ops.xpby(r, rr_new / rr, p);
    rr = rr_new;
    res.iterations = i + 1;
  }
  res.residual = rr;
  res.finite = res.finite && std::isfinite(rr);
  return res;
}

}  // namespace rl2
