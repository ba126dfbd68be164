// The CUDA backend (backend_cuda.hpp): memory and copies on one non-blocking stream, the step ops and
// reductions (kernels/step_ops.cuh), the networks on cuDNN and cuBLAS, the rollout and the evaluation plays.
// cuBLAS is column-major: a row-major [rows, cols] matrix is its column-major [cols, rows] transpose, so the
// head's products are written on the transposes (comments give both).
#include "cuda/backend_cuda.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <map>
#include <string>
#include <tuple>

#include "cuda/encoder_cudnn.hpp"
#include "cuda/rollout_cuda.hpp"
#if defined(RL2_WITH_NCCL)
#include "cuda/nccl_comm.hpp"
#endif
#include "rl2/core/check.hpp"
#include "rl2/core/device.hpp"
#include "step_ops.cuh"

namespace rl2 {
namespace {

int as_int(int64_t v, const char* what) {
  RL2_CHECK(v >= 0 && v <= INT_MAX, std::string(what) + " exceeds cuBLAS's int range");
  return static_cast<int>(v);
}

// The maze's conv encoder in front of the GRU, and its output y (the GRU's input), for max_rows rows.
struct EncoderStage {
  EncoderStage(cudnnHandle_t dnn, cublasHandle_t blas, cudaStream_t s, const EncoderShape& shape, int64_t max_rows)
      : encoder(dnn, blas, s, shape, max_rows), y(static_cast<size_t>(max_rows) * static_cast<size_t>(shape.out())) {}
  CudnnEncoder encoder;
  DeviceBuffer<float> y;
};

// One network: [encoder ->] cuDNN's GRU -> the linear head (cuBLAS) on the flat parameters (network.hpp's
// layout: [GRU + head | encoder]). Nets of one backend share the cuDNN GRU and encoder of their shape
// (activations and workspace): a backward must follow its own forward with no other net's forward between,
// which the trainer's calls keep.
class CudaNet final : public BackendNet {
 public:
  CudaNet(cublasHandle_t blas, cudaStream_t stream, std::shared_ptr<CudnnGru> gru, std::shared_ptr<EncoderStage> enc,
          const NetShape& shape)
      : blas_(blas), stream_(stream), gru_(std::move(gru)), enc_(std::move(enc)), shape_(shape),
        layout_(gru_layout(shape.gru)), ws_(static_cast<size_t>(gru_->weight_space_floats())) {
    RL2_CHECK(layout_.head_w == gru_->canonical_floats(), "CudaNet: gru_layout differs from cuDNN's parameter count");
    RL2_CUDA_CHECK(cudaMemsetAsync(ws_.data(), 0, ws_.bytes(), stream_));  // padding, if any, stays 0
  }

  // segs: the CPU's units; cuDNN's GRU and the GEMMs run on the whole batch (no per-segment partials).
  void forward(const float* params, const float* x, int64_t batch, float* out, const TrialSegments*) override {
    const int64_t M = gru_->steps() * batch;
    const int H = shape_.gru.hidden, O = shape_.gru.out;
    // y [T, B, enc.out()] = encoder(x) on all T·B rows (they are independent steps), the GRU's input.
    if (enc_) enc_->encoder.forward(params + shape_.gru_size(), x, M, enc_->y.data());
    gru_->pack(params + layout_.weight_ih, ws_.data());
    gru_->forward(ws_.data(), enc_ ? enc_->y.data() : x, batch);
    // out [M, O] = y [M, H] · head_wᵀ:   out_cm [O, M] = head_w_cm [H, O]ᵀ · y_cm [H, M]
    const float one = 1.0f, zero = 0.0f;
    RL2_CUBLAS_CHECK(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, O, as_int(M, "T * batch"), H, &one,
                                 params + layout_.head_w, H, gru_->y(), H, &zero, out, O));
    launch(ops::AddBias{M, O, params + layout_.head_b, out}, stream_);
  }

