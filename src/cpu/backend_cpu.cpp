// The CPU backend of the trainer (include/rl2/train/backend.hpp): host memory, the step ops of
// step_ops.hpp in OpenMP loops, reductions in the fixed chunk order of core/chunks.hpp (so a run gives the
// same bytes on any thread count), network.hpp's networks with their exact JVP, and batched rollouts
// (trials spread over OpenMP threads, one network step per time step for the whole batch).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>

#include "rl2/core/check.hpp"
#include "rl2/core/chunks.hpp"
#include "rl2/core/rng.hpp"
#include "rl2/env/batch.hpp"
#include "rl2/policy/policy.hpp"
#include "rl2/policy/softmax.hpp"
#include "rl2/train/backend.hpp"
#include "rl2/train/learner.hpp"

namespace rl2 {
namespace {

// Below this many items an OpenMP fork/join costs more than the loop (on a busy machine it can take a
// scheduler time slice); the items are independent, so the split changes no bit.
constexpr int64_t kParallelItems = 4096;
// The same for a rollout step's per-trial loops (input encoding, action sampling).
constexpr int64_t kParallelTrials = 256;

template <class Op>
void run_op(const Op& op, int64_t min_parallel = kParallelItems) {
  const int64_t n = op.count();
#pragma omp parallel for schedule(static) if (n >= min_parallel)
  for (int64_t k = 0; k < n; ++k) op(k);
}

// One sum per segment over its active steps (inactive steps add 0), by time then trial; with center c the
// squared deviations (x - c)².
template <class Real>
std::vector<double> masked_step_sum_parts(int64_t T, const TrialSegments& segs, const Real* x, const float* mask,
                                          const double* center) {
  const int64_t N = segs.trials();
  return unit_sums(segs, T, [&](int64_t t, int64_t i) {
    const int64_t k = t * N + i;
    const double e = ops::inactive(mask, k) ? 0.0 : static_cast<double>(x[k]) - (center ? *center : 0.0);
    return center ? e * e : e;
  });
}

template <class Real>
double masked_step_sum(int64_t T, int64_t N, const Real* x, const float* mask) {
  return sum_in_order(masked_step_sum_parts(T, TrialSegments::chunks(N, T), x, mask, nullptr));
}

template <class Real>
std::pair<double, double> masked_mean_var(int64_t T, int64_t N, const Real* x, const float* mask, double active) {
  const TrialSegments segs = TrialSegments::chunks(N, T);
  const double mean = sum_in_order(masked_step_sum_parts(T, segs, x, mask, nullptr)) / active;
  return {mean, sum_in_order(masked_step_sum_parts(T, segs, x, mask, &mean)) / active};
}

class CpuNet final : public BackendNet {
 public:
  CpuNet(const NetShape& shape, int64_t T) : shape_(shape), T_(T) {}
  void forward(const float* params, const float* x, int64_t batch, float* out, const TrialSegments* segs) override {
    net_forward(shape_, params, x, T_, batch, cache_, out, segs);
  }
  void backward(const float* params, const float* x, int64_t batch, const float* d_out, float* grad,
                const TrialSegments* segs) override {
    std::fill(grad, grad + shape_.size(), 0.0f);
    net_backward(shape_, params, x, T_, batch, cache_, d_out, grad, segs);
  }
  std::vector<PartsRange> parts_layout(const TrialSegments& segs) const override {
    return net_parts_layout(shape_, T_, segs.trials(), segs);
  }
  void backward_parts(const float* params, const float* x, const float* d_out, const TrialSegments& segs,
                      float* parts) override {
    net_backward(shape_, params, x, T_, segs.trials(), cache_, d_out, nullptr, &segs, parts);
  }
  bool has_jvp() const override { return true; }
  void jvp(const float* params, const float* x, int64_t batch, const float* v, float* d_out,
           const TrialSegments* segs) override {
    net_jvp(shape_, params, x, T_, batch, cache_, v, d_out, segs);
  }

