// The CPU backend of RL² training: batched rollouts (trials spread over OpenMP threads, one network step
// per time step for the whole batch), GAE over whole trials, the TRPO update of include/rl2/algo/trpo.hpp
// with exact Fisher-vector products (forward mode through the network, then F = J^T M J with
// M = diag(p) - p p^T the softmax Fisher), and the baseline's Adam regression on normalised returns-to-go.
// The network is network.hpp's: the GRU, behind the conv encoder for the maze.
// Layouts are time-major: x [T, N, I], per-step scalars [T, N], logits and probabilities [T, N, A].
// Finished steps: a trial whose episodes are all done (a maze trial that reached its targets early) is
// finished; its later steps are inactive (mask 0): they carry reward 0, value 0 and advantage 0, and every
// mean (surrogate, KL, entropy, advantage standardisation, explained variance, the baseline's loss and
// normaliser) is over the active steps only. Bandit and MDP trials never finish early.
// Every reduction over trials or steps is a chunked sum (core/chunks.hpp): in order inside fixed chunks
// of trials, then the chunk sums in chunk order; so a run gives the same bytes on any thread count.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "rl2/algo/gae.hpp"
#include "rl2/algo/minibatch.hpp"
#include "rl2/core/check.hpp"
#include "rl2/core/chunks.hpp"
#include "rl2/core/rng.hpp"
#include "rl2/env/batch.hpp"
#include "cpu/policy_objective.hpp"
#include "rl2/policy/network.hpp"
#include "rl2/policy/softmax.hpp"
#include "rl2/train/learner.hpp"

namespace rl2 {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Below this many trials a rollout step's per-trial loops (input encoding, action sampling) cost less
// than an OpenMP fork/join, which on a busy machine can take a scheduler time slice.
constexpr int64_t kParallelTrials = 256;

class CpuLearner final : public Learner {
 public:
  explicit CpuLearner(const TrainConfig& cfg)
      : cfg_(cfg),
        layout_(cfg.input_layout()),
        T_(cfg.env.trial_length()),
        N_(cfg.trials_per_iter()),
        A_(cfg.env.num_actions()),
        pol_shape_(cfg.policy_shape()),
        base_shape_(cfg.baseline_shape()),
        env_(make_cpu_env_batch(cfg.env, N_)) {
    const int64_t tn = T_ * N_;
    const int64_t I = layout_.size();
    st_.policy.assign(static_cast<size_t>(pol_shape_.size()), 0.0f);
    st_.baseline.assign(static_cast<size_t>(base_shape_.size()), 0.0f);
    net_init(pol_shape_, cfg.seed, 0, 0.01f, st_.policy.data());
    net_init(base_shape_, cfg.seed, 1, 1.0f, st_.baseline.data());
    x_.resize(static_cast<size_t>(tn * I));
    mask_.resize(static_cast<size_t>(tn));
    actions_.resize(static_cast<size_t>(tn));
    rewards_.resize(static_cast<size_t>(tn));
    logp_old_.resize(static_cast<size_t>(tn));
    probs_old_.resize(static_cast<size_t>(tn * A_));
    values_.resize(static_cast<size_t>(tn));
    adv_.resize(static_cast<size_t>(tn));
    returns_.resize(static_cast<size_t>(tn));
  }

  IterationStats iterate() override {
    IterationStats s;
    s.iteration = st_.iteration;
    s.env_steps = T_ * N_;
    auto t0 = std::chrono::steady_clock::now();
    const std::vector<double> totals = play(*env_, N_, static_cast<uint64_t>(st_.iteration) * N_, true, nullptr);
    s.mean_return = chunked_trial_sum(N_, T_, [&](int64_t i) { return totals[i]; }) / static_cast<double>(N_);
    s.entropy = batch_entropy();
    s.seconds_rollout = seconds_since(t0);

    t0 = std::chrono::steady_clock::now();
    s.explained_variance = compute_advantages();
    CpuPolicyObjective obj(pol_shape_, st_.policy, batch_view(), pol_cache_, cand_cache_, probs_, logits_, d_out_, terms_);
    if (cfg_.algo == "ppo") {
      obj.set_adam(&st_.policy_adam);
      s.update = ppo_update(obj, cfg_.ppo, cfg_.seed, st_.iteration);
    } else {
      obj.set_fvp_subsample(cfg_.trpo.fvp_subsample);
      s.update = trpo_step(obj, cfg_.trpo);
    }
    s.rollout_mismatch = obj.rollout_mismatch();
    st_.nonfinite_in_a_row = s.update.status == UpdateStatus::kNonFinite ? st_.nonfinite_in_a_row + 1 : 0;
    s.seconds_policy = seconds_since(t0);

    t0 = std::chrono::steady_clock::now();
    s.baseline_loss = fit_baseline();
    s.seconds_baseline = seconds_since(t0);
    st_.iteration += 1;
    return s;
  }

