// The CUDA backend of RL² training (DESIGN.md sections 3, 4, 8, 9; docs/cuda_training.md): the same
// algorithm as the CPU learner (src/cpu/learner_cpu.cpp) with every batch-sized array on the device.
//   rollout      CudaRollout (fused env + GRU step kernels, a CUDA graph; the maze: eager, with the cuDNN
//                encoder), N whole trials per iteration
//   advantages   kernels: values from the baseline normaliser, GAE over whole trials, standardisation
//   policy       trpo_step / ppo_update (include/rl2/algo) on CudaPolicyObjective: cuDNN's GRU forward and
//                backward over whole trials (CudnnGru), the linear head with cuBLAS, our softmax / loss /
//                gradient kernels; the maze's conv encoder (CudnnEncoder) in front of the GRU; vectors
//                live on the device and only scalars come to the host
//   Fisher       symmetric finite differences of the mean-KL gradient (cuDNN has no forward mode):
//                F v ~ (g(theta + eps v) - g(theta - eps v)) / (2 eps), eps set so the largest logit moves
//                by about kFvpLogitStep (docs/cuda_training.md has the choice and its error budget)
//   baseline     Adam regression on normalised returns-to-go, minibatches of whole trials, on the device
// Finished steps (the maze): a trial whose episodes are all done is finished; the rollout's mask [T, N]
// marks its later steps inactive, and every mean (surrogate, KL, entropy, advantage standardisation,
// explained variance, the baseline's loss and normaliser) is over the active steps only, as the CPU
// learner's. Bandit and MDP trials never finish early: they run without a mask (exactly the arithmetic
// of every step active).
// This header is plain C++ (compiles with g++): the tests build on the pieces below.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "cuda/cuda_check.hpp"
#include "cuda/encoder_cudnn.hpp"
#include "cuda/gru_cudnn.hpp"
#include "cuda/rollout_cuda.hpp"
#include "rl2/algo/adam.hpp"
#include "rl2/algo/trpo.hpp"
#include "rl2/policy/gru.hpp"
#include "rl2/policy/network.hpp"
#include "rl2/train/learner.hpp"

namespace rl2 {

// ---- host <-> device copies (synchronous; for setup, state and tests) -----------------------------------
// Our kernels run on non-blocking streams, which the legacy stream of a plain cudaMemcpy does not wait for,
// and a cudaMemcpy from pageable memory returns once the data is staged, before its DMA has finished (CUDA
// runtime API, "API synchronization behavior"). So each copy here waits for the whole device: before it (no
// queued work still reads or writes its destination, or writes its source) and after it (what it wrote has
// landed before any stream reads it). Callers need no synchronisation of their own around these.
template <class T>
void copy_to_device(T* device, const T* host, size_t count) {
  if (count == 0) return;
  RL2_CUDA_CHECK(cudaDeviceSynchronize());
  RL2_CUDA_CHECK(cudaMemcpy(device, host, count * sizeof(T), cudaMemcpyHostToDevice));
  RL2_CUDA_CHECK(cudaDeviceSynchronize());
}
template <class T>
DeviceBuffer<T> to_device(const std::vector<T>& host) {
  DeviceBuffer<T> d(host.size());
  copy_to_device(d.data(), host.data(), host.size());
  return d;
}
template <class T>
std::vector<T> to_host(const T* device, size_t count) {
  std::vector<T> out(count);
  if (count == 0) return out;
  RL2_CUDA_CHECK(cudaDeviceSynchronize());
  RL2_CUDA_CHECK(cudaMemcpy(out.data(), device, count * sizeof(T), cudaMemcpyDeviceToHost));
  return out;
}
template <class T>
std::vector<T> to_host(const DeviceBuffer<T>& b) {
  return to_host(b.data(), b.size());
}

// ---- the handles and reductions every piece shares ------------------------------------------------------
// The active steps of a batch: its mask (nullptr: every step active) and how many steps are active,
// counted once per batch (CudaTrainContext::step_mask) and reused by every mean over the batch.
struct StepMask {
  const float* mask = nullptr;
  double active = 0.0;
};

class CudaTrainContext {
 public:
  CudaTrainContext();  // a non-blocking stream, cuBLAS (FP32, no TF32) and cuDNN on it, reduction scratch
  ~CudaTrainContext();
  CudaTrainContext(const CudaTrainContext&) = delete;
  CudaTrainContext& operator=(const CudaTrainContext&) = delete;

