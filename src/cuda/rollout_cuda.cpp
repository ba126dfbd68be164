// CudaRollout (rollout_cuda.hpp): device buffers, the cuBLAS handle and the CUDA graph of one rollout.
// Per step t (all on one stream; docs/cuda_rollout.md has the reasoning and the napkin math):
//   gi [N, 2, 3H]  = x_t [N, I] · [W_ih(policy); W_ih(baseline)]ᵀ        one SGEMM, packed W_ih [6H, I]
//   gh [2, N, 3H]  = h[net] [N, H] · W_hh[net]ᵀ, net = policy, baseline    one strided-batched SGEMM
//   h' [2, N, H]   = GRU gates (biases, σ, tanh, reset after the product)  ops::GruGates (the CPU's gru_unit)
//   a_t, log pi, probs, value from h'                                       ops::RolloutHeads
//   env step with a_t; rewards, dones, mask; x_{t+1} = encode(obs, a_t, r_t, d_t)
//                                                    ops::EnvStep, ops::RolloutRecord (the CPU's bodies)
// The maze puts its encoder in front of the input projection (the GRU's input is the encoder's output y):
//   y [2, N, G]    = encoder(x_t) with the policy's, then the baseline's encoder parameters (CudnnEncoder)
//   gi [N, 2, 3H]  = y[net] [N, G] · W_ih[net]ᵀ, one SGEMM per network into its half of gi
// and its record op writes only (onehot(a_t), r_t, d_t): ops::EnvRender draws the view into x_{t+1}.
// cuBLAS is column-major: a row-major [rows, cols] matrix is its column-major [cols, rows] transpose, so
// every product is written as C_cm [3H, N] = op_T(W_cm [K, 3H]) · B_cm [K, N].
#include "cuda/rollout_cuda.hpp"

#include <algorithm>
#include <climits>
#include <iostream>
#include <string>
#include <type_traits>
#include <utility>

#include "cuda_check.hpp"
#include "rl2/core/check.hpp"
#include "rl2/core/device.hpp"
#include "step_ops.cuh"
#include "cuda/encoder_cudnn.hpp"
#include "cudnn_check.hpp"

namespace rl2 {
namespace {

constexpr size_t kCublasWorkspaceBytes = size_t{32} << 20;  // cuBLAS's recommendation for Hopper
constexpr int64_t kAlignFloats = 64;                          // 256-byte alignment of each network's vector
// The maze rollout's own cuDNN handle (its device memory cannot be queried before it exists): a margin.
constexpr int64_t kCudnnHandleBytes = int64_t{64} << 20;
// Rows at which the encoder's per-row bytes are measured (CudnnEncoder::bytes / rows: its fixed workspace
// spread over a typical batch).
constexpr int64_t kEncoderRefRows = 4096;

int64_t align_up(int64_t n) { return (n + kAlignFloats - 1) / kAlignFloats * kAlignFloats; }

// ---- the environment part, the only code that depends on the environment type ---------------------
class EnvPart {
 public:
  virtual ~EnvPart() = default;
  // Samples the tasks, resets, and writes x_0 [N, I].
  virtual void reset(float* x0, const RunIds* run, cudaStream_t s) = 0;
  // Steps with actions [N]; writes rewards [N], dones [N], mask [N] and, unless nullptr, x_next [N, I].
  virtual void step(const int32_t* actions, float* rewards, uint8_t* dones, float* mask, float* x_next,
                    const RunIds* run, cudaStream_t s) = 0;
};

// The ops of env_ops.hpp and rollout_ops.hpp (the CPU's own bodies) on the rollout's stream: the env's step,
// the bookkeeping with the next input, and a rendered view drawn straight into x's image part.
template <class Env>
class EnvPartT final : public EnvPart {
 public:
  EnvPartT(const typename Env::Params& p, InputLayout layout, int32_t episodes, int64_t trials)
      : p_(p),
        layout_(layout),
        episodes_(episodes),
        trials_(trials),
        tasks_(static_cast<size_t>(trials * Env::task_size(p))),
        states_(static_cast<size_t>(trials)),
        // A rendered view goes straight into x: no observation scratch.
        obs_(ColumnRendered<Env> ? 0 : static_cast<size_t>(trials * Env::obs_size(p))),
        episodes_done_(static_cast<size_t>(trials)) {}