  using Learner::evaluate;
  EvalResult evaluate(const EnvConfig& env, int64_t instances, uint64_t first_trial, bool keep_actions) override {
    check_eval_request(cfg_.env, env, instances);
    constexpr int64_t kChunk = 4096;  // bounds memory; results do not depend on it (ids fix every number)
    EvalResult out;
    out.episodes = env.episodes();
    const size_t per_trial = static_cast<size_t>(env.episodes()), T = static_cast<size_t>(env.trial_length());
    out.totals.reserve(static_cast<size_t>(instances));
    out.lengths.reserve(static_cast<size_t>(instances) * per_trial);
    out.success.reserve(out.lengths.capacity());
    if (keep_actions) out.actions.reserve(static_cast<size_t>(instances) * T);
    for (int64_t start = 0; start < instances; start += kChunk) {
      const int64_t n = std::min(kChunk, instances - start);
      auto batch = make_env_batch(Device::kCpu, env, n);
      EvalResult part;
      part.lengths.assign(static_cast<size_t>(n) * per_trial, static_cast<int32_t>(T / per_trial));  // horizon
      part.success.assign(part.lengths.size(), 0);
      if (keep_actions) part.actions.assign(static_cast<size_t>(n) * T, -1);
      part.totals = play(*batch, n, first_trial + static_cast<uint64_t>(start), false, &part);
      out.totals.insert(out.totals.end(), part.totals.begin(), part.totals.end());
      out.lengths.insert(out.lengths.end(), part.lengths.begin(), part.lengths.end());
      out.success.insert(out.success.end(), part.success.begin(), part.success.end());
      out.actions.insert(out.actions.end(), part.actions.begin(), part.actions.end());
    }
    return out;
  }

  const TrainConfig& config() const override { return cfg_; }
  const TrainState& state() const override { return st_; }
  void set_state(const TrainState& s) override {
    check_state_fits(st_, s);
    st_ = s;
  }
  Device device() const override { return Device::kCpu; }

 private:
  PolicyBatch batch_view() const {
    return PolicyBatch{T_,         N_,          A_,         x_.data(), actions_.data(), logp_old_.data(),
                       probs_old_.data(), adv_.data(), cfg_.entropy_coef, mask_.data()};
  }

  bool active(int64_t k) const { return mask_[k] != 0.0f; }