  cudaStream_t stream() const { return stream_; }
  cublasHandle_t blas() const { return blas_; }
  cudnnHandle_t dnn() const { return dnn_; }
  void synchronize() const;

  // Reductions over device arrays in double with a fixed order (kernels/train.cu); each waits for its
  // result and returns it to the host. mask [n] (or [n / mask_width]): only elements whose mask entry is
  // not 0 take part (nullptr: all; the variance is then over the active elements, as the CPU's
  // active_values); without a mask every call runs exactly as it did before masks existed.
  double sum(const double* x, int64_t n, const float* mask = nullptr);
  double max(const double* x, int64_t n);  // -inf when n = 0; NaN if any element is NaN
  double sum(const float* x, int64_t n, const float* mask = nullptr);
  double dot(const float* a, const float* b, int64_t n);
  // mean, then the mean squared deviation (as the CPU's), over the active elements of `steps`
  double variance(const float* x, int64_t n, const StepMask& steps);
  double variance(const double* x, int64_t n, const StepMask& steps);
  // NaN if any difference is NaN; element i counts when mask[i / mask_width] != 0
  double max_abs_diff(const float* a, const float* b, int64_t n, const float* mask = nullptr, int64_t mask_width = 1);
  int64_t count_nonfinite(const float* x, int64_t n);
  StepMask step_mask(const float* mask, int64_t n);  // counts the active entries (n without a mask)

 private:
  double reduce(int32_t op, int64_t n, const double* xd, const float* xf, const float* yf, double mean,
                const float* mask = nullptr, int64_t mask_width = 1);

  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  cudnnHandle_t dnn_ = nullptr;
  DeviceBuffer<double> partials_, result_;
};

// ---- the maze's conv encoder in front of the GRU --------------------------------------------------------
// One CudnnEncoder for max_batch trials of `steps` steps (T·max_batch rows) and its output y, the GRU's
// input; shared by the policy and the baseline as the CudnnGru is (a forward and the backward that uses it
// follow each other).
struct CudaEncoderStage {
  CudaEncoderStage(CudaTrainContext& ctx, const EncoderShape& shape, int64_t steps, int64_t max_batch);
  CudnnEncoder encoder;
  DeviceBuffer<float> y;  // [T, max_batch, shape.out()]
};

// ---- one network: [encoder ->] cuDNN's GRU -> the linear head (cuBLAS) on the flat parameters ------------
// network.hpp's composition: without an encoder the GRU + head of gru.hpp; with one (the maze) x [T, B, I]
// -> CudnnEncoder on all T·B rows -> y [T, B, enc.out()] -> GRU -> head, and the flat vector is
// [GRU + head (gru_layout) | encoder (encoder_layout)].
class CudaNet {
 public:
  // gru: the shared cuDNN GRU of this (shape.gru.input, hidden); shape.gru.out = |A| (policy) or 1
  // (baseline). encoder: the shared encoder stage when shape.encoder (same EncoderShape), else nullptr.
  CudaNet(CudaTrainContext& ctx, CudnnGru& gru, const NetShape& shape, CudaEncoderStage* encoder = nullptr);
  // A network without an encoder (bandit, MDP).
  CudaNet(CudaTrainContext& ctx, CudnnGru& gru, const GruShape& shape) : CudaNet(ctx, gru, NetShape{shape, false, {}}) {}

  const NetShape& shape() const { return shape_; }
  int64_t size() const { return shape_.size(); }  // floats of the flat parameter vector
  int64_t input() const { return shape_.input(); }  // floats of x per step
  // out [T, B, O] = head(GRU(encoder(x))) at params [size()] (device), x [T, B, input()]. Packs the GRU
  // part into this net's weight space; keeps the hidden states (hidden()) and the encoder's activations
  // for backward.
  void forward(const float* params, const float* x, int64_t batch, float* out);
  // grad [size()] (OVERWRITTEN) = d/dparams sum(d_out · out) at the last forward, which must have been
  // this net's with the same params, x and batch (nothing else may run the shared GRU or encoder in
  // between). The encoder's part: cuDNN's dx of the GRU, back through the encoder.
  void backward(const float* params, const float* x, int64_t batch, const float* d_out, float* grad);
  const float* hidden() const { return gru_.y(); }  // [T, B, H] of the last forward of the shared GRU
  const float* weight_space() const { return ws_.data(); }
  const CudnnGru& gru() const { return gru_; }