  void backward(const float* params, const float* x, int64_t batch, const float* d_out, float* grad,
                const TrialSegments*) override {
    const int64_t M = gru_->steps() * batch;
    const int H = shape_.gru.hidden, O = shape_.gru.out, m = as_int(M, "T * batch");
    const float one = 1.0f, zero = 0.0f;
    // d head_w [O, H] = d_outᵀ · y:        dW_cm [H, O] = y_cm [H, M] · d_out_cm [O, M]ᵀ
    RL2_CUBLAS_CHECK(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_T, H, O, m, &one, gru_->y(), H, d_out, O, &zero,
                                 grad + layout_.head_w, H));
    // d head_b [O]: the column sums of d_out [M, O], two stages per column.
    if (partials_.size() < static_cast<size_t>(O) * kReduceBlocks)
      partials_ = DeviceBuffer<double>(size_t{1} * O * kReduceBlocks);
    ReduceArgs sums{ReduceOp::kSumF32, M};
    sums.xf = d_out;
    sums.groups = O;
    sums.stride = O;
    sums.partials = partials_.data();
    sums.out_f = grad + layout_.head_b;
    launch_reduce(sums, stream_);
    // dy [M, H] = d_out · head_w:          dy_cm [H, M] = head_w_cm [H, O] · d_out_cm [O, M]
    RL2_CUBLAS_CHECK(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_N, H, m, O, &one, params + layout_.head_w, H, d_out, O,
                                 &zero, gru_->dy(), H));
    gru_->backward(ws_.data(), enc_ ? enc_->y.data() : x, batch);
    gru_->unpack(gru_->dweight_space(), grad + layout_.weight_ih);
    if (enc_) {
      // d encoder [total] = d/dparams sum(dx · y): cuDNN's dx [T, B, enc.out()] is the gradient at y.
      float* d_enc = grad + shape_.gru_size();
      const size_t enc_floats = static_cast<size_t>(shape_.size() - shape_.gru_size());
      RL2_CUDA_CHECK(cudaMemsetAsync(d_enc, 0, enc_floats * sizeof(float), stream_));  // backward accumulates
      enc_->encoder.backward(params + shape_.gru_size(), x, M, gru_->dx(), d_enc);
    }
  }

 private:
  cublasHandle_t blas_;
  cudaStream_t stream_;
  std::shared_ptr<CudnnGru> gru_;
  std::shared_ptr<EncoderStage> enc_;
  NetShape shape_;
  GruLayout layout_;
  DeviceBuffer<float> ws_;  // cuDNN weight space of this net
  DeviceBuffer<double> partials_;
};