  void reset(float* x0, const RunIds* run, cudaStream_t s) override {
    launch(ops::EnvReset<Env>{p_, trials_, run, tasks_.data(), states_.data(), obs_.data(), nullptr, nullptr}, s);
    record(nullptr, nullptr, nullptr, nullptr, x0, s);
  }
  void step(const int32_t* actions, float* rewards, uint8_t* dones, float* mask, float* x_next, const RunIds* run,
            cudaStream_t s) override {
    launch(ops::EnvStep<Env>{p_, trials_, run, tasks_.data(), states_.data(), actions, obs_.data(), rewards, dones,
                             nullptr},
           s);
    record(actions, rewards, dones, mask, x_next, s);
  }

 private:
  void record(const int32_t* actions, const float* rewards, const uint8_t* dones, float* mask, float* x_next,
              cudaStream_t s) {
    launch(ops::RolloutRecord{layout_, trials_, episodes_, ColumnRendered<Env>, obs_.data(), actions, rewards, dones,
                              episodes_done_.data(), mask, x_next},
           s);
    if constexpr (ColumnRendered<Env>)
      if (x_next) launch(ops::EnvRender<Env>{p_, trials_, tasks_.data(), states_.data(), x_next, layout_.size()}, s);
  }

  typename Env::Params p_;
  InputLayout layout_;
  int32_t episodes_;
  int64_t trials_;
  DeviceBuffer<float> tasks_;
  DeviceBuffer<typename Env::State> states_;
  DeviceBuffer<float> obs_;
  DeviceBuffer<int32_t> episodes_done_;
};

std::unique_ptr<EnvPart> make_env_part(const EnvConfig& cfg, InputLayout layout, int64_t trials) {
  return visit_env(cfg, [&](auto env, const auto& params) -> std::unique_ptr<EnvPart> {
    using Env = decltype(env);
    return std::make_unique<EnvPartT<Env>>(params, layout, cfg.episodes(), trials);
  });
}

InputLayout layout_of(const EnvConfig& cfg) {
  return InputLayout{static_cast<int32_t>(cfg.obs_size()), cfg.num_actions()};
}

template <class T>
std::vector<T> download(const DeviceBuffer<T>& buf, cudaStream_t s) {
  std::vector<T> out(buf.size());
  if (!out.empty()) RL2_CUDA_CHECK(cudaMemcpyAsync(out.data(), buf.data(), buf.bytes(), cudaMemcpyDeviceToHost, s));
  return out;
}

}  // namespace

// ---- validation and memory ---------------------------------------------------------------------------
namespace {

NetShape plain(const GruShape& g) { return NetShape{g, false, {}}; }

// Device bytes of the maze rollout's encoder (activations and workspace of `rows` rows); 0 without one.
double encoder_bytes(const NetShape& s, int64_t rows) {
  return s.encoder ? CudnnEncoder::bytes(s.enc, rows) : 0.0;
}

}  // namespace

void validate_rollout(const EnvConfig& cfg, const NetShape& policy, const NetShape& baseline, int64_t trials) {
  cfg.validate();
  const bool maze = cfg.kind == EnvKind::kMaze;
  RL2_REQUIRE(policy.encoder == maze && baseline.encoder == maze,
              maze ? "the CUDA rollout plays the maze with the conv encoder in front of the GRU; these networks have "
                     "none (pass TrainConfig::policy_shape() / baseline_shape())"
                   : "the CUDA rollout gives a conv encoder to the maze only (" + cfg.describe() + " has no image)");
  RL2_REQUIRE(trials >= 1, "the number of trials must be at least 1 (got " + std::to_string(trials) + ")");
  RL2_REQUIRE(trials <= INT_MAX, "the CUDA rollout plays at most " + std::to_string(INT_MAX) + " trials at once (got " +
                                     std::to_string(trials) + ")");
  const int32_t A = cfg.num_actions();
  RL2_REQUIRE(A <= kRolloutMaxActions, "the CUDA rollout handles at most " + std::to_string(kRolloutMaxActions) +
                                           " actions (" + cfg.describe() + " has " + std::to_string(A) + ")");
  const InputLayout layout = layout_of(cfg);
  const int32_t I = layout.size();
  RL2_CHECK(policy.input() == I && baseline.input() == I,
            "CudaRollout: the networks' input size must be obs + actions + 2 = " + std::to_string(I));
  if (maze) {
    RL2_CHECK(policy.enc.image_size() == layout.obs && policy.enc.extra_in == A + 2,
              "CudaRollout: the encoder must read the maze's image and onehot(a), r, d");
    RL2_CHECK(baseline.enc.in() == policy.enc.in() && baseline.enc.out() == policy.enc.out() &&
                  encoder_layout(baseline.enc).total == encoder_layout(policy.enc).total,
              "CudaRollout: the policy and the baseline must have the same encoder shape (one encoder serves both)");
    RL2_CHECK(policy.gru.input == policy.enc.out() && baseline.gru.input == baseline.enc.out(),
              "CudaRollout: the GRU's input must be the encoder's output");
  }
  RL2_CHECK(policy.gru.out == A,
            "CudaRollout: the policy head must have one output per action (" + std::to_string(A) + ")");
  RL2_CHECK(baseline.gru.out == 1, "CudaRollout: the baseline head must have one output");
  RL2_CHECK(
      policy.gru.hidden >= 1 && policy.gru.hidden == baseline.gru.hidden && policy.gru.input == baseline.gru.input,
      "CudaRollout: the policy and the baseline must have the same input and hidden sizes (DESIGN.md section 3)");
}

void validate_rollout(const EnvConfig& cfg, const GruShape& policy, const GruShape& baseline, int64_t trials) {
  validate_rollout(cfg, plain(policy), plain(baseline), trials);
}

int64_t rollout_bytes_per_trial(const EnvConfig& cfg, const NetShape& policy, bool keep_inputs) {
  const int64_t T = cfg.trial_length(), I = layout_of(cfg).size(), A = cfg.num_actions(), H = policy.gru.hidden;
  const int64_t G = policy.gru.input;
  const int64_t x_steps = keep_inputs ? T : std::min<int64_t>(T, 2);
  const int64_t trajectory = 4 * I * x_steps /*x*/ + T * (4 /*action*/ + 4 /*logp*/ + 4 * A /*probs*/ + 4 /*reward*/ +
                                                          1 /*done*/ + 4 /*value*/ + 4 /*mask*/);
  const int64_t network = 4 * (2 * 2 * H /*h, two networks, ping-pong*/ + 6 * H /*gi*/ + 6 * H /*gh*/);
  int64_t encoder = 0;
  if (policy.encoder)
    encoder = 4 * 2 * G /*y of both networks*/ +
              static_cast<int64_t>(encoder_bytes(policy, kEncoderRefRows) / static_cast<double>(kEncoderRefRows)) + 1;
  return trajectory + network + encoder + 4 /*episodes done*/ + cfg.bytes_per_trial();
}

int64_t rollout_bytes_per_trial(const EnvConfig& cfg, const GruShape& policy) {
  return rollout_bytes_per_trial(cfg, plain(policy));
}

int64_t rollout_fixed_bytes(const EnvConfig& cfg, const NetShape& policy, const NetShape& baseline) {
  (void)cfg;
  const int64_t G = policy.gru.input, H = policy.gru.hidden;
  const int64_t params = align_up(policy.size()) + baseline.size();
  int64_t fixed = 4 * (params + 6 * H * G + 6 * H * H) + static_cast<int64_t>(kCublasWorkspaceBytes) +
                  static_cast<int64_t>(sizeof(RunIds));
  if (policy.encoder) fixed += kCudnnHandleBytes + static_cast<int64_t>(encoder_bytes(policy, 1));
  return fixed;
}

int64_t rollout_fixed_bytes(const EnvConfig& cfg, const GruShape& policy, const GruShape& baseline) {
  return rollout_fixed_bytes(cfg, plain(policy), plain(baseline));
}

void check_rollout_fits(const EnvConfig& cfg, const NetShape& policy, const NetShape& baseline, int64_t trials,
                        bool keep_inputs) {
  validate_rollout(cfg, policy, baseline, trials);
  RL2_REQUIRE(cuda_probe().usable, "no usable GPU: " + cuda_probe().reason);
  size_t free_b = 0, total_b = 0;
  RL2_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const double per = static_cast<double>(rollout_bytes_per_trial(cfg, policy, keep_inputs));
  const double fixed = static_cast<double>(rollout_fixed_bytes(cfg, policy, baseline));
  const double need = fixed + per * static_cast<double>(trials);
  const double usable = 0.9 * static_cast<double>(free_b);
  if (need <= usable) return;
  const int64_t fit = usable > fixed ? static_cast<int64_t>((usable - fixed) / per) : 0;
  throw InputError("a CUDA rollout of " + std::to_string(trials) + " " + cfg.describe() + " trials (" +
                   (policy.encoder ? "conv encoder + " : "") + "GRU-" + std::to_string(policy.gru.hidden) +
                   " policy and baseline) needs " + format_bytes(need) + " of GPU memory; " +
                   format_bytes(static_cast<double>(free_b)) + " is free" +
                   (fit > 0 ? " (at most " + std::to_string(fit) + " trials fit)" : ""));
}

void check_rollout_fits(const EnvConfig& cfg, const GruShape& policy, const GruShape& baseline, int64_t trials) {
  check_rollout_fits(cfg, plain(policy), plain(baseline), trials);
}

// ---- the rollout -------------------------------------------------------------------------------------
struct CudaRollout::Impl {
  EnvConfig cfg;
  NetShape pol, base;
  GruLayout lp, lb;
  RolloutOptions opt;
  int64_t N, T, base_offset, x_steps;
  int32_t I, G, A, H;  // x's width, the GRU's input (I, or the encoder's output), actions, hidden units
  // Members are destroyed in reverse order: the buffers go first (after ~Impl has waited for the stream),
  // then the graph, the encoder, the cuDNN and cuBLAS handles, cuBLAS's workspace, and the stream last.
  StreamOwner stream = make_stream();
  DeviceBuffer<unsigned char> workspace;  // cuBLAS's, fixed (kCublasWorkspaceBytes)
  BlasOwner blas = make_blas();
  DnnOwner dnn;                           // the maze only
  std::unique_ptr<CudnnEncoder> encoder;  // the maze only: N rows, used with each network's parameters
  GraphExecOwner exec;
  std::unique_ptr<EnvPart> env;
  DeviceBuffer<float> params;  // [policy (aligned) | baseline] flat vectors as uploaded
  DeviceBuffer<float> w_ih;    // [6H, G] packed input weights: policy rows, then baseline rows
  DeviceBuffer<float> w_hh;    // [2, 3H, H] recurrent weights
  DeviceBuffer<float> h;       // [2 slots, 2 nets, N, H]: step t reads slot t % 2, writes the other
  DeviceBuffer<float> gi, gh;  // [N, 2, 3H] and [2, N, 3H]
  DeviceBuffer<float> ey;      // [2, N, G] the maze: the encoder's output of step t, policy then baseline
  DeviceBuffer<float> x;       // [x_steps, N, I]: step t's input is slot t % x_steps
  DeviceBuffer<float> logp, probs, rewards, values, mask;
  DeviceBuffer<int32_t> actions;
  DeviceBuffer<uint8_t> dones;
  DeviceBuffer<RunIds> run;