 private:
  const float* gru_input(const float* x) const { return enc_ ? enc_->y.data() : x; }

  CudaTrainContext& ctx_;
  CudnnGru& gru_;
  NetShape shape_;
  GruLayout layout_;
  CudaEncoderStage* enc_;
  DeviceBuffer<float> ws_;  // cuDNN weight space of this net
};

// ---- Adam on the device (adam.hpp's adam_step: same constants and double arithmetic) --------------------
struct CudaAdamState {
  DeviceBuffer<float> m, v;  // empty until the first step
  int64_t t = 0;
};
void upload_adam(const AdamState& host, CudaAdamState& dev);
AdamState download_adam(const CudaAdamState& dev);
// Returns false, changing nothing, when grad holds a non-finite value (one scalar comes to the host).
bool cuda_adam_step(CudaTrainContext& ctx, CudaAdamState& s, float* params, const float* grad, int64_t n, double lr);

// ---- the trpo.hpp / ppo.hpp backend -----------------------------------------------------------------------
// Vector ops over device float vectors with double accumulation (cg.hpp's `Ops`), as CpuVecOps.
struct CudaVecOps {
  using Vec = DeviceBuffer<float>;
  CudaTrainContext* ctx = nullptr;
  int64_t n = 0;
  Vec make_vec() const;  // zeroed
  double dot(const Vec& a, const Vec& b) const;
  void axpy(double a, const Vec& x, Vec& y) const;  // y += a x
  void xpby(const Vec& x, double b, Vec& y) const;  // y = x + b y
  void copy(const Vec& from, Vec& to) const;
  void fill_zero(Vec& v) const;
};

// One iteration's batch on the device, time-major: x [T, N, I], actions/logp_old/adv/mask [T, N],
// probs_old [T, N, A]. mask: 1 active, 0 the trial had finished before the step (the maze); nullptr:
// every step active (bandit and MDP trials run their full horizon).
struct CudaPolicyBatch {
  int64_t T, N;
  int32_t A;
  const float* x;
  const int32_t* actions;
  const float* logp_old;
  const float* probs_old;
  const float* adv;
  double entropy_coef;
  const float* mask = nullptr;
};

// Same members and contracts as CpuPolicyObjective (src/cpu/policy_objective.hpp), except fvp():
// finite differences of KL gradients instead of the exact J^T M J v.
class CudaPolicyObjective : public CudaVecOps {
 public:
  // The largest logit change of a Fisher probe theta +- eps v that eps aims at, the band it accepts
  // before re-probing, the first probe's parameter step relative to (1 + |theta|), and the probes at most.
  static constexpr double kFvpLogitStep = 1e-2;
  static constexpr double kFvpBand = 4.0;
  static constexpr double kFvpFirstStep = 1e-4;
  static constexpr int kFvpMaxProbes = 4;

  // params: the policy's flat parameters on the device [net.size()] (changed by set_params). Counts the
  // active steps of batch.mask.
  CudaPolicyObjective(CudaTrainContext& ctx, CudaNet& net, float* params, const CudaPolicyBatch& batch);

  // The batch's arrays were rewritten in place (a new rollout): its active steps, as counted by the caller.
  void set_active_steps(double active) { active_ = active; }

  double surrogate_grad(Vec& grad);  // at the current (old) parameters
  void fvp(const Vec& v, Vec& out);  // F v at the parameters of the last surrogate_grad
  void get_params(Vec& out) const;
  void set_params(const Vec& p);
  SurrogateKl surrogate_kl();
  // max |log pi on the training path - logp_old| at theta_old over the steps of the last surrogate_grad
  // (TRPO) or of the first minibatch_grad after surrogate_old (PPO).
  double rollout_mismatch() const { return mismatch_; }
  double active_steps() const { return active_; }
  double last_fvp_epsilon() const { return last_eps_; }  // eps of the last fvp (diagnostics)