 private:
  NetShape shape_;
  int64_t T_;
  NetCache cache_;
};

// Where play() keeps a recorded rollout (training): [T, n, I] inputs and [T, n] / [T, n, A] per-step data.
struct Record {
  float* x;
  int32_t* actions;
  float* logp;
  float* probs;
  float* rewards;
  float* mask;
};

// Plays the n trials of `env` (ids first_trial + i) with the policy; returns each trial's total reward.
// With rec (training) keeps the batch. Otherwise the network steps only the trials that have not finished,
// compacted into the first m rows (rows[j] is the trial of row j), and stops once all have finished; with
// played, keeps every step's action, reward and done (steps after a trial finished: -1, 0, 0).
std::vector<double> play_trials(EnvBatch& env, const NetShape& shape, const float* params, uint64_t seed,
                                uint64_t first_trial, const Record* rec, PlayedTrials* played) {
  const EnvConfig& ec = env.config();
  const int64_t n = env.trials(), H = shape.gru.hidden, obs_size = ec.obs_size(), T = ec.trial_length();
  const int32_t A = ec.num_actions(), E = ec.episodes();
  const InputLayout layout{static_cast<int32_t>(obs_size), A};
  const int64_t I = layout.size();
  NetCache step_cache;
  std::vector<float> h(static_cast<size_t>(n * H), 0.0f), h_next(h.size());
  std::vector<float> xt(static_cast<size_t>(n * I)), logits(static_cast<size_t>(n * A)), p(logits.size());
  std::vector<int32_t> prev_a(static_cast<size_t>(n), -1);
  std::vector<TrialTracker> trial(static_cast<size_t>(n));
  std::vector<float> prev_r(static_cast<size_t>(n), 0.0f), prev_d(static_cast<size_t>(n), 0.0f);
  std::vector<double> totals(static_cast<size_t>(n), 0.0);
  std::vector<int64_t> rows(static_cast<size_t>(n));
  std::iota(rows.begin(), rows.end(), 0);
  if (played) {
    played->actions.assign(static_cast<size_t>(T * n), -1);
    played->rewards.assign(static_cast<size_t>(T * n), 0.0f);
    played->dones.assign(static_cast<size_t>(T * n), 0);
  }
  int64_t m = n;
  // Training steps the batch's chunks (core/chunks.hpp), each alone: a rank holding some of the chunks
  // plays them exactly as one process does. An evaluation compacts its live rows instead.
  const TrialSegments chunks = TrialSegments::chunks(n, T);
  env.reset(seed, first_trial);
  int32_t* actions = env.action_buffer();
  for (int64_t t = 0; t < T && m > 0; ++t) {
    float* x = rec ? rec->x + t * n * I : xt.data();
    const float* obs = env.obs();
#pragma omp parallel for schedule(static) if (m >= kParallelTrials)
    for (int64_t j = 0; j < m; ++j) {
      const int64_t i = rows[j];
      encode_input(layout, obs + i * obs_size, prev_a[i], prev_r[i], prev_d[i], x + j * I);
    }
    net_step(shape, params, x, h.data(), m, step_cache, h_next.data(), logits.data(), rec ? &chunks : nullptr);
#pragma omp parallel for schedule(static) if (m >= kParallelTrials)
    for (int64_t j = 0; j < m; ++j) {
      const int64_t i = rows[j];  // == j while recording
      float* pi = &p[j * A];
      const float lse = softmax(&logits[j * A], A, pi);
      const float u = u01(philox_bits(seed, first_trial + static_cast<uint64_t>(i), static_cast<uint32_t>(t),
                                      Purpose::kAction, 0)
                              .v[0]);
      const int32_t a = sample_categorical(pi, A, u);
      actions[i] = a;
      if (rec) {
        const int64_t k = t * n + i;
        rec->actions[k] = a;
        rec->logp[k] = logits[j * A + a] - lse;
        std::copy(pi, pi + A, rec->probs + k * A);
      }
    }
    env.step(actions);
    const float* r = env.rewards();
    const uint8_t* d = env.dones();
    for (int64_t i = 0; i < n; ++i) {
      const bool live = trial[i].live(E);  // the trial had not finished before this step
      prev_a[i] = actions[i];
      prev_r[i] = r[i];
      prev_d[i] = d[i];
      totals[i] += r[i];
      const int64_t k = t * n + i;
      if (rec) {
        rec->rewards[k] = r[i];
        rec->mask[k] = live ? 1.0f : 0.0f;
      }
      if (played && live) {
        played->actions[k] = actions[i];
        played->rewards[k] = r[i];
        played->dones[k] = d[i];
      }
      trial[i].count(nullptr, i, t, T, E, actions[i], r[i], d[i] != 0);
    }
    std::swap(h, h_next);
    if (rec) continue;
    int64_t kept = 0;  // drop the rows of trials that just finished (their actions stay valid and unused)
    for (int64_t j = 0; j < m; ++j) {
      if (!trial[rows[j]].live(E)) continue;
      if (kept != j) std::copy(&h[j * H], &h[(j + 1) * H], &h[kept * H]);
      rows[kept++] = rows[j];
    }
    m = kept;
  }
  return totals;
}

class CpuRollout final : public BackendRollout {
 public:
  CpuRollout(Backend& be, const EnvConfig& env, const NetShape& policy, int64_t N)
      : shape_(policy), env_(make_env_batch(be, env, N)) {
    const size_t tn = static_cast<size_t>(env.trial_length() * N);
    x_.resize(tn * static_cast<size_t>(policy.input()));
    actions_.resize(tn);
    logp_.resize(tn);
    probs_.resize(tn * static_cast<size_t>(env.num_actions()));
    rewards_.resize(tn);
    mask_.resize(tn);
  }
  void run(const float* policy_host, const float*, uint64_t seed, uint64_t first_trial) override {
    const Record rec{x_.data(), actions_.data(), logp_.data(), probs_.data(), rewards_.data(), mask_.data()};
    totals_ = play_trials(*env_, shape_, policy_host, seed, first_trial, &rec, nullptr);
  }
  const float* x() const override { return x_.data(); }
  const int32_t* actions() const override { return actions_.data(); }
  const float* logp() const override { return logp_.data(); }
  const float* probs() const override { return probs_.data(); }
  const float* rewards() const override { return rewards_.data(); }
  const float* mask() const override { return mask_.data(); }
  const double* totals() const override { return totals_.data(); }