  // Plays n trials (ids first_trial + i) of env's config with the current policy; returns each trial's
  // total reward. With record (the training env), keeps the batch (inputs, actions, rewards,
  // log-probabilities, the active mask) for training. Otherwise the network steps only the trials that
  // have not finished, compacted into the first m rows (rows[j] is the trial of row j), and stops once
  // all have finished. With ep, fills its per-episode lengths and successes ([n, episodes], preset to
  // horizon and 0) and its actions if sized.
  std::vector<double> play(EnvBatch& env, int64_t n, uint64_t first_trial, bool record, EvalResult* ep) {
    const EnvConfig& ec = env.config();
    const int64_t H = cfg_.hidden, I = layout_.size(), obs_size = ec.obs_size(), T = ec.trial_length();
    const int32_t E = ec.episodes();
    std::vector<float> h(static_cast<size_t>(n * H), 0.0f), h_next(h.size());
    std::vector<float> xt(static_cast<size_t>(n * I)), logits(static_cast<size_t>(n * A_)), p(logits.size());
    std::vector<int32_t> prev_a(static_cast<size_t>(n), -1);
    std::vector<TrialTracker> trial(static_cast<size_t>(n));
    std::vector<float> prev_r(static_cast<size_t>(n), 0.0f), prev_d(static_cast<size_t>(n), 0.0f);
    std::vector<double> totals(static_cast<size_t>(n), 0.0);
    std::vector<int64_t> rows(static_cast<size_t>(n));
    std::iota(rows.begin(), rows.end(), 0);
    int64_t m = n;
    env.reset(cfg_.seed, first_trial);
    int32_t* actions = env.action_buffer();
    for (int64_t t = 0; t < T && m > 0; ++t) {
      float* x = record ? &x_[t * n * I] : xt.data();
      const float* obs = env.obs();
#pragma omp parallel for schedule(static) if (m >= kParallelTrials)
      for (int64_t j = 0; j < m; ++j) {
        const int64_t i = rows[j];
        encode_input(layout_, obs + i * obs_size, prev_a[i], prev_r[i], prev_d[i], x + j * I);
      }
      net_step(pol_shape_, st_.policy.data(), x, h.data(), m, step_cache_, h_next.data(), logits.data());
#pragma omp parallel for schedule(static) if (m >= kParallelTrials)
      for (int64_t j = 0; j < m; ++j) {
        const int64_t i = rows[j];  // == j while recording
        float* pi = &p[j * A_];
        const float lse = softmax(&logits[j * A_], A_, pi);
        const float u = u01(philox_bits(cfg_.seed, first_trial + static_cast<uint64_t>(i), static_cast<uint32_t>(t),
                                        Purpose::kAction, 0)
                                .v[0]);
        const int32_t a = sample_categorical(pi, A_, u);
        actions[i] = a;
        if (record) {
          const int64_t k = t * n + i;
          actions_[k] = a;
          logp_old_[k] = logits[j * A_ + a] - lse;
          std::copy(pi, pi + A_, &probs_old_[k * A_]);
        }
      }
      env.step(actions);
      const float* r = env.rewards();
      const uint8_t* d = env.dones();
      for (int64_t i = 0; i < n; ++i) {
        prev_a[i] = actions[i];
        prev_r[i] = r[i];
        prev_d[i] = d[i];
        totals[i] += r[i];
        if (record) {
          rewards_[t * n + i] = r[i];
          mask_[t * n + i] = trial[i].live(E) ? 1.0f : 0.0f;  // the trial had not finished before this step
        }
        trial[i].count(ep, i, t, T, E, actions[i], r[i], d[i] != 0);
      }
      std::swap(h, h_next);
      if (record) continue;
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

  double batch_entropy() const {
    const int64_t tn = T_ * N_;
    std::vector<double> e(static_cast<size_t>(tn));
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < tn; ++k) e[k] = active(k) ? entropy(&probs_old_[k * A_], A_) : 0.0;
    return chunked_sum_of(T_, N_, e.data()) / active_count();
  }

  double active_count() const { return chunked_sum_of(T_, N_, mask_.data()); }

  // Mean and variance of value(k) over the batch's active steps k (chunked sums, two passes).
  template <class F>
  std::pair<double, double> active_mean_var(F&& value) const {
    const double count = active_count();
    const double mean = chunked_sum(T_, N_, [&](int64_t t, int64_t i) {
                          const int64_t k = t * N_ + i;
                          return active(k) ? static_cast<double>(value(k)) : 0.0;
                        }) /
                        count;
    const double var = chunked_sum(T_, N_, [&](int64_t t, int64_t i) {
                         const int64_t k = t * N_ + i;
                         const double e = active(k) ? static_cast<double>(value(k)) - mean : 0.0;
                         return e * e;
                       }) /
                       count;
    return {mean, var};
  }

  // Baseline values, GAE, standardised advantages; returns the explained variance of the values.
  double compute_advantages() {
    const int64_t tn = T_ * N_;
    std::vector<float> out(static_cast<size_t>(tn));
    net_forward(base_shape_, st_.baseline.data(), x_.data(), T_, N_, base_cache_, out.data());
    for (int64_t k = 0; k < tn; ++k)
      values_[k] = active(k) ? static_cast<float>(out[k] * st_.return_std + st_.return_mean) : 0.0f;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N_; ++i)
      gae_trial<double>(T_, N_, &rewards_[i], &values_[i], cfg_.gamma, cfg_.gae_lambda, &adv_[i], &returns_[i]);
    const double var_ret = active_mean_var([&](int64_t k) { return returns_[k]; }).second;
    const double var_resid =
        active_mean_var([&](int64_t k) { return static_cast<double>(returns_[k]) - values_[k]; }).second;
    const double ev = var_ret > 0.0 ? 1.0 - var_resid / var_ret : 0.0;
    const auto [adv_mean, adv_var] = active_mean_var([&](int64_t k) { return adv_[k]; });
    const double sd = std::sqrt(adv_var);
    for (int64_t k = 0; k < tn; ++k)
      adv_[k] = active(k) ? static_cast<float>((adv_[k] - adv_mean) / (sd + 1e-8)) : 0.0f;
    return ev;
  }