  Impl(const EnvConfig& c, const NetShape& p, const NetShape& b, int64_t trials, RolloutOptions o)
      : cfg(c), pol(p), base(b), lp(gru_layout(p.gru)), lb(gru_layout(b.gru)), opt(o), N(trials),
        T(c.trial_length()), base_offset(align_up(p.size())),
        x_steps(o.keep_inputs ? c.trial_length() : std::min<int64_t>(c.trial_length(), 2)),
        I(layout_of(c).size()), G(p.gru.input), A(c.num_actions()), H(p.gru.hidden) {
    const auto n = [](int64_t v) { return static_cast<size_t>(v); };
    // The maze's encoder calls are not captured into the graph (docs/cuda_rollout.md): it launches eagerly.
    if (pol.encoder) opt.use_graph = false;
    env = make_env_part(cfg, layout_of(cfg), N);
    params = DeviceBuffer<float>(n(base_offset + base.size()));
    w_ih = DeviceBuffer<float>(n(6 * int64_t{H} * G));
    w_hh = DeviceBuffer<float>(n(2 * 3 * int64_t{H} * H));
    h = DeviceBuffer<float>(n(2 * 2 * N * H));
    gi = DeviceBuffer<float>(n(N * 6 * H));
    gh = DeviceBuffer<float>(n(2 * N * 3 * H));
    x = DeviceBuffer<float>(n(x_steps * N * I));
    logp = DeviceBuffer<float>(n(T * N));
    probs = DeviceBuffer<float>(n(T * N * A));
    rewards = DeviceBuffer<float>(n(T * N));
    values = DeviceBuffer<float>(n(T * N));
    mask = DeviceBuffer<float>(n(T * N));
    RL2_CUDA_CHECK(cudaMemsetAsync(mask.data(), 0, mask.bytes(), stream.get()));  // read (counted) before the first run
    actions = DeviceBuffer<int32_t>(n(T * N));
    dones = DeviceBuffer<uint8_t>(n(T * N));
    run = DeviceBuffer<RunIds>(1);
    workspace = DeviceBuffer<unsigned char>(kCublasWorkspaceBytes);
    if (pol.encoder) {
      dnn = make_dnn();
      RL2_CUDNN_CHECK(cudnnSetStream(dnn.get(), stream.get()));
      RL2_CUBLAS_CHECK(cublasSetStream(blas.get(), stream.get()));
      encoder = std::make_unique<CudnnEncoder>(dnn.get(), blas.get(), stream.get(), pol.enc, N);
      ey = DeviceBuffer<float>(n(2 * N * G));
    }
    RL2_CHECK(!pol.encoder || ey.size() > 0, "CudaRollout: the maze needs the cuDNN encoder (a build with cuDNN)");
    // After the encoder (which may set the handle's stream itself) and cublasSetStream, which resets the
    // workspace to cuBLAS's own pool: ours is fixed, so graph capture never makes cuBLAS allocate.
    RL2_CUBLAS_CHECK(cublasSetStream(blas.get(), stream.get()));
    RL2_CUBLAS_CHECK(cublasSetWorkspace(blas.get(), workspace.data(), workspace.bytes()));
    RL2_CUBLAS_CHECK(cublasSetMathMode(blas.get(), opt.allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    RL2_CUDA_CHECK(cudaStreamSynchronize(stream.get()));  // the zeroed mask is visible to other streams' readers
  }
  ~Impl() { cudaStreamSynchronize(stream.get()); }  // no buffer is freed under queued work
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  const float* pp() const { return params.data(); }                // policy's flat vector
  const float* bp() const { return params.data() + base_offset; }  // baseline's flat vector

  // gi [N, 2, 3H] = the input projections of both networks for step t's input xt [N, I].
  void input_projection(const float* xt) {
    const float one = 1.0f, zero = 0.0f;
    const int m3 = static_cast<int>(3 * H), n = static_cast<int>(N);
    if (!pol.encoder) {
      // gi_cm [6H, N] = W_ih_cat_cm [I, 6H]ᵀ · x_cm [I, N]   (both networks read the same x)
      RL2_CUBLAS_CHECK(cublasSgemm(blas.get(), CUBLAS_OP_T, CUBLAS_OP_N, 2 * m3, n, I, &one, w_ih.data(), I, xt, I,
                                   &zero, gi.data(), 2 * m3));
      return;
    }
    // y[net] [N, G] = encoder(xt) with each network's encoder parameters (after its GRU and head).
    encoder->forward(pp() + pol.gru_size(), xt, N, ey.data());
    encoder->forward(bp() + base.gru_size(), xt, N, ey.data() + N * G);
    // Rows net·3H .. net·3H + 3H of gi_cm [6H, N]:  W_ih_cm[net] [G, 3H]ᵀ · y_cm[net] [G, N]   (ldc = 6H)
    for (int net = 0; net < 2; ++net)
      RL2_CUBLAS_CHECK(cublasSgemm(blas.get(), CUBLAS_OP_T, CUBLAS_OP_N, m3, n, G, &one,
                                   w_ih.data() + int64_t{net} * m3 * G, G, ey.data() + net * N * G, G, &zero,
                                   gi.data() + int64_t{net} * m3, 2 * m3));
  }

  // Queues one whole rollout on the stream (eagerly, or into a capture).
  void enqueue() {
    cudaStream_t s = stream.get();
    const int64_t ih = 3 * int64_t{H} * G, hh = 3 * int64_t{H} * H, nh = N * H;
    RL2_CUDA_CHECK(cudaMemcpyAsync(w_ih.data(), pp() + lp.weight_ih, ih * 4, cudaMemcpyDeviceToDevice, s));
    RL2_CUDA_CHECK(cudaMemcpyAsync(w_ih.data() + ih, bp() + lb.weight_ih, ih * 4, cudaMemcpyDeviceToDevice, s));
    RL2_CUDA_CHECK(cudaMemcpyAsync(w_hh.data(), pp() + lp.weight_hh, hh * 4, cudaMemcpyDeviceToDevice, s));
    RL2_CUDA_CHECK(cudaMemcpyAsync(w_hh.data() + hh, bp() + lb.weight_hh, hh * 4, cudaMemcpyDeviceToDevice, s));
    RL2_CUDA_CHECK(cudaMemsetAsync(h.data(), 0, static_cast<size_t>(2 * nh) * 4, s));  // h_0 = 0, both networks
    env->reset(x.data(), run.data(), s);
    const float one = 1.0f, zero = 0.0f;
    const int m3 = static_cast<int>(3 * H), n = static_cast<int>(N);
    for (int64_t t = 0; t < T; ++t) {
      const float* xt = x.data() + (t % x_steps) * N * I;
      float* h_cur = h.data() + (t % 2) * 2 * nh;
      float* h_next = h.data() + ((t + 1) % 2) * 2 * nh;
      input_projection(xt);
      // gh_cm[net] [3H, N] = W_hh_cm[net] [H, 3H]ᵀ · h_cm[net] [H, N]
      RL2_CUBLAS_CHECK(cublasSgemmStridedBatched(blas.get(), CUBLAS_OP_T, CUBLAS_OP_N, m3, n, H, &one, w_hh.data(), H,
                                                 hh, h_cur, H, nh, &zero, gh.data(), m3, N * 3 * H, 2));
      launch(ops::GruGates{N, H, gi.data(), gh.data(), h_cur, h_next, {pp() + lp.bias_ih, bp() + lb.bias_ih},
                           {pp() + lp.bias_hh, bp() + lb.bias_hh}},
             s);
      const int64_t k = t * N;
      launch(ops::RolloutHeads{N, H, A, static_cast<int32_t>(t), run.data(), h_next, pp() + lp.head_w, pp() + lp.head_b,
                               bp() + lb.head_w, bp() + lb.head_b, actions.data() + k, logp.data() + k,
                               probs.data() + k * A, values.data() + k},
             s);
      float* x_next = t + 1 < T ? x.data() + ((t + 1) % x_steps) * N * I : nullptr;
      env->step(actions.data() + k, rewards.data() + k, dones.data() + k, mask.data() + k,
                x_next, run.data(), s);
    }
  }

  void capture() {
    cudaGraph_t graph = nullptr;
    RL2_CUDA_CHECK(cudaStreamBeginCapture(stream.get(), cudaStreamCaptureModeThreadLocal));
    try {
      enqueue();
    } catch (...) {
      cudaStreamEndCapture(stream.get(), &graph);  // leaves the stream usable; the error is the one thrown
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();
      throw;
    }
    RL2_CUDA_CHECK(cudaStreamEndCapture(stream.get(), &graph));
    cudaGraphExec_t g = nullptr;
    const cudaError_t err = cudaGraphInstantiate(&g, graph, 0);
    cudaGraphDestroy(graph);  // the executable graph keeps its own copy
    RL2_CUDA_CHECK(err);
    exec.reset(g);
  }
};

CudaRollout::CudaRollout(const EnvConfig& cfg, const NetShape& policy, const NetShape& baseline, int64_t trials,
                         RolloutOptions options) {
  check_rollout_fits(cfg, policy, baseline, trials, options.keep_inputs);
  impl_ = std::make_unique<Impl>(cfg, policy, baseline, trials, options);
}

CudaRollout::CudaRollout(const EnvConfig& cfg, const GruShape& policy, const GruShape& baseline, int64_t trials,
                         RolloutOptions options)
    : CudaRollout(cfg, plain(policy), plain(baseline), trials, options) {}

CudaRollout::~CudaRollout() = default;
CudaRollout::CudaRollout(CudaRollout&&) noexcept = default;
CudaRollout& CudaRollout::operator=(CudaRollout&&) noexcept = default;

void CudaRollout::run(const float* policy_params_host, const float* baseline_params_host, uint64_t seed,
                      uint64_t first_trial) {
  Impl& m = *impl_;
  cudaStream_t s = m.stream.get();
  // From pageable memory these copies are staged before they return, so the caller may reuse its vectors.
  RL2_CUDA_CHECK(cudaMemcpyAsync(m.params.data(), policy_params_host, static_cast<size_t>(m.pol.size()) * 4,
                                 cudaMemcpyHostToDevice, s));
  RL2_CUDA_CHECK(cudaMemcpyAsync(m.params.data() + m.base_offset, baseline_params_host,
                                 static_cast<size_t>(m.base.size()) * 4, cudaMemcpyHostToDevice, s));
  const RunIds r{seed, first_trial};
  RL2_CUDA_CHECK(cudaMemcpyAsync(m.run.data(), &r, sizeof r, cudaMemcpyHostToDevice, s));
  if (m.exec) {
    RL2_CUDA_CHECK(cudaGraphLaunch(m.exec.get(), s));
    return;
  }
  // First run (or graphs off): launch eagerly. That also loads every kernel (ours and cuBLAS's) before a
  // capture, which must not be the first use of a lazily loaded module.
  m.enqueue();
  if (!m.opt.use_graph) return;
  try {
    m.capture();
  } catch (const Error& e) {
    // A refused capture leaves this run's eager results as they are; later runs launch eagerly too (the
    // same kernels in the same order, so the same numbers), and the user hears of it once.
    cudaGetLastError();
    m.opt.use_graph = false;
    std::cerr << "rl2-cuda: CUDA graph capture of the rollout failed (" << e.what()
              << "); launching its kernels one by one instead\n";
  }
}

void CudaRollout::synchronize() const { RL2_CUDA_CHECK(cudaStreamSynchronize(impl_->stream.get())); }

RolloutHost CudaRollout::copy_to_host() const {
  const Impl& m = *impl_;
  cudaStream_t s = m.stream.get();
  RolloutHost out;
  out.steps = m.T;
  out.trials = m.N;
  out.input = m.I;
  out.actions_count = m.A;
  out.x = download(m.x, s);
  out.actions = download(m.actions, s);
  out.logp = download(m.logp, s);
  out.probs = download(m.probs, s);
  out.rewards = download(m.rewards, s);
  out.dones = download(m.dones, s);
  out.values = download(m.values, s);
  out.mask = download(m.mask, s);
  RL2_CUDA_CHECK(cudaStreamSynchronize(s));
  out.totals.assign(static_cast<size_t>(m.N), 0.0);
  for (int64_t t = 0; t < m.T; ++t)
    for (int64_t i = 0; i < m.N; ++i) out.totals[i] += out.rewards[t * m.N + i];
  return out;
}

int64_t CudaRollout::trials() const { return impl_->N; }
int64_t CudaRollout::steps() const { return impl_->T; }
int32_t CudaRollout::input_size() const { return impl_->I; }
int32_t CudaRollout::num_actions() const { return impl_->A; }
bool CudaRollout::graph_captured() const { return impl_->exec != nullptr; }
const float* CudaRollout::x() const { return impl_->x.data(); }
const int32_t* CudaRollout::actions() const { return impl_->actions.data(); }
const float* CudaRollout::logp() const { return impl_->logp.data(); }
const float* CudaRollout::probs() const { return impl_->probs.data(); }
const float* CudaRollout::rewards() const { return impl_->rewards.data(); }
const uint8_t* CudaRollout::dones() const { return impl_->dones.data(); }
const float* CudaRollout::values() const { return impl_->values.data(); }
const float* CudaRollout::mask() const { return impl_->mask.data(); }

}  // namespace rl2