 private:
  NetShape shape_;
  std::unique_ptr<EnvBatch> env_;
  std::vector<float> x_, logp_, probs_, rewards_, mask_;
  std::vector<int32_t> actions_;
  std::vector<double> totals_;
};

class CpuBackend final : public Backend {
 public:
  using Backend::download;
  using Backend::upload;
  Device device() const override { return Device::kCpu; }

  void* allocate(size_t bytes) override {
    if (bytes == 0) return nullptr;
    void* p = std::malloc(bytes);
    if (p == nullptr) throw InputError("out of host memory allocating " + std::to_string(bytes) + " bytes");
    return p;
  }
  void release(void* p) noexcept override { std::free(p); }
  void upload(void* dst, const void* host, size_t bytes) override { copy(dst, host, bytes); }
  void download(void* host, const void* src, size_t bytes) override { copy(host, src, bytes); }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes > 0 && dst != src) std::memcpy(dst, src, bytes);
  }

#define RL2_CPU_RUN(Op) \
  void run(const ops::Op& op) override { run_op(op); }
  RL2_STEP_OPS(RL2_CPU_RUN)
#undef RL2_CPU_RUN
  // An environment's step is heavy (the maze renders its view): every batch is spread over the threads.
#define RL2_CPU_RUN_TRIALS(Op) \
  void run(const ops::Op& op) override { run_op(op, 2); }
  RL2_ROLLOUT_OPS(RL2_CPU_RUN_TRIALS)
#undef RL2_CPU_RUN_TRIALS
  void synchronize() override {}