  int64_t trials() const { return b_.N; }
  // L at theta_old from the rollout's pi_old (no forward). ppo_update calls it first: it also marks the
  // next minibatch_grad as the update's first (at theta_old, the one that measures rollout_mismatch).
  double surrogate_old();
  double minibatch_grad(const int64_t* ids, int64_t n, double clip, Vec& grad);  // ids: host memory
  double minibatch_kl() const { return mb_kl_; }  // mean KL(pi_old || pi) of the last minibatch_grad
  bool adam_ascent(const Vec& grad, double lr);
  void set_adam(CudaAdamState* adam) { adam_ = adam; }

 private:
  void shifted_forward(const Vec& v, double step);  // pm_ = params + step v; logits_ = net(pm_)
  void fill_nan(Vec& v) const;
  void ensure_minibatch(int64_t n);

  CudaNet& net_;
  float* params_;
  CudaPolicyBatch b_;
  int64_t M_;                    // T * N steps
  double active_;                // active steps (M without a mask)
  double mismatch_ = 0.0;
  int64_t minibatches_ = 0;      // minibatch_grad calls since surrogate_old
  double mb_kl_ = 0.0;
  double theta_norm_ = 0.0;      // |theta_old|, set by surrogate_grad
  double kappa_ = 0.0;           // max logit change per unit parameter step of the last probe (0: none yet)
  double last_eps_ = 0.0;
  CudaAdamState* adam_ = nullptr;
  DeviceBuffer<float> logits_, logits_old_, probs_, d_logits_;  // [M, A]; probs_: pi(theta_old), training path
  DeviceBuffer<double> terms_, aux_, gap_;                       // [M]
  DeviceBuffer<float> pm_, tmp_;                                 // [n] probe parameters, the minus gradient
  DeviceBuffer<int64_t> ids_;                                    // [N] minibatch trial ids
  DeviceBuffer<float> mb_x_, mb_probs_, mb_mask_;                // [T, n, I], [T, n, A], [T, n] (PPO, on demand)
};

// ---- advantages (learner_cpu.cpp's compute_advantages, on the device) --------------------------------------
// values [T, N] = raw_values * return_std + return_mean (0 at inactive steps); GAE(gamma, lambda) over
// whole trials into adv and returns; adv standardised over the batch's active steps (0 at inactive ones).
// Returns the explained variance of values on returns over the active steps. scratch: [T * N] doubles.
// mask [T, N]: nullptr = every step active.
double cuda_compute_advantages(CudaTrainContext& ctx, int64_t T, int64_t N, const float* rewards, const float* raw_values,
                               double return_mean, double return_std, double gamma, double lambda, float* values,
                               float* adv, float* returns, double* scratch, const StepMask& steps);

// ---- the learner ----------------------------------------------------------------------------------------
// Device bytes the CUDA learner needs for `cfg`: fixed (parameters, vectors, library handles) plus per
// trial (rollout, batch arrays, activations, cuDNN workspace and reserve, estimated linearly from
// `temp` measured at `temp_batch` trials; the maze: its inputs, mask, the encoder's activations and output).
struct CudaLearnerBytes {
  double fixed = 0.0;
  double per_trial = 0.0;
};
CudaLearnerBytes cuda_learner_bytes(const TrainConfig& cfg, const CudnnTempBytes& temp, int64_t temp_batch);
// InputError, one line, when no GPU is usable or the learner would not fit in the GPU memory free now:
// what it needs, what is free, and how many steps per iteration would fit.
void check_cuda_learner_fits(const TrainConfig& cfg);
// Validates cfg (InputError) and builds the CUDA learner; make_learner(Device::kCuda, cfg) calls it.
std::unique_ptr<Learner> make_cuda_learner(const TrainConfig& cfg);
// The last training rollout of a CUDA learner, copied to the host (tests); rl2::Error for any other learner.
RolloutHost cuda_learner_last_rollout(const Learner& learner);

}  // namespace rl2
