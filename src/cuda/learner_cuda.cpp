// The CUDA learner (learner_cuda.hpp): context, network, policy objective, advantages, baseline fit and the
// Learner itself. The algorithm is the CPU learner's (src/cpu/learner_cpu.cpp, src/cpu/policy_objective.cpp)
// step for step: the same rollout counters, GAE over whole trials, advantage standardisation, trpo_step /
// ppo_update, entropy bonus, baseline regression with the same shuffles and normaliser, and the same
// non-finite rules. Where the CPU writes a per-element loop, a kernel of kernels/train.cu runs the same body.
// cuBLAS is column-major: a row-major [rows, cols] matrix is its column-major [cols, rows] transpose, so the
// head's products are written on the transposes (comments give both).
#include "cuda/learner_cuda.hpp"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "rl2/algo/minibatch.hpp"
#include "rl2/algo/ppo.hpp"
#include "rl2/core/check.hpp"
#include "rl2/core/device.hpp"
#include "rl2/policy/network.hpp"
#include "rl2/policy/policy.hpp"
#include "train.cuh"

namespace rl2 {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int as_int(int64_t v, const char* what) {
  RL2_CHECK(v >= 0 && v <= INT_MAX, std::string(what) + " exceeds cuBLAS's int range");
  return static_cast<int>(v);
}

bool out_of_memory(const std::string& msg) {
  return msg.find("cudaErrorMemoryAllocation") != std::string::npos ||
         msg.find("CUDNN_STATUS_ALLOC_FAILED") != std::string::npos ||
         msg.find("CUBLAS_STATUS_ALLOC_FAILED") != std::string::npos;
}

}  // namespace

// ---- context ----------------------------------------------------------------------------------------------
CudaTrainContext::CudaTrainContext() {
  RL2_REQUIRE(cuda_probe().usable, "no usable GPU: " + cuda_probe().reason);
  try {
    RL2_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    RL2_CUBLAS_CHECK(cublasCreate(&blas_));
    RL2_CUBLAS_CHECK(cublasSetStream(blas_, stream_));
    // FP32 SGEMMs on the FP32 cores (no TF32), as the rollout's default: both paths compute one function.
    RL2_CUBLAS_CHECK(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH));
    RL2_CUDNN_CHECK(cudnnCreate(&dnn_));
    RL2_CUDNN_CHECK(cudnnSetStream(dnn_, stream_));
    partials_ = DeviceBuffer<double>(kReduceBlocks);
    result_ = DeviceBuffer<double>(1);
  } catch (...) {
    if (dnn_) cudnnDestroy(dnn_);
    if (blas_) cublasDestroy(blas_);
    if (stream_) cudaStreamDestroy(stream_);
    throw;
  }
}

CudaTrainContext::~CudaTrainContext() {
  cudaStreamSynchronize(stream_);
  partials_ = DeviceBuffer<double>();
  result_ = DeviceBuffer<double>();
  cudnnDestroy(dnn_);
  cublasDestroy(blas_);
  cudaStreamDestroy(stream_);
}