  double step_sum(int64_t T, int64_t N, const double* x, const float* mask) override {
    return masked_step_sum(T, N, x, mask);
  }
  double step_sum(int64_t T, int64_t N, const float* x, const float* mask) override {
    return masked_step_sum(T, N, x, mask);
  }
  std::pair<double, double> mean_var(int64_t T, int64_t N, const float* x, const float* mask, double active) override {
    return masked_mean_var(T, N, x, mask, active);
  }
  std::pair<double, double> mean_var(int64_t T, int64_t N, const double* x, const float* mask, double active) override {
    return masked_mean_var(T, N, x, mask, active);
  }
  double trial_sum(int64_t N, int64_t T, const double* v) override {
    return sum_in_order(unit_sums(TrialChunks(N, T), 1, [v](int64_t, int64_t i) { return v[i]; }));
  }
  std::vector<double> step_sum_parts(int64_t T, const TrialSegments& segs, const float* x, const float* mask,
                                     const double* center) override {
    return masked_step_sum_parts(T, segs, x, mask, center);
  }
  std::vector<double> step_sum_parts(int64_t T, const TrialSegments& segs, const double* x, const float* mask,
                                     const double* center) override {
    return masked_step_sum_parts(T, segs, x, mask, center);
  }
  double max(int64_t n, const double* x) override {
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t i = 0; i < n; ++i) {
      if (std::isnan(x[i])) return x[i];
      m = std::max(m, x[i]);
    }
    return m;
  }
  double dot(int64_t n, const float* a, const float* b) override {
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
    return s;
  }
  bool all_finite(int64_t n, const float* x) override {
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(x[i])) return false;
    return true;
  }
  double max_abs_diff(int64_t n, const float* a, const float* b, const float* mask, int64_t width) override {
    double m = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      if (ops::inactive(mask, i / width)) continue;
      const double d = std::fabs(static_cast<double>(a[i]) - b[i]);
      if (std::isnan(d)) return d;
      m = std::max(m, d);
    }
    return m;
  }

  std::unique_ptr<BackendNet> make_net(const NetShape& shape, int64_t T, int64_t) override {
    return std::make_unique<CpuNet>(shape, T);
  }
  std::unique_ptr<BackendRollout> make_rollout(const EnvConfig& env, const NetShape& policy, const NetShape&,
                                               int64_t trials, bool) override {
    return std::make_unique<CpuRollout>(*this, env, policy, trials);
  }
  PlayedTrials play(const EnvConfig& env, const NetShape& policy, const float* policy_host, int64_t n, uint64_t seed,
                    uint64_t first_trial) override {
    auto batch = make_env_batch(*this, env, n);
    PlayedTrials out;
    play_trials(*batch, policy, policy_host, seed, first_trial, nullptr, &out);
    return out;
  }
  // Small units, so that ranks can share an evaluation (Trainer::evaluate); 256 trials fill the GEMMs.
  int64_t play_chunk(int64_t) const override { return 256; }

  void check_fits(const TrainConfig& cfg) override {
    // Host memory of one iteration: inputs, per-step data and four network caches (GRU: 5 [T, N, H] arrays;
    // the maze's encoder adds ~18 KB per step, encoder.hpp).
    const double tn = static_cast<double>(cfg.env.trial_length()) * static_cast<double>(cfg.trials_per_iter());
    const double bytes = 4.0 * tn *
                         (cfg.input_layout().size() + 9 + 4 * cfg.env.num_actions() +
                          4.0 * static_cast<double>(cfg.policy_shape().cache_floats_per_step()));
    const int64_t avail = host_available_bytes();
    RL2_REQUIRE(avail <= 0 || bytes <= 0.9 * static_cast<double>(avail),
                "--steps-per-iter " + std::to_string(cfg.steps_per_iter) + " with --hidden " +
                    std::to_string(cfg.hidden) + " needs " + format_bytes(bytes) + " of memory per iteration; " +
                    format_bytes(static_cast<double>(avail)) + " is available");
  }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace rl2