  // Adam regression of the baseline on normalised returns-to-go (active steps), minibatches of whole trials.
  double fit_baseline() {
    const int64_t I = layout_.size();
    const auto [ret_mean, ret_var] = active_mean_var([&](int64_t k) { return returns_[k]; });
    const TrainState backup = st_;
    st_.return_mean = ret_mean;
    st_.return_std = std::max(std::sqrt(ret_var), 1e-3);
    const int64_t mb_count = std::max<int64_t>(1, std::min<int64_t>(cfg_.baseline_minibatches, N_));
    std::vector<float> grad(st_.baseline.size()), xb, target, pred, d_out, mb_mask;
    double last_loss = 0.0;
    for (int32_t epoch = 0; epoch < cfg_.baseline_epochs; ++epoch) {
      const std::vector<int64_t> order =
          shuffled_trials(cfg_.seed, static_cast<uint64_t>(st_.iteration), static_cast<uint32_t>(epoch), N_);
      double loss_sum = 0.0;
      for (int64_t mb = 0; mb < mb_count; ++mb) {
        const int64_t lo = mb * N_ / mb_count, hi = (mb + 1) * N_ / mb_count, b = hi - lo;
        xb.resize(static_cast<size_t>(T_ * b * I));
        target.resize(static_cast<size_t>(T_ * b));
        pred.resize(target.size());
        d_out.resize(target.size());
        mb_mask.resize(target.size());
        const int64_t* ids = order.data() + lo;
        gather_trials(x_.data(), T_, N_, I, ids, b, xb.data());
        gather_trials(returns_.data(), T_, N_, 1, ids, b, target.data());
        gather_trials(mask_.data(), T_, N_, 1, ids, b, mb_mask.data());
        for (int64_t k = 0; k < T_ * b; ++k)
          target[k] = static_cast<float>((target[k] - st_.return_mean) / st_.return_std);
        const double active_b = chunked_sum_of(T_, b, mb_mask.data());  // the minibatch's own chunks
        net_forward(base_shape_, st_.baseline.data(), xb.data(), T_, b, fit_cache_, pred.data());
        const double scale = 2.0 / active_b;
        for (int64_t k = 0; k < T_ * b; ++k) {
          const double e = mb_mask[k] != 0.0f ? static_cast<double>(pred[k]) - target[k] : 0.0;
          d_out[k] = static_cast<float>(scale * e);
        }
        const double loss = chunked_sum(T_, b, [&](int64_t t, int64_t i) {
                              const int64_t k = t * b + i;
                              const double e = mb_mask[k] != 0.0f ? static_cast<double>(pred[k]) - target[k] : 0.0;
                              return e * e;
                            }) /
                            active_b;
        std::fill(grad.begin(), grad.end(), 0.0f);
        net_backward(base_shape_, st_.baseline.data(), xb.data(), T_, b, fit_cache_, d_out.data(), grad.data());
        if (!std::isfinite(loss) ||
            !adam_step(st_.baseline_adam, st_.baseline.data(), grad.data(), static_cast<int64_t>(grad.size()), cfg_.baseline_lr)) {
          st_ = backup;  // a non-finite fit never changes the baseline
          return std::numeric_limits<double>::quiet_NaN();
        }
        loss_sum += loss;
      }
      last_loss = loss_sum / static_cast<double>(mb_count);
    }
    return last_loss;
  }

  TrainConfig cfg_;
  InputLayout layout_;
  int64_t T_, N_;
  int32_t A_;
  NetShape pol_shape_, base_shape_;
  std::unique_ptr<EnvBatch> env_;
  TrainState st_;
  // The batch: [T, N, I] inputs and [T, N] / [T, N, A] per-step data.
  std::vector<float> x_, rewards_, logp_old_, probs_old_, values_, adv_, returns_;
  std::vector<float> mask_;  // [T, N] 1: active, 0: the trial had finished before this step
  std::vector<int32_t> actions_;
  // Scratch of the policy objective (sized by CpuPolicyObjective).
  std::vector<float> logits_, probs_, d_out_;
  std::vector<double> terms_;
  NetCache pol_cache_, cand_cache_, base_cache_, fit_cache_, step_cache_;
};

}  // namespace

std::unique_ptr<Learner> make_cpu_learner(const TrainConfig& cfg) {
  cfg.validate();
  return std::make_unique<CpuLearner>(cfg);
}

}  // namespace rl2