void CudaTrainContext::synchronize() const { RL2_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

double CudaTrainContext::reduce(int32_t op, int64_t n, const double* xd, const float* xf, const float* yf, double mean,
                                const float* mask, int64_t mask_width) {
  launch_reduce(ReduceArgs{static_cast<ReduceOp>(op), n, xd, xf, yf, mean, partials_.data(), result_.data(), mask,
                           mask_width},
                stream_);
  double out = 0.0;
  RL2_CUDA_CHECK(cudaMemcpyAsync(&out, result_.data(), sizeof out, cudaMemcpyDeviceToHost, stream_));
  synchronize();
  return out;
}

double CudaTrainContext::sum(const double* x, int64_t n, const float* mask) {
  return reduce(static_cast<int32_t>(ReduceOp::kSumF64), n, x, nullptr, nullptr, 0.0, mask);
}
double CudaTrainContext::max(const double* x, int64_t n) {
  return reduce(static_cast<int32_t>(ReduceOp::kMaxF64), n, x, nullptr, nullptr, 0.0);
}
double CudaTrainContext::sum(const float* x, int64_t n, const float* mask) {
  return reduce(static_cast<int32_t>(ReduceOp::kSumF32), n, nullptr, x, nullptr, 0.0, mask);
}
StepMask CudaTrainContext::step_mask(const float* mask, int64_t n) {
  return StepMask{mask, mask ? sum(mask, n) : static_cast<double>(n)};  // a mask is 0 or 1: the sum is exact
}
double CudaTrainContext::dot(const float* a, const float* b, int64_t n) {
  return reduce(static_cast<int32_t>(ReduceOp::kDotF32), n, nullptr, a, b, 0.0);
}
double CudaTrainContext::variance(const float* x, int64_t n, const StepMask& steps) {
  const double mean = sum(x, n, steps.mask) / steps.active;
  return reduce(static_cast<int32_t>(ReduceOp::kSqDevF32), n, nullptr, x, nullptr, mean, steps.mask) / steps.active;
}
double CudaTrainContext::variance(const double* x, int64_t n, const StepMask& steps) {
  const double mean = sum(x, n, steps.mask) / steps.active;
  return reduce(static_cast<int32_t>(ReduceOp::kSqDevF64), n, x, nullptr, nullptr, mean, steps.mask) / steps.active;
}
double CudaTrainContext::max_abs_diff(const float* a, const float* b, int64_t n, const float* mask, int64_t mask_width) {
  return reduce(static_cast<int32_t>(ReduceOp::kMaxAbsDiffF32), n, nullptr, a, b, 0.0, mask, mask_width);
}
int64_t CudaTrainContext::count_nonfinite(const float* x, int64_t n) {
  return static_cast<int64_t>(reduce(static_cast<int32_t>(ReduceOp::kNonFiniteF32), n, nullptr, x, nullptr, 0.0));
}

// ---- network ----------------------------------------------------------------------------------------------
CudaEncoderStage::CudaEncoderStage(CudaTrainContext& ctx, const EncoderShape& shape, int64_t steps, int64_t max_batch)
    : encoder(ctx.dnn(), ctx.blas(), ctx.stream(), shape, steps * max_batch),
      y(static_cast<size_t>(steps * max_batch) * static_cast<size_t>(shape.out())) {}

CudaNet::CudaNet(CudaTrainContext& ctx, CudnnGru& gru, const NetShape& shape, CudaEncoderStage* encoder)
    : ctx_(ctx), gru_(gru), shape_(shape), layout_(gru_layout(shape.gru)), enc_(encoder) {
  RL2_CHECK(shape.gru.input == gru.input() && shape.gru.hidden == gru.hidden(),
            "CudaNet: the shape does not match the cuDNN GRU");
  RL2_CHECK(layout_.head_w == gru.canonical_floats(), "CudaNet: the GRU part of gru_layout differs from cuDNN's count");
  RL2_CHECK(shape.encoder == (encoder != nullptr), "CudaNet: an encoder stage goes with an encoder shape, and only then");
  if (enc_) {
    const EncoderShape& e = enc_->encoder.shape();
    RL2_CHECK(e.in() == shape.enc.in() && e.out() == shape.enc.out() && shape.gru.input == e.out() &&
                  encoder_layout(e).total == encoder_layout(shape.enc).total,
              "CudaNet: the encoder stage's shape differs from the network's");
    RL2_CHECK(enc_->encoder.max_rows() >= gru.steps() * gru.max_batch(), "CudaNet: the encoder stage has too few rows");
  }
  ws_ = DeviceBuffer<float>(static_cast<size_t>(gru.weight_space_floats()));
  RL2_CUDA_CHECK(cudaMemsetAsync(ws_.data(), 0, ws_.bytes(), ctx.stream()));  // padding, if any, stays 0
}

void CudaNet::forward(const float* params, const float* x, int64_t batch, float* out) {
  const int64_t M = gru_.steps() * batch;
  const int H = shape_.gru.hidden, O = shape_.gru.out;
  // y [T, B, enc.out()] = encoder(x) on all T·B rows (they are independent steps), the GRU's input.
  if (enc_) enc_->encoder.forward(params + shape_.gru_size(), x, M, enc_->y.data());
  gru_.pack(params + layout_.weight_ih, ws_.data());
  gru_.forward(ws_.data(), gru_input(x), batch);
  // out [M, O] = y [M, H] · head_wᵀ:   out_cm [O, M] = head_w_cm [H, O]ᵀ · y_cm [H, M]
  const float one = 1.0f, zero = 0.0f;
  RL2_CUBLAS_CHECK(cublasSgemm(ctx_.blas(), CUBLAS_OP_T, CUBLAS_OP_N, O, as_int(M, "T * batch"), H, &one,
                               params + layout_.head_w, H, gru_.y(), H, &zero, out, O));
  launch_add_bias(AddBiasArgs{M, O, params + layout_.head_b, out}, ctx_.stream());
}

void CudaNet::backward(const float* params, const float* x, int64_t batch, const float* d_out, float* grad) {
  const int64_t M = gru_.steps() * batch;
  const int H = shape_.gru.hidden, O = shape_.gru.out, m = as_int(M, "T * batch");
  const float one = 1.0f, zero = 0.0f;
  // d head_w [O, H] = d_outᵀ · y:        dW_cm [H, O] = y_cm [H, M] · d_out_cm [O, M]ᵀ
  RL2_CUBLAS_CHECK(cublasSgemm(ctx_.blas(), CUBLAS_OP_N, CUBLAS_OP_T, H, O, m, &one, gru_.y(), H, d_out, O, &zero,
                               grad + layout_.head_w, H));
  launch_column_sums(ColumnSumsArgs{M, O, d_out, grad + layout_.head_b}, ctx_.stream());  // d head_b [O]
  // dy [M, H] = d_out · head_w:          dy_cm [H, M] = head_w_cm [H, O] · d_out_cm [O, M]
  RL2_CUBLAS_CHECK(cublasSgemm(ctx_.blas(), CUBLAS_OP_N, CUBLAS_OP_N, H, m, O, &one, params + layout_.head_w, H, d_out,
                               O, &zero, gru_.dy(), H));
  gru_.backward(ws_.data(), gru_input(x), batch);
  gru_.unpack(gru_.dweight_space(), grad + layout_.weight_ih);
  if (enc_) {
    // d encoder [total] = d/dparams sum(dx · y): cuDNN's dx [T, B, enc.out()] is the gradient at y.
    float* d_enc = grad + shape_.gru_size();
    const size_t enc_floats = static_cast<size_t>(shape_.size() - shape_.gru_size());
    RL2_CUDA_CHECK(cudaMemsetAsync(d_enc, 0, enc_floats * sizeof(float), ctx_.stream()));  // backward accumulates
    enc_->encoder.backward(params + shape_.gru_size(), x, M, gru_.dx(), d_enc);
  }
}

// ---- Adam ------------------------------------------------------------------------------------------------
void upload_adam(const AdamState& host, CudaAdamState& dev) {
  dev.m = to_device(host.m);
  dev.v = to_device(host.v);
  dev.t = host.t;
}

AdamState download_adam(const CudaAdamState& dev) {
  AdamState s;
  s.m = to_host(dev.m);
  s.v = to_host(dev.v);
  s.t = dev.t;
  return s;
}

bool cuda_adam_step(CudaTrainContext& ctx, CudaAdamState& s, float* params, const float* grad, int64_t n, double lr) {
  if (ctx.count_nonfinite(grad, n) > 0) return false;
  if (static_cast<int64_t>(s.m.size()) != n) {
    s.m = DeviceBuffer<float>(static_cast<size_t>(n));
    s.v = DeviceBuffer<float>(static_cast<size_t>(n));
    RL2_CUDA_CHECK(cudaMemsetAsync(s.m.data(), 0, s.m.bytes(), ctx.stream()));
    RL2_CUDA_CHECK(cudaMemsetAsync(s.v.data(), 0, s.v.bytes(), ctx.stream()));
    s.t = 0;
  }
  constexpr double kB1 = 0.9, kB2 = 0.999;  // adam.hpp's
  s.t += 1;
  const double c1 = 1.0 - std::pow(kB1, static_cast<double>(s.t));
  const double c2 = 1.0 - std::pow(kB2, static_cast<double>(s.t));
  launch_adam(AdamArgs{n, params, grad, s.m.data(), s.v.data(), lr, c1, c2}, ctx.stream());
  return true;
}

// ---- vector ops ------------------------------------------------------------------------------------------
CudaVecOps::Vec CudaVecOps::make_vec() const {
  Vec v(static_cast<size_t>(n));
  fill_zero(v);
  return v;
}
double CudaVecOps::dot(const Vec& a, const Vec& b) const { return ctx->dot(a.data(), b.data(), n); }
void CudaVecOps::axpy(double a, const Vec& x, Vec& y) const {
  launch_axpy(AxpyArgs{n, a, x.data(), y.data()}, ctx->stream());
}
void CudaVecOps::xpby(const Vec& x, double b, Vec& y) const {
  launch_xpby(XpbyArgs{n, x.data(), b, y.data()}, ctx->stream());
}
void CudaVecOps::copy(const Vec& from, Vec& to) const {
  if (n > 0)
    RL2_CUDA_CHECK(cudaMemcpyAsync(to.data(), from.data(), static_cast<size_t>(n) * sizeof(float),
                                   cudaMemcpyDeviceToDevice, ctx->stream()));
}
void CudaVecOps::fill_zero(Vec& v) const {
  if (n > 0) RL2_CUDA_CHECK(cudaMemsetAsync(v.data(), 0, static_cast<size_t>(n) * sizeof(float), ctx->stream()));
}

// ---- policy objective -------------------------------------------------------------------------------------
CudaPolicyObjective::CudaPolicyObjective(CudaTrainContext& c, CudaNet& net, float* params, const CudaPolicyBatch& batch)
    : net_(net), params_(params), b_(batch), M_(batch.T * batch.N), active_(static_cast<double>(batch.T * batch.N)) {
  ctx = &c;
  n = net.size();
  RL2_CHECK(net.shape().gru.out == b_.A, "CudaPolicyObjective: the network's head must have one output per action");
  RL2_CHECK(b_.T == net.gru().steps() && b_.N <= net.gru().max_batch(), "CudaPolicyObjective: batch larger than the GRU's");
  const size_t ma = static_cast<size_t>(M_) * static_cast<size_t>(b_.A);
  logits_ = DeviceBuffer<float>(ma);
  logits_old_ = DeviceBuffer<float>(ma);
  probs_ = DeviceBuffer<float>(ma);
  d_logits_ = DeviceBuffer<float>(ma);
  terms_ = DeviceBuffer<double>(static_cast<size_t>(M_));
  aux_ = DeviceBuffer<double>(static_cast<size_t>(M_));
  gap_ = DeviceBuffer<double>(static_cast<size_t>(M_));
  pm_ = DeviceBuffer<float>(static_cast<size_t>(n));
  tmp_ = DeviceBuffer<float>(static_cast<size_t>(n));
  ids_ = DeviceBuffer<int64_t>(static_cast<size_t>(b_.N));
  active_ = ctx->step_mask(b_.mask, M_).active;
}

void CudaPolicyObjective::get_params(Vec& out) const {
  RL2_CUDA_CHECK(cudaMemcpyAsync(out.data(), params_, static_cast<size_t>(n) * sizeof(float), cudaMemcpyDeviceToDevice,
                                 ctx->stream()));
}

void CudaPolicyObjective::set_params(const Vec& p) {
  RL2_CUDA_CHECK(cudaMemcpyAsync(params_, p.data(), static_cast<size_t>(n) * sizeof(float), cudaMemcpyDeviceToDevice,
                                 ctx->stream()));
}

void CudaPolicyObjective::fill_nan(Vec& v) const {
  launch_fill(FillArgs{n, std::numeric_limits<float>::quiet_NaN(), v.data()}, ctx->stream());
}

// dL/dlogits_k = [ratio_k A_k (onehot(a_k) - p_k) - beta p_k (log p_k + H_k)] / M (policy_logits_grad).
double CudaPolicyObjective::surrogate_grad(Vec& grad) {
  cudaStream_t s = ctx->stream();
  net_.forward(params_, b_.x, b_.N, logits_.data());
  launch_surrogate_steps(SurrogateStepArgs{M_, b_.A, logits_.data(), b_.actions, b_.logp_old, b_.adv, b_.entropy_coef,
                                           1.0 / active_, probs_.data(), d_logits_.data(), terms_.data(), gap_.data(),
                                           b_.mask},
                         s);
  RL2_CUDA_CHECK(cudaMemcpyAsync(logits_old_.data(), logits_.data(), logits_.bytes(), cudaMemcpyDeviceToDevice, s));
  net_.backward(params_, b_.x, b_.N, d_logits_.data(), grad.data());
  mismatch_ = ctx->max(gap_.data(), M_);
  theta_norm_ = std::sqrt(ctx->dot(params_, params_, n));
  kappa_ = 0.0;  // every TRPO step calibrates its own probes (a resumed run repeats them)
  return ctx->sum(terms_.data(), M_) / active_;
}

void CudaPolicyObjective::shifted_forward(const Vec& v, double step) {
  RL2_CUDA_CHECK(cudaMemcpyAsync(pm_.data(), params_, pm_.bytes(), cudaMemcpyDeviceToDevice, ctx->stream()));
  launch_axpy(AxpyArgs{n, step, v.data(), pm_.data()}, ctx->stream());
  net_.forward(pm_.data(), b_.x, b_.N, logits_.data());
}

// F v ~ (g(theta + eps v) - g(theta - eps v)) / (2 eps), g = the gradient of the mean KL(pi_old || pi_theta),
// whose logits gradient is (p_theta - p_old) / M. eps: the first probe steps the parameters by
// kFvpFirstStep (1 + |theta|) and measures delta = max |logits(theta + eps v) - logits(theta_old)|; eps is
// rescaled until delta lies within a factor kFvpBand of kFvpLogitStep, and the measured slope
// kappa = delta / (eps |v|) predicts the next probe's eps (usually no re-probe after the first product).
void CudaPolicyObjective::fvp(const Vec& v, Vec& out) {
  const double vv = dot(v, v);
  if (!std::isfinite(vv)) {
    fill_nan(out);
    return;
  }
  if (vv == 0.0) {
    fill_zero(out);
    return;
  }
  const double vnorm = std::sqrt(vv), target = kFvpLogitStep;
  double eps = kappa_ > 0.0 ? target / (kappa_ * vnorm) : kFvpFirstStep * (1.0 + theta_norm_) / vnorm;
  double delta = 0.0;
  for (int probe = 0;; ++probe) {
    shifted_forward(v, eps);
    delta = ctx->max_abs_diff(logits_.data(), logits_old_.data(), M_ * b_.A, b_.mask, b_.A);  // active steps
    if (!std::isfinite(delta)) {
      fill_nan(out);
      return;
    }
    const bool in_band = delta >= target / kFvpBand && delta <= target * kFvpBand;
    if (in_band || probe + 1 >= kFvpMaxProbes) break;
    eps *= delta > 0.0 ? target / delta : 1e3;
  }
  if (delta == 0.0) {  // v moves no logit even at the largest probe: F v = 0 to float precision
    fill_zero(out);
    return;
  }
  kappa_ = delta / (eps * vnorm);
  last_eps_ = eps;
  const double scale = 1.0 / (2.0 * eps * active_);
  cudaStream_t s = ctx->stream();
  launch_kl_grad(KlGradArgs{M_, b_.A, logits_.data(), probs_.data(), scale, d_logits_.data(), b_.mask}, s);
  net_.backward(pm_.data(), b_.x, b_.N, d_logits_.data(), out.data());
  shifted_forward(v, -eps);
  launch_kl_grad(KlGradArgs{M_, b_.A, logits_.data(), probs_.data(), scale, d_logits_.data(), b_.mask}, s);
  net_.backward(pm_.data(), b_.x, b_.N, d_logits_.data(), tmp_.data());
  launch_axpy(AxpyArgs{n, -1.0, tmp_.data(), out.data()}, s);
}

SurrogateKl CudaPolicyObjective::surrogate_kl() {
  net_.forward(params_, b_.x, b_.N, logits_.data());
  launch_surrogate_kl(SurrogateKlArgs{M_, b_.A, logits_.data(), b_.actions, b_.logp_old, b_.probs_old, b_.adv,
                                      b_.entropy_coef, terms_.data(), aux_.data(), b_.mask},
                      ctx->stream());
  return SurrogateKl{ctx->sum(terms_.data(), M_) / active_, ctx->sum(aux_.data(), M_) / active_};
}

double CudaPolicyObjective::surrogate_old() {
  launch_surrogate_old(SurrogateOldArgs{M_, b_.A, b_.probs_old, b_.adv, b_.entropy_coef, terms_.data(), b_.mask},
                       ctx->stream());
  minibatches_ = 0;
  return ctx->sum(terms_.data(), M_) / active_;
}

void CudaPolicyObjective::ensure_minibatch(int64_t mb) {
  const size_t need_x = static_cast<size_t>(b_.T * mb) * static_cast<size_t>(net_.input());
  if (mb_x_.size() < need_x) mb_x_ = DeviceBuffer<float>(need_x);
  const size_t need_p = static_cast<size_t>(b_.T * mb) * static_cast<size_t>(b_.A);
  if (mb_probs_.size() < need_p) mb_probs_ = DeviceBuffer<float>(need_p);
  const size_t need_m = b_.mask ? static_cast<size_t>(b_.T * mb) : 0;
  if (mb_mask_.size() < need_m) mb_mask_ = DeviceBuffer<float>(need_m);
}

// The clipped objective on trials ids[0..mb) (time-major gather of their steps) and its gradient.
double CudaPolicyObjective::minibatch_grad(const int64_t* ids, int64_t mb, double clip, Vec& grad) {
  RL2_CHECK(mb >= 1 && mb <= b_.N, "minibatch_grad: minibatch size out of range");
  cudaStream_t s = ctx->stream();
  ensure_minibatch(mb);
  RL2_CUDA_CHECK(cudaMemcpyAsync(ids_.data(), ids, static_cast<size_t>(mb) * sizeof(int64_t), cudaMemcpyHostToDevice, s));
  const int64_t I = net_.input(), steps = b_.T * mb;
  launch_gather_trials(GatherTrialsArgs{b_.x, b_.T, b_.N, I, ids_.data(), mb, mb_x_.data()}, s);
  net_.forward(params_, mb_x_.data(), mb, logits_.data());
  // The minibatch's active steps (every trial's first step is active, so never 0).
  double active_mb = static_cast<double>(steps);
  if (b_.mask) {
    launch_gather_trials(GatherTrialsArgs{b_.mask, b_.T, b_.N, 1, ids_.data(), mb, mb_mask_.data()}, s);
    active_mb = ctx->sum(mb_mask_.data(), steps);
  }
  const double scale = 1.0 / active_mb;
  launch_ppo_steps(PpoStepArgs{b_.T, mb, b_.N, b_.A, ids_.data(), logits_.data(), b_.actions, b_.logp_old, b_.probs_old,
                               b_.adv, clip, b_.entropy_coef, scale, mb_probs_.data(), d_logits_.data(), terms_.data(),
                               aux_.data(), gap_.data(), b_.mask},
                   s);
  net_.backward(params_, mb_x_.data(), mb, d_logits_.data(), grad.data());
  // The first minibatch is evaluated at theta_old: its steps give the rollout/training parity.
  if (minibatches_++ == 0) mismatch_ = ctx->max(gap_.data(), steps);
  mb_kl_ = ctx->sum(aux_.data(), steps) * scale;
  return ctx->sum(terms_.data(), steps) * scale;
}

// Adam descent on -grad with rate lr moves the parameters exactly as Adam on grad with rate -lr (as the CPU).
bool CudaPolicyObjective::adam_ascent(const Vec& grad, double lr) {
  RL2_CHECK(adam_ != nullptr, "PPO needs an Adam state (set_adam)");
  return cuda_adam_step(*ctx, *adam_, params_, grad.data(), n, -lr);
}

// ---- advantages ---------------------------------------------------------------------------------------------
double cuda_compute_advantages(CudaTrainContext& ctx, int64_t T, int64_t N, const float* rewards, const float* raw_values,
                               double return_mean, double return_std, double gamma, double lambda, float* values,
                               float* adv, float* returns, double* scratch, const StepMask& steps) {
  const float* mask = steps.mask;
  const int64_t M = T * N;
  cudaStream_t s = ctx.stream();
  // Inactive steps: value 0 and reward 0 (a finished maze trial), so GAE leaves their adv and returns 0.
  launch_values(ValuesArgs{M, raw_values, return_mean, return_std, values, mask}, s);
  launch_gae(GaeArgs{T, N, rewards, values, gamma, lambda, adv, returns}, s);
  const double var_ret = ctx.variance(returns, M, steps);
  launch_residual(ResidualArgs{M, returns, values, scratch}, s);
  const double ev = var_ret > 0.0 ? 1.0 - ctx.variance(scratch, M, steps) / var_ret : 0.0;
  const double adv_mean = ctx.sum(adv, M, mask) / steps.active;
  const double sd = std::sqrt(ctx.variance(adv, M, steps));
  launch_standardise(StandardiseArgs{M, adv_mean, sd, adv, mask}, s);
  return ev;
}

// ---- memory ---------------------------------------------------------------------------------------------
namespace {

// cuDNN's and cuBLAS's own device memory (handles, loaded kernels, cuBLAS's default workspace): a margin,
// since it cannot be queried before the libraries load.
constexpr double kLibraryBytes = 512.0 * 1024 * 1024;

InputLayout layout_of(const EnvConfig& env) {
  return InputLayout{static_cast<int32_t>(env.obs_size()), env.num_actions()};
}

}  // namespace

CudaLearnerBytes cuda_learner_bytes(const TrainConfig& cfg, const CudnnTempBytes& temp, int64_t temp_batch) {
  const NetShape ps = cfg.policy_shape(), bs = cfg.baseline_shape();
  const GruShape pol = ps.gru;
  // X: floats of x per step (the maze: the image and the extra inputs); G: the GRU's input (the maze: the
  // encoder's output).
  const double T = static_cast<double>(cfg.env.trial_length()), X = static_cast<double>(ps.input()), G = pol.input,
               H = pol.hidden, A = pol.out;
  const double P = static_cast<double>(ps.size()), Pb = static_cast<double>(bs.size());
  const double gru_floats = 3 * H * G + 3 * H * H + 6 * H;
  const bool ppo = cfg.algo == "ppo";
  const int64_t ref = std::max<int64_t>(1, temp_batch);
  CudaLearnerBytes b;
  // Parameters (policy, baseline), the baseline's gradient and Adam moments, the policy's Adam moments
  // (PPO), trpo_step's and cg's eight vectors (PPO: three) and the objective's two probe vectors, two
  // weight spaces and one weight-space gradient, the canonical index (int64).
  b.fixed = 4.0 * (P + Pb + 3 * Pb + (ppo ? 2 * P : 0.0) + (ppo ? 3 : 8) * P + 2 * P + 3 * gru_floats) + 8.0 * gru_floats +
            static_cast<double>(rollout_fixed_bytes(cfg.env, ps, bs)) + kLibraryBytes;
  const int64_t mb_base = std::max<int64_t>(1, std::min<int64_t>(cfg.baseline_minibatches, cfg.trials_per_iter()));
  const double base_mb_share = 1.0 / static_cast<double>(mb_base);  // the baseline's minibatch x, per trial
  const int64_t mb_ppo = std::max<int64_t>(1, std::min<int64_t>(cfg.ppo.minibatches, cfg.trials_per_iter()));
  const double ppo_share = ppo ? 1.0 / static_cast<double>(mb_ppo) : 0.0;
  double per_step = 4.0 * (2 * H + G)              // cuDNN y, dy, dx
                    + 4.0 * 4 * A                 // logits, logits_old, probs, d_logits
                    + 8.0 * 3                     // terms, aux, gap
                    + 4.0 * 5 + 8.0               // values, adv, returns, pred, d_out; scratch
                    + 4.0 * X * (base_mb_share + ppo_share) + 4.0 * A * ppo_share;  // minibatch gathers
  double encoder = 0.0;
  if (ps.encoder) {
    per_step += 4.0 * G                                  // the encoder stage's output y
                + 4.0 * (base_mb_share + ppo_share);     // minibatch masks
    // The training encoder's activations for T rows per trial (CudnnEncoder::bytes at the reference batch).
    encoder = CudnnEncoder::bytes(ps.enc, cfg.env.trial_length() * ref) / static_cast<double>(ref);
  }
  b.per_trial = static_cast<double>(rollout_bytes_per_trial(cfg.env, ps)) + T * per_step + 8.0 * 3 /*totals, ids*/ +
                8.0 * H /*h_0 zeros, h scratch*/ + encoder +
                static_cast<double>(temp.work + temp.reserve) / static_cast<double>(ref);
  return b;
}

void check_cuda_learner_fits(const TrainConfig& cfg) {
  RL2_REQUIRE(cuda_probe().usable, "no usable GPU: " + cuda_probe().reason);
  const int64_t N = cfg.trials_per_iter(), T = cfg.env.trial_length();
  const GruShape pol = cfg.policy_shape().gru;
  // cuDNN indexes an RNN data tensor (x [T, N, I], y [T, N, H]) with 32-bit integers: e.g. N = 2^20 trials of
  // T = 10 steps with H = 256 would be 2.7e9 elements in y. Refuse that before any memory is counted.
  const int64_t widest = std::max<int64_t>(pol.input, pol.hidden);
  const int64_t max_trials = int64_t{INT_MAX} / (T * widest);
  RL2_REQUIRE(N <= max_trials, "training on the GPU with --steps-per-iter " + std::to_string(cfg.steps_per_iter) +
                                   " makes cuDNN tensors of " + std::to_string(T * N * widest) +
                                   " elements (its limit is 2^31 - 1): at most " + std::to_string(max_trials * T) +
                                   " steps per iteration for " + cfg.env.describe() + " with a GRU-" +
                                   std::to_string(pol.hidden));
  // cuDNN's temp space at a reference batch, scaled linearly (it grows with the batch).
  const int64_t ref = std::min<int64_t>(N, 4096);
  cudnnHandle_t dnn = nullptr;
  RL2_CUDNN_CHECK(cudnnCreate(&dnn));
  CudnnTempBytes temp;
  try {
    temp = CudnnGru::temp_bytes(dnn, pol.input, pol.hidden, T, ref);
  } catch (...) {
    cudnnDestroy(dnn);
    throw;
  }
  cudnnDestroy(dnn);
  size_t free_b = 0, total_b = 0;
  RL2_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const CudaLearnerBytes b = cuda_learner_bytes(cfg, temp, ref);
  const double need = b.fixed + b.per_trial * static_cast<double>(N);
  const double usable = 0.9 * static_cast<double>(free_b);
  if (need <= usable && N <= INT_MAX) return;
  const double fit_trials = usable > b.fixed ? std::floor((usable - b.fixed) / b.per_trial) : 0.0;
  const double fit_steps = std::min(fit_trials, static_cast<double>(INT_MAX)) * static_cast<double>(T);
  throw InputError("training on the GPU with --steps-per-iter " + std::to_string(cfg.steps_per_iter) + " (" +
                   std::to_string(N) + " trials of " + cfg.env.describe() + ", " +
                   (cfg.policy_shape().encoder ? "conv encoder + " : "") + "GRU-" + std::to_string(pol.hidden) +
                   " policy and baseline) needs " + format_bytes(need) + " of GPU memory; " +
                   format_bytes(static_cast<double>(free_b)) + " is free (" +
                   (fit_trials >= 1.0 ? "at most " + std::to_string(static_cast<int64_t>(fit_steps)) +
                                            " steps per iteration fit"
                                      : "not even one trial fits") +
                   ")");
}

// ---- the learner ------------------------------------------------------------------------------------------
namespace {

class CudaLearner final : public Learner {
 public:
  explicit CudaLearner(const TrainConfig& cfg)
      : cfg_(cfg),
        layout_(layout_of(cfg.env)),
        T_(cfg.env.trial_length()),
        N_(cfg.trials_per_iter()),
        A_(cfg.env.num_actions()),
        pol_shape_(cfg.policy_shape()),
        base_shape_(cfg.baseline_shape()),
        rollout_(cfg.env, pol_shape_, base_shape_, N_),
        gru_(ctx_.dnn(), ctx_.stream(), pol_shape_.gru.input, pol_shape_.gru.hidden, T_, N_),
        enc_(pol_shape_.encoder ? std::make_unique<CudaEncoderStage>(ctx_, pol_shape_.enc, T_, N_) : nullptr),
        policy_(ctx_, gru_, pol_shape_, enc_.get()),
        baseline_(ctx_, gru_, base_shape_, enc_.get()),
        pol_params_(static_cast<size_t>(policy_.size())),
        base_params_(static_cast<size_t>(baseline_.size())),
        base_grad_(static_cast<size_t>(baseline_.size())),
        values_(static_cast<size_t>(T_ * N_)),
        adv_(static_cast<size_t>(T_ * N_)),
        returns_(static_cast<size_t>(T_ * N_)),
        pred_(static_cast<size_t>(T_ * N_)),
        d_out_(static_cast<size_t>(T_ * N_)),
        scratch_(static_cast<size_t>(T_ * N_)),
        totals_(static_cast<size_t>(N_)),
        order_(static_cast<size_t>(N_)),
        mask_(cfg.env.kind == EnvKind::kMaze ? rollout_.mask() : nullptr),
        obj_(ctx_, policy_, pol_params_.data(),
             CudaPolicyBatch{T_, N_, A_, rollout_.x(), rollout_.actions(), rollout_.logp(), rollout_.probs(),
                             adv_.data(), cfg.entropy_coef, mask_}) {
    st_.policy.assign(static_cast<size_t>(pol_shape_.size()), 0.0f);
    st_.baseline.assign(static_cast<size_t>(base_shape_.size()), 0.0f);
    net_init(pol_shape_, cfg.seed, 0, 0.01f, st_.policy.data());
    net_init(base_shape_, cfg.seed, 1, 1.0f, st_.baseline.data());
    const int64_t mb_count = std::max<int64_t>(1, std::min<int64_t>(cfg_.baseline_minibatches, N_));
    const int64_t mb_max = (N_ + mb_count - 1) / mb_count;
    mb_x_ = DeviceBuffer<float>(static_cast<size_t>(T_ * mb_max * layout_.size()));
    if (mask_) mb_mask_ = DeviceBuffer<float>(static_cast<size_t>(T_ * mb_max));
    upload_state();
  }

  IterationStats iterate() override {
    IterationStats s;
    s.iteration = st_.iteration;
    s.env_steps = T_ * N_;
    try {
      if (!device_fresh_) upload_state();
      run_iteration(s);
    } catch (const InputError&) {
      device_fresh_ = false;
      throw;
    } catch (const Error& e) {
      device_fresh_ = false;  // the device may hold a half-done update: the next call starts from state()
      if (out_of_memory(e.what()))
        throw InputError("the GPU ran out of memory in training iteration " + std::to_string(st_.iteration) + " (" +
                         e.what() + "); the state of the last completed iteration is kept; lower --steps-per-iter");
      throw;
    } catch (...) {
      device_fresh_ = false;
      throw;
    }
    return s;
  }

  using Learner::evaluate;
  EvalResult evaluate(const EnvConfig& env, int64_t instances, uint64_t first_trial, bool keep_actions) override {
    check_eval_request(cfg_.env, env, instances);
    const int64_t T = env.trial_length();
    const int32_t E = env.episodes();
    // Chunks bound device and host memory; results do not depend on them (ids fix every number).
    int64_t chunk = std::min<int64_t>({instances, int64_t{1} << 16, std::max<int64_t>(256, (int64_t{1} << 22) / T)});
    EvalResult out;
    out.episodes = E;
    out.totals.reserve(static_cast<size_t>(instances));
    out.lengths.assign(static_cast<size_t>(instances) * static_cast<size_t>(E), static_cast<int32_t>(T / E));
    out.success.assign(out.lengths.size(), 0);
    if (keep_actions) out.actions.assign(static_cast<size_t>(instances * T), -1);
    std::unique_ptr<CudaRollout> r;
    for (int64_t start = 0; start < instances;) {
      const int64_t n = std::min(chunk, instances - start);
      if (!r || r->trials() != n) {
        r.reset();
        try {
          // Eager, FP32, and only two steps of inputs kept: evaluation never reads them back.
          r = std::make_unique<CudaRollout>(env, pol_shape_, base_shape_, n, RolloutOptions{false, false, false});
        } catch (const InputError&) {
          if (chunk <= 256) throw;
          chunk /= 2;  // not enough free memory for this chunk: try a smaller one
          continue;
        }
      }
      r->run(st_.policy.data(), st_.baseline.data(), cfg_.seed, first_trial + static_cast<uint64_t>(start));
      r->synchronize();
      const std::vector<int32_t> actions = to_host(r->actions(), static_cast<size_t>(T * n));
      const std::vector<float> rewards = to_host(r->rewards(), static_cast<size_t>(T * n));
      const std::vector<uint8_t> dones = to_host(r->dones(), static_cast<size_t>(T * n));
      // learner_cpu.cpp's bookkeeping: a trial is finished once its E episodes are done (a maze trial may
      // finish early; its later steps were played with reward 0 and count nowhere, and its actions stay -1).
      for (int64_t i = 0; i < n; ++i) {
        double total = 0.0;
        TrialTracker trial;
        for (int64_t t = 0; t < T; ++t) {
          const int64_t k = t * n + i;
          total += rewards[k];
          trial.count(&out, start + i, t, T, E, actions[k], rewards[k], dones[k] != 0);
        }
        out.totals.push_back(total);
      }
      start += n;
    }
    return out;
  }

  const TrainConfig& config() const override { return cfg_; }
  const TrainState& state() const override { return st_; }
  void set_state(const TrainState& s) override {
    check_state_fits(st_, s);
    st_ = s;
    device_fresh_ = false;
  }
  Device device() const override { return Device::kCuda; }

  RolloutHost last_rollout() const { return rollout_.copy_to_host(); }

 private:
  // Host state -> device (parameters, Adam moments); the device then holds exactly state().
  void upload_state() {
    // copy_to_device waits for the device first, so nothing queued still uses the buffers replaced here.
    copy_to_device(pol_params_.data(), st_.policy.data(), pol_params_.size());
    copy_to_device(base_params_.data(), st_.baseline.data(), base_params_.size());
    upload_adam(st_.policy_adam, pol_adam_);
    upload_adam(st_.baseline_adam, base_adam_);
    device_fresh_ = true;
  }

  // One iteration into s; st_ changes only at the end, after every device step succeeded.
  void run_iteration(IterationStats& s) {
    const int64_t M = T_ * N_;
    cudaStream_t stream = ctx_.stream();
    auto t0 = std::chrono::steady_clock::now();
    rollout_.run(st_.policy.data(), st_.baseline.data(), cfg_.seed, static_cast<uint64_t>(st_.iteration) * N_);
    rollout_.synchronize();
    launch_totals(TotalsArgs{T_, N_, rollout_.rewards(), totals_.data()}, stream);
    ctx_.synchronize();
    const std::vector<double> totals = to_host(totals_);
    s.mean_return = std::accumulate(totals.begin(), totals.end(), 0.0) / static_cast<double>(N_);  // the CPU's order
    // Means over the active steps (the maze's finished trials; M without a mask), counted once.
    steps_ = ctx_.step_mask(mask_, M);
    obj_.set_active_steps(steps_.active);
    launch_entropy(EntropyArgs{M, A_, rollout_.probs(), scratch_.data(), mask_}, stream);
    s.entropy = ctx_.sum(scratch_.data(), M) / steps_.active;
    s.seconds_rollout = seconds_since(t0);

    t0 = std::chrono::steady_clock::now();
    s.explained_variance = cuda_compute_advantages(ctx_, T_, N_, rollout_.rewards(), rollout_.values(), st_.return_mean,
                                                   st_.return_std, cfg_.gamma, cfg_.gae_lambda, values_.data(),
                                                   adv_.data(), returns_.data(), scratch_.data(), steps_);
    if (cfg_.algo == "ppo") {
      obj_.set_adam(&pol_adam_);
      s.update = ppo_update(obj_, cfg_.ppo, cfg_.seed, st_.iteration);
    } else {
      s.update = trpo_step(obj_, cfg_.trpo);
    }
    s.rollout_mismatch = obj_.rollout_mismatch();
    const int32_t nonfinite = s.update.status == UpdateStatus::kNonFinite ? st_.nonfinite_in_a_row + 1 : 0;
    s.seconds_policy = seconds_since(t0);

    t0 = std::chrono::steady_clock::now();
    double ret_mean = st_.return_mean, ret_std = st_.return_std;
    s.baseline_loss = fit_baseline(ret_mean, ret_std);
    s.seconds_baseline = seconds_since(t0);

    // Commit: the device's parameters and moments become the state.
    ctx_.synchronize();
    TrainState next = st_;
    next.policy = to_host(pol_params_);
    next.baseline = to_host(base_params_);
    next.policy_adam = download_adam(pol_adam_);
    next.baseline_adam = download_adam(base_adam_);
    next.return_mean = ret_mean;
    next.return_std = ret_std;
    next.nonfinite_in_a_row = nonfinite;
    next.iteration += 1;
    st_ = std::move(next);
  }

  // Adam regression of the baseline on normalised returns-to-go over the active steps, minibatches of
  // whole trials. On success sets the new normaliser; a non-finite fit restores the baseline and its
  // moments from state() (untouched since the iteration began) and returns NaN.
  double fit_baseline(double& ret_mean, double& ret_std) {
    const int64_t M = T_ * N_, I = layout_.size();
    cudaStream_t stream = ctx_.stream();
    const double mean = ctx_.sum(returns_.data(), M, mask_) / steps_.active;
    const double sd = std::max(std::sqrt(ctx_.variance(returns_.data(), M, steps_)), 1e-3);
    const int64_t mb_count = std::max<int64_t>(1, std::min<int64_t>(cfg_.baseline_minibatches, N_));
    const int64_t P = baseline_.size();
    double last_loss = 0.0;
    for (int32_t epoch = 0; epoch < cfg_.baseline_epochs; ++epoch) {
      const std::vector<int64_t> order =
          shuffled_trials(cfg_.seed, static_cast<uint64_t>(st_.iteration), static_cast<uint32_t>(epoch), N_);
      RL2_CUDA_CHECK(cudaMemcpyAsync(order_.data(), order.data(), order_.bytes(), cudaMemcpyHostToDevice, stream));
      double loss_sum = 0.0;
      for (int64_t mb = 0; mb < mb_count; ++mb) {
        const int64_t lo = mb * N_ / mb_count, hi = (mb + 1) * N_ / mb_count, b = hi - lo;
        const int64_t* ids = order_.data() + lo;
        launch_gather_trials(GatherTrialsArgs{rollout_.x(), T_, N_, I, ids, b, mb_x_.data()}, stream);
        baseline_.forward(base_params_.data(), mb_x_.data(), b, pred_.data());
        double active_b = static_cast<double>(T_ * b);
        if (mask_) {
          launch_gather_trials(GatherTrialsArgs{mask_, T_, N_, 1, ids, b, mb_mask_.data()}, stream);
          active_b = ctx_.sum(mb_mask_.data(), T_ * b);  // >= b: every trial's first step is active
        }
        launch_baseline_loss(BaselineLossArgs{T_, b, N_, ids, pred_.data(), returns_.data(), mean, sd, 2.0 / active_b,
                                              scratch_.data(), d_out_.data(), mask_},
                             stream);
        const double loss = ctx_.sum(scratch_.data(), T_ * b) / active_b;
        baseline_.backward(base_params_.data(), mb_x_.data(), b, d_out_.data(), base_grad_.data());
        if (!std::isfinite(loss) ||
            !cuda_adam_step(ctx_, base_adam_, base_params_.data(), base_grad_.data(), P, cfg_.baseline_lr)) {
          copy_to_device(base_params_.data(), st_.baseline.data(), base_params_.size());
          upload_adam(st_.baseline_adam, base_adam_);
          return std::numeric_limits<double>::quiet_NaN();  // a non-finite fit never changes the baseline
        }
        loss_sum += loss;
      }
      last_loss = loss_sum / static_cast<double>(mb_count);
    }
    ret_mean = mean;
    ret_std = sd;
    return last_loss;
  }

  TrainConfig cfg_;
  InputLayout layout_;
  int64_t T_, N_;
  int32_t A_;
  NetShape pol_shape_, base_shape_;
  TrainState st_;
  bool device_fresh_ = false;  // the device parameters and moments equal st_'s
  // Members are destroyed in reverse order: everything queued on the context's stream goes before it.
  CudaTrainContext ctx_;
  CudaRollout rollout_;
  CudnnGru gru_;
  std::unique_ptr<CudaEncoderStage> enc_;  // the maze: shared by the policy and the baseline
  CudaNet policy_, baseline_;
  DeviceBuffer<float> pol_params_, base_params_, base_grad_;
  CudaAdamState pol_adam_, base_adam_;
  DeviceBuffer<float> values_, adv_, returns_, pred_, d_out_;  // [T, N]
  DeviceBuffer<double> scratch_;                               // [T, N]
  DeviceBuffer<double> totals_;                                // [N]
  DeviceBuffer<int64_t> order_;                                // [N] the epoch's trial order
  DeviceBuffer<float> mb_x_;                                   // [T, max minibatch, I]
  DeviceBuffer<float> mb_mask_;                                // [T, max minibatch] (the maze)
  const float* mask_;  // the rollout's [T, N] mask for the maze; nullptr (every step active) otherwise
  StepMask steps_;     // this iteration's active steps (mask_ and their count), set after the rollout
  CudaPolicyObjective obj_;
};

}  // namespace

std::unique_ptr<Learner> make_cuda_learner(const TrainConfig& cfg) {
  cfg.env.validate();
  // Every value check of TrainConfig::validate() except its host-memory estimate, which sizes the CPU
  // learner's caches: validate a copy with one trial per iteration. The GPU estimate below replaces it.
  TrainConfig values = cfg;
  values.steps_per_iter = std::min<int64_t>(cfg.steps_per_iter, cfg.env.trial_length());
  values.validate();
  check_cuda_learner_fits(cfg);
  return std::make_unique<CudaLearner>(cfg);
}

RolloutHost cuda_learner_last_rollout(const Learner& learner) {
  const auto* l = dynamic_cast<const CudaLearner*>(&learner);
  RL2_CHECK(l != nullptr, "cuda_learner_last_rollout: not a CUDA learner");
  return l->last_rollout();
}

}  // namespace rl2