// The training rollout: CudaRollout's fused kernels on its own stream, waited for before the trainer's
// stream reads the trajectories; each trial's total reward on the device.
class CudaTrainRollout final : public BackendRollout {
 public:
  CudaTrainRollout(const EnvConfig& env, const NetShape& policy, const NetShape& baseline, int64_t N, bool tf32,
                   cudaStream_t stream)
      : rollout_(env, policy, baseline, N, RolloutOptions{true, tf32}), stream_(stream), maze_(env.kind == EnvKind::kMaze),
        totals_(static_cast<size_t>(N)) {}
  void run(const float* policy_host, const float* baseline_host, uint64_t seed, uint64_t first_trial) override {
    rollout_.run(policy_host, baseline_host, seed, first_trial);
    rollout_.synchronize();
    launch(ops::TrialTotals{rollout_.steps(), rollout_.trials(), rollout_.rewards(), totals_.data()}, stream_);
    RL2_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  const float* x() const override { return rollout_.x(); }
  const int32_t* actions() const override { return rollout_.actions(); }
  const float* logp() const override { return rollout_.logp(); }
  const float* probs() const override { return rollout_.probs(); }
  const float* rewards() const override { return rollout_.rewards(); }
  // Bandit and MDP trials never finish early: no mask (exactly the arithmetic of every step active).
  const float* mask() const override { return maze_ ? rollout_.mask() : nullptr; }
  const double* totals() const override { return totals_.data(); }
  const float* values() const override { return rollout_.values(); }

 private:
  CudaRollout rollout_;
  cudaStream_t stream_;
  bool maze_;
  DeviceBuffer<double> totals_;
};

class CudaBackend final : public Backend {
 public:
  CudaBackend() {
    RL2_REQUIRE(cuda_probe().usable, "no usable GPU: " + cuda_probe().reason);
    stream_ = make_stream();
    blas_ = make_blas();
    RL2_CUBLAS_CHECK(cublasSetStream(blas_.get(), stream()));
    // FP32 SGEMMs on the FP32 cores (no TF32), as the rollout's default: both paths compute one function.
    RL2_CUBLAS_CHECK(cublasSetMathMode(blas_.get(), CUBLAS_DEFAULT_MATH));
    dnn_ = make_dnn();
    RL2_CUDNN_CHECK(cudnnSetStream(dnn_.get(), stream()));
    partials_ = DeviceBuffer<double>(kReduceBlocks);
    result_ = DeviceBuffer<double>(1);
  }

  using Backend::download;
  using Backend::upload;
  Device device() const override { return Device::kCuda; }

  void* allocate(size_t bytes) override {
    void* p = nullptr;
    if (bytes > 0) RL2_CUDA_CHECK(cudaMalloc(&p, bytes));
    return p;
  }
  void release(void* p) noexcept override {
    cudaStreamSynchronize(stream());  // no buffer is freed under queued work
    cudaFree(p);
  }
  // Copies on the backend's stream, so they are ordered with its kernels (a plain cudaMemcpy on the legacy
  // stream is not, with a non-blocking stream), then waited for: from pageable memory a cudaMemcpyAsync may
  // return before the data has landed (CUDA runtime API, "API synchronization behavior").
  void upload(void* dst, const void* host, size_t bytes) override {
    copy_kind(dst, host, bytes, cudaMemcpyHostToDevice);
  }
  void download(void* host, const void* src, size_t bytes) override {
    copy_kind(host, src, bytes, cudaMemcpyDeviceToHost);
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes > 0 && dst != src) RL2_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()));
  }

#define RL2_CUDA_RUN(Op) \
  void run(const ops::Op& op) override { launch(op, stream()); }
  RL2_STEP_OPS(RL2_CUDA_RUN)
  RL2_ROLLOUT_OPS(RL2_CUDA_RUN)
#undef RL2_CUDA_RUN
  void synchronize() override { RL2_CUDA_CHECK(cudaStreamSynchronize(stream())); }

  double step_sum(int64_t T, int64_t N, const double* x, const float* mask) override { return sum_of(T * N, x, mask); }
  double step_sum(int64_t T, int64_t N, const float* x, const float* mask) override { return sum_of(T * N, x, mask); }
  std::pair<double, double> mean_var(int64_t T, int64_t N, const float* x, const float* mask, double active) override {
    return mean_var_of(T * N, x, mask, active);
  }
  std::pair<double, double> mean_var(int64_t T, int64_t N, const double* x, const float* mask, double active) override {
    return mean_var_of(T * N, x, mask, active);
  }
  double trial_sum(int64_t N, int64_t, const double* v) override { return sum_of(N, v, nullptr); }
  // One part: the reduction's fixed two-stage tree over the whole array, not per segment.
  std::vector<double> step_sum_parts(int64_t T, const TrialSegments& segs, const float* x, const float* mask,
                                     const double* center) override {
    return {center ? sq_dev_of(T * segs.trials(), x, mask, *center) : sum_of(T * segs.trials(), x, mask)};
  }
  std::vector<double> step_sum_parts(int64_t T, const TrialSegments& segs, const double* x, const float* mask,
                                     const double* center) override {
    return {center ? sq_dev_of(T * segs.trials(), x, mask, *center) : sum_of(T * segs.trials(), x, mask)};
  }
  double max(int64_t n, const double* x) override {
    ReduceArgs a{ReduceOp::kMaxF64, n};
    a.xd = x;
    return reduce(a);
  }
  double dot(int64_t n, const float* x, const float* y) override {
    ReduceArgs a{ReduceOp::kDotF32, n};
    a.xf = x;
    a.yf = y;
    return reduce(a);
  }
  bool all_finite(int64_t n, const float* x) override {
    ReduceArgs a{ReduceOp::kNonFiniteF32, n};
    a.xf = x;
    return reduce(a) == 0.0;
  }
  double max_abs_diff(int64_t n, const float* x, const float* y, const float* mask, int64_t width) override {
    ReduceArgs a{ReduceOp::kMaxAbsDiffF32, n};
    a.xf = x;
    a.yf = y;
    a.mask = mask;
    a.mask_width = width;
    const double d = reduce(a);
    return std::isnan(d) ? d : std::max(0.0, d);  // an all-masked difference is 0, as the CPU's
  }

#if defined(RL2_WITH_NCCL)
  // In place on the training stream, queued like any op (no host wait). The communicator is made on first
  // use: rank 0's NCCL id travels over comm (MPI), then every rank joins (nccl_comm.hpp).
  bool all_reduce_sum(Comm& comm, float* p, int64_t n) override {
    if (comm.size() == 1) return true;
    if (!nccl_) {
      NcclId id;
      if (comm.rank() == 0) id = nccl_make_id();
      comm.broadcast(id.bytes.data(), id.bytes.size(), 0);
      nccl_ = std::make_unique<NcclComm>(comm.size(), comm.rank(), id);
    }
    nccl_->all_reduce_sum(p, n, stream());
    return true;
  }
#endif

  std::unique_ptr<BackendNet> make_net(const NetShape& shape, int64_t T, int64_t max_batch) override {
    auto& gru = grus_[std::make_tuple(shape.gru.input, shape.gru.hidden, T)];
    if (!gru || gru->max_batch() < max_batch)
      gru = std::make_shared<CudnnGru>(dnn_.get(), stream(), shape.gru.input, shape.gru.hidden, T, max_batch);
    std::shared_ptr<EncoderStage> enc;
    if (shape.encoder) {
      const EncoderShape& e = shape.enc;
      const auto same = [&e](const EncoderShape& o) {
        return std::tie(o.channels, o.height, o.width, o.filters, o.kernel, o.stride, o.image_fc, o.extra_in,
                        o.extra_fc) == std::tie(e.channels, e.height, e.width, e.filters, e.kernel, e.stride,
                                                e.image_fc, e.extra_in, e.extra_fc);
      };
      if (!encoder_ || !same(encoder_->encoder.shape()) || encoder_->encoder.max_rows() < T * max_batch)
        encoder_ = std::make_shared<EncoderStage>(dnn_.get(), blas_.get(), stream(), shape.enc, T * max_batch);
      enc = encoder_;
    }
    return std::make_unique<CudaNet>(blas_.get(), stream(), gru, enc, shape);
  }
  std::unique_ptr<BackendRollout> make_rollout(const EnvConfig& env, const NetShape& policy, const NetShape& baseline,
                                               int64_t trials, bool allow_tf32) override {
    return std::make_unique<CudaTrainRollout>(env, policy, baseline, trials, allow_tf32, stream());
  }
  PlayedTrials play(const EnvConfig& env, const NetShape& policy, const float* policy_host, int64_t n, uint64_t seed,
                    uint64_t first_trial) override {
    std::unique_ptr<CudaRollout> r;
    try {
      // Eager, FP32, and only two steps of inputs kept: evaluation never reads them back. The policy's
      // parameters stand in for the baseline's, whose values evaluation never reads.
      r = std::make_unique<CudaRollout>(env, policy, policy_baseline(policy), n, RolloutOptions{false, false, false});
    } catch (const InputError&) {
      if (n <= 256) throw;
      return halves(env, policy, policy_host, n, seed, first_trial);  // not enough free memory: two smaller plays
    }
    const std::vector<float> baseline(static_cast<size_t>(policy_baseline(policy).size()), 0.0f);
    r->run(policy_host, baseline.data(), seed, first_trial);
    r->synchronize();
    const int64_t T = env.trial_length();
    PlayedTrials out;
    out.actions = download(r->actions(), T * n);
    out.rewards = download(r->rewards(), T * n);
    out.dones = download(r->dones(), T * n);
    return out;
  }
  void check_fits(const TrainConfig& cfg) override { check_cuda_learner_fits(cfg); }
  int64_t play_chunk(int64_t T) const override {
    return std::min<int64_t>(int64_t{1} << 16, std::max<int64_t>(256, (int64_t{1} << 22) / T));
  }

 private:
  cudaStream_t stream() const { return stream_.get(); }

  static NetShape policy_baseline(NetShape s) {
    s.gru.out = 1;
    return s;
  }

  // play() of n trials as two plays of halves, their [T, n/2] arrays merged into [T, n].
  PlayedTrials halves(const EnvConfig& env, const NetShape& policy, const float* params, int64_t n, uint64_t seed,
                      uint64_t first_trial) {
    const int64_t a = n / 2, T = env.trial_length();
    const PlayedTrials p = play(env, policy, params, a, seed, first_trial);
    const PlayedTrials q = play(env, policy, params, n - a, seed, first_trial + static_cast<uint64_t>(a));
    PlayedTrials out;
    auto merge = [&](const auto& x, const auto& y, auto& dst) {
      for (int64_t t = 0; t < T; ++t) {
        dst.insert(dst.end(), x.begin() + t * a, x.begin() + (t + 1) * a);
        dst.insert(dst.end(), y.begin() + t * (n - a), y.begin() + (t + 1) * (n - a));
      }
    };
    merge(p.actions, q.actions, out.actions);
    merge(p.rewards, q.rewards, out.rewards);
    merge(p.dones, q.dones, out.dones);
    return out;
  }

  // x as the reduction's double or float operand.
  static ReduceArgs over(ReduceOp f64, ReduceOp, int64_t n, const double* x) {
    ReduceArgs a{f64, n};
    a.xd = x;
    return a;
  }
  static ReduceArgs over(ReduceOp, ReduceOp f32, int64_t n, const float* x) {
    ReduceArgs a{f32, n};
    a.xf = x;
    return a;
  }
  template <class Real>
  double sum_of(int64_t n, const Real* x, const float* mask) {
    ReduceArgs a = over(ReduceOp::kSumF64, ReduceOp::kSumF32, n, x);
    a.mask = mask;
    return reduce(a);
  }
  template <class Real>
  double sq_dev_of(int64_t n, const Real* x, const float* mask, double center) {
    ReduceArgs a = over(ReduceOp::kSqDevF64, ReduceOp::kSqDevF32, n, x);
    a.mask = mask;
    a.mean = center;
    return reduce(a);
  }
  template <class Real>
  std::pair<double, double> mean_var_of(int64_t n, const Real* x, const float* mask, double active) {
    const double mean = sum_of(n, x, mask) / active;
    return {mean, sq_dev_of(n, x, mask, mean) / active};
  }

  void copy_kind(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
    if (bytes == 0) return;
    RL2_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, stream()));
    RL2_CUDA_CHECK(cudaStreamSynchronize(stream()));
  }

  double reduce(ReduceArgs a) {
    a.partials = partials_.data();
    a.out = result_.data();
    launch_reduce(a, stream());
    double out = 0.0;
    copy_kind(&out, result_.data(), sizeof out, cudaMemcpyDeviceToHost);
    return out;
  }

  // Destroyed in reverse order: buffers and shared networks first, then the handles, the stream last.
  StreamOwner stream_;
  BlasOwner blas_;
  DnnOwner dnn_;
  DeviceBuffer<double> partials_, result_;
  std::map<std::tuple<int32_t, int32_t, int64_t>, std::shared_ptr<CudnnGru>> grus_;
  std::shared_ptr<EncoderStage> encoder_;
#if defined(RL2_WITH_NCCL)
  std::unique_ptr<NcclComm> nccl_;  // made by the first all_reduce_sum over several ranks; freed before the stream
#endif
};

// cuDNN's and cuBLAS's own device memory (handles, loaded kernels, cuBLAS's default workspace): a margin,
// since it cannot be queried before the libraries load.
constexpr double kLibraryBytes = 512.0 * 1024 * 1024;

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
  // (PPO), trpo_step's and cg's eight vectors (PPO: three) and the objective's two probe vectors, three
  // weight spaces (policy old and candidate, baseline) and one weight-space gradient, the canonical index.
  b.fixed = 4.0 * (P + Pb + 3 * Pb + (ppo ? 2 * P : 0.0) + (ppo ? 3 : 8) * P + 2 * P + 4 * gru_floats) +
            8.0 * gru_floats + static_cast<double>(rollout_fixed_bytes(cfg.env, ps, bs)) + kLibraryBytes;
  const int64_t mb_base = std::max<int64_t>(1, std::min<int64_t>(cfg.baseline_minibatches, cfg.trials_per_iter()));
  const double base_mb_share = 1.0 / static_cast<double>(mb_base);  // the baseline's minibatch x, per trial
  const int64_t mb_ppo = std::max<int64_t>(1, std::min<int64_t>(cfg.ppo.minibatches, cfg.trials_per_iter()));
  const double ppo_share = ppo ? 1.0 / static_cast<double>(mb_ppo) : 0.0;
  // The Fisher product's sub-batch (TRPO): its inputs, probabilities, logits (3 arrays) and mask.
  const double fvp_share = ppo ? 0.0 : std::min(1.0, cfg.trpo.fvp_subsample);
  double per_step = 4.0 * (2 * H + G)              // cuDNN y, dy, dx
                    + 4.0 * 3 * A                 // logits, probs, d_out
                    + 8.0 * 3                     // terms, aux, gap
                    + 4.0 * 3 + 8.0               // values, adv, returns; scratch
                    + 4.0 * 2 * base_mb_share     // pred, d_out of the baseline's minibatch
                    + 4.0 * X * (base_mb_share + ppo_share + fvp_share) + 4.0 * 4 * A * fvp_share;
  double encoder = 0.0;
  if (ps.encoder) {
    per_step += 4.0 * G                                            // the encoder stage's output y
                + 4.0 * (base_mb_share + ppo_share + fvp_share);  // minibatch masks
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
  const DnnOwner dnn = make_dnn();
  const CudnnTempBytes temp = CudnnGru::temp_bytes(dnn.get(), pol.input, pol.hidden, T, ref);
  size_t free_b = 0, total_b = 0;
  RL2_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const CudaLearnerBytes b = cuda_learner_bytes(cfg, temp, ref);
  const double need = b.fixed + b.per_trial * static_cast<double>(N);
  const double usable = 0.9 * static_cast<double>(free_b);
  if (need <= usable) return;
  const double fit_trials = usable > b.fixed ? std::floor((usable - b.fixed) / b.per_trial) : 0.0;
  const double fit_steps = std::min(fit_trials, static_cast<double>(max_trials)) * static_cast<double>(T);
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

std::unique_ptr<Backend> make_cuda_backend() { return std::make_unique<CudaBackend>(); }

}  // namespace rl2
