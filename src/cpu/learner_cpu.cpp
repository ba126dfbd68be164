// The CPU backend of RL² training: batched rollouts (trials spread over OpenMP threads, one GRU step per
// time step for the whole batch), GAE over whole trials, the TRPO update of include/rl2/algo/trpo.hpp
// with exact Fisher-vector products (forward-mode GRU, then F = J^T M J with M = diag(p) - p p^T the
// softmax Fisher), and the baseline's Adam regression on normalised returns-to-go.
// Layouts are time-major: x [T, N, I], per-step scalars [T, N], logits and probabilities [T, N, A].
// All reductions are serial sums of per-element terms, so a run is reproducible on a fixed thread count.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "rl2/algo/gae.hpp"
#include "rl2/core/check.hpp"
#include "rl2/core/rng.hpp"
#include "rl2/env/batch.hpp"
#include "cpu/policy_objective.hpp"
#include "rl2/policy/gru.hpp"
#include "rl2/policy/softmax.hpp"
#include "rl2/train/learner.hpp"

namespace rl2 {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double sum_serial(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0); }

class CpuLearner final : public Learner {
 public:
  explicit CpuLearner(const TrainConfig& cfg)
      : cfg_(cfg),
        layout_(cfg.input_layout()),
        T_(cfg.env.trial_length()),
        N_(cfg.trials_per_iter()),
        A_(cfg.env.num_actions()),
        pol_shape_{layout_.size(), cfg.hidden, A_},
        base_shape_{layout_.size(), cfg.hidden, 1},
        env_(make_cpu_env_batch(cfg.env, N_)) {
    const int64_t tn = T_ * N_;
    const int64_t I = layout_.size();
    st_.policy.assign(static_cast<size_t>(gru_layout(pol_shape_).total), 0.0f);
    st_.baseline.assign(static_cast<size_t>(gru_layout(base_shape_).total), 0.0f);
    gru_init(pol_shape_, cfg.seed, 0, 0.01f, st_.policy.data());
    gru_init(base_shape_, cfg.seed, 1, 1.0f, st_.baseline.data());
    st_.adam_m.assign(st_.baseline.size(), 0.0f);
    st_.adam_v.assign(st_.baseline.size(), 0.0f);
    x_.resize(static_cast<size_t>(tn * I));
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
    const std::vector<double> totals = play(*env_, N_, static_cast<uint64_t>(st_.iteration) * N_, true);
    s.mean_return = sum_serial(totals) / static_cast<double>(N_);
    s.entropy = batch_entropy();
    s.seconds_rollout = seconds_since(t0);

    t0 = std::chrono::steady_clock::now();
    s.explained_variance = compute_advantages();
    CpuPolicyObjective obj(pol_shape_, st_.policy, batch_view(), pol_cache_, cand_cache_, probs_, logits_, d_out_, terms_);
    s.trpo = trpo_step(obj, cfg_.trpo);
    s.rollout_mismatch = obj.rollout_mismatch();
    st_.nonfinite_in_a_row = s.trpo.status == TrpoStatus::kNonFinite ? st_.nonfinite_in_a_row + 1 : 0;
    s.seconds_policy = seconds_since(t0);

    t0 = std::chrono::steady_clock::now();
    s.baseline_loss = fit_baseline();
    s.seconds_baseline = seconds_since(t0);
    st_.iteration += 1;
    return s;
  }

  std::vector<double> evaluate(int64_t instances, uint64_t first_trial) override {
    RL2_REQUIRE(instances >= 1, "--instances must be at least 1 (got " + std::to_string(instances) + ")");
    constexpr int64_t kChunk = 4096;  // bounds memory; results do not depend on it (ids fix every number)
    std::vector<double> totals;
    totals.reserve(static_cast<size_t>(instances));
    for (int64_t start = 0; start < instances; start += kChunk) {
      const int64_t n = std::min(kChunk, instances - start);
      auto env = make_env_batch(Device::kCpu, cfg_.env, n);
      const auto part = play(*env, n, first_trial + static_cast<uint64_t>(start), false);
      totals.insert(totals.end(), part.begin(), part.end());
    }
    return totals;
  }

  const TrainState& state() const override { return st_; }
  void set_state(const TrainState& s) override {
    RL2_REQUIRE(s.policy.size() == st_.policy.size() && s.baseline.size() == st_.baseline.size() &&
                    s.adam_m.size() == st_.baseline.size() && s.adam_v.size() == st_.baseline.size(),
                "the checkpoint's network sizes do not match this configuration (--hidden, --env and its sizes)");
    st_ = s;
  }
  Device device() const override { return Device::kCpu; }

 private:
  PolicyBatch batch_view() const {
    return PolicyBatch{T_, N_, A_, x_.data(), actions_.data(), logp_old_.data(), probs_old_.data(), adv_.data()};
  }

  // Plays n trials (ids first_trial + i) with the current policy; returns each trial's total reward.
  // With record, keeps the batch (inputs, actions, rewards, log-probabilities) for training.
  std::vector<double> play(EnvBatch& env, int64_t n, uint64_t first_trial, bool record) {
    const int64_t H = cfg_.hidden, I = layout_.size(), obs_size = cfg_.env.obs_size();
    std::vector<float> h(static_cast<size_t>(n * H), 0.0f), h_next(h.size());
    std::vector<float> xt(static_cast<size_t>(n * I)), logits(static_cast<size_t>(n * A_)), p(logits.size());
    std::vector<int32_t> prev_a(static_cast<size_t>(n), -1);
    std::vector<float> prev_r(static_cast<size_t>(n), 0.0f), prev_d(static_cast<size_t>(n), 0.0f);
    std::vector<double> totals(static_cast<size_t>(n), 0.0);
    env.reset(cfg_.seed, first_trial);
    int32_t* actions = env.action_buffer();
    for (int64_t t = 0; t < T_; ++t) {
      float* x = record ? &x_[t * n * I] : xt.data();
      const float* obs = env.obs();
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) encode_input(layout_, obs + i * obs_size, prev_a[i], prev_r[i], prev_d[i], x + i * I);
      gru_step(pol_shape_, st_.policy.data(), x, h.data(), n, h_next.data(), logits.data());
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        float* pi = &p[i * A_];
        const float lse = softmax(&logits[i * A_], A_, pi);
        const float u = u01(philox_bits(cfg_.seed, first_trial + static_cast<uint64_t>(i), static_cast<uint32_t>(t),
                                        Purpose::kAction, 0)
                                .v[0]);
        const int32_t a = sample_categorical(pi, A_, u);
        actions[i] = a;
        if (record) {
          const int64_t k = t * n + i;
          actions_[k] = a;
          logp_old_[k] = logits[i * A_ + a] - lse;
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
        if (record) rewards_[t * n + i] = r[i];
      }
      std::swap(h, h_next);
    }
    return totals;
  }

  double batch_entropy() const {
    const int64_t tn = T_ * N_;
    std::vector<double> e(static_cast<size_t>(tn));
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < tn; ++k) {
      double s = 0.0;
      for (int32_t a = 0; a < A_; ++a) {
        const double pa = probs_old_[k * A_ + a];
        if (pa > 0.0) s -= pa * std::log(pa);
      }
      e[k] = s;
    }
    return sum_serial(e) / static_cast<double>(tn);
  }

  // Baseline values, GAE, standardised advantages; returns the explained variance of the values.
  double compute_advantages() {
    const int64_t tn = T_ * N_;
    std::vector<float> out(static_cast<size_t>(tn));
    gru_forward(base_shape_, st_.baseline.data(), x_.data(), T_, N_, base_cache_, out.data());
    for (int64_t k = 0; k < tn; ++k)
      values_[k] = static_cast<float>(out[k] * st_.return_std + st_.return_mean);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N_; ++i)
      gae_trial<double>(T_, N_, &rewards_[i], &values_[i], cfg_.gamma, cfg_.gae_lambda, &adv_[i], &returns_[i]);
    std::vector<double> ret(returns_.begin(), returns_.end()), resid(static_cast<size_t>(tn)),
        adv(adv_.begin(), adv_.end());
    for (int64_t k = 0; k < tn; ++k) resid[k] = static_cast<double>(returns_[k]) - values_[k];
    const double var_ret = variance(ret);
    const double ev = var_ret > 0.0 ? 1.0 - variance(resid) / var_ret : 0.0;
    const double adv_mean = sum_serial(adv) / static_cast<double>(tn);
    const double sd = std::sqrt(variance(adv));
    for (int64_t k = 0; k < tn; ++k) adv_[k] = static_cast<float>((adv_[k] - adv_mean) / (sd + 1e-8));
    return ev;
  }

  static double variance(const std::vector<double>& v) {
    const double m = sum_serial(v) / static_cast<double>(v.size());
    double s = 0.0;
    for (double x : v) s += (x - m) * (x - m);
    return s / static_cast<double>(v.size());
  }

  // Adam regression of the baseline on normalised returns-to-go, minibatches of whole trials.
  double fit_baseline() {
    const int64_t tn = T_ * N_, I = layout_.size();
    std::vector<double> ret(returns_.begin(), returns_.end());
    const TrainState backup = st_;
    st_.return_mean = sum_serial(ret) / static_cast<double>(tn);
    st_.return_std = std::max(std::sqrt(variance(ret)), 1e-3);
    const int64_t mb_count = std::max<int64_t>(1, std::min<int64_t>(cfg_.baseline_minibatches, N_));
    std::vector<int64_t> order(static_cast<size_t>(N_));
    std::vector<float> grad(st_.baseline.size()), xb, target, pred, d_out;
    double last_loss = 0.0;
    for (int32_t epoch = 0; epoch < cfg_.baseline_epochs; ++epoch) {
      std::iota(order.begin(), order.end(), 0);
      RandomStream rs(cfg_.seed, static_cast<uint64_t>(st_.iteration), static_cast<uint32_t>(epoch), Purpose::kShuffle);
      for (int64_t i = N_ - 1; i > 0; --i)
        std::swap(order[i], order[uniform_int(rs.next_u32(), static_cast<uint32_t>(i + 1))]);
      double loss_sum = 0.0;
      for (int64_t mb = 0; mb < mb_count; ++mb) {
        const int64_t lo = mb * N_ / mb_count, hi = (mb + 1) * N_ / mb_count, b = hi - lo;
        xb.resize(static_cast<size_t>(T_ * b * I));
        target.resize(static_cast<size_t>(T_ * b));
        pred.resize(target.size());
        d_out.resize(target.size());
        for (int64_t t = 0; t < T_; ++t)
          for (int64_t j = 0; j < b; ++j) {
            const int64_t src = t * N_ + order[lo + j];
            std::copy(&x_[src * I], &x_[src * I] + I, &xb[(t * b + j) * I]);
            target[t * b + j] = static_cast<float>((returns_[src] - st_.return_mean) / st_.return_std);
          }
        gru_forward(base_shape_, st_.baseline.data(), xb.data(), T_, b, fit_cache_, pred.data());
        double loss = 0.0;
        const double scale = 2.0 / static_cast<double>(T_ * b);
        for (int64_t k = 0; k < T_ * b; ++k) {
          const double e = static_cast<double>(pred[k]) - target[k];
          loss += e * e;
          d_out[k] = static_cast<float>(scale * e);
        }
        loss /= static_cast<double>(T_ * b);
        std::fill(grad.begin(), grad.end(), 0.0f);
        gru_backward(base_shape_, st_.baseline.data(), xb.data(), T_, b, fit_cache_, d_out.data(), grad.data(), nullptr);
        if (!std::isfinite(loss) || !adam_update(grad)) {
          st_ = backup;  // a non-finite fit never changes the baseline
          return std::numeric_limits<double>::quiet_NaN();
        }
        loss_sum += loss;
      }
      last_loss = loss_sum / static_cast<double>(mb_count);
    }
    return last_loss;
  }

  // One Adam step on the baseline; false (and no change) when the gradient is not finite.
  bool adam_update(const std::vector<float>& g) {
    for (float v : g)
      if (!std::isfinite(v)) return false;
    constexpr double kB1 = 0.9, kB2 = 0.999, kEps = 1e-8;
    st_.adam_t += 1;
    const double c1 = 1.0 - std::pow(kB1, static_cast<double>(st_.adam_t));
    const double c2 = 1.0 - std::pow(kB2, static_cast<double>(st_.adam_t));
    const int64_t n = static_cast<int64_t>(g.size());
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      st_.adam_m[i] = static_cast<float>(kB1 * st_.adam_m[i] + (1 - kB1) * g[i]);
      st_.adam_v[i] = static_cast<float>(kB2 * st_.adam_v[i] + (1 - kB2) * static_cast<double>(g[i]) * g[i]);
      st_.baseline[i] -= static_cast<float>(cfg_.baseline_lr * (st_.adam_m[i] / c1) / (std::sqrt(st_.adam_v[i] / c2) + kEps));
    }
    return true;
  }

  TrainConfig cfg_;
  InputLayout layout_;
  int64_t T_, N_;
  int32_t A_;
  GruShape pol_shape_, base_shape_;
  std::unique_ptr<EnvBatch> env_;
  TrainState st_;
  // The batch: [T, N, I] inputs and [T, N] / [T, N, A] per-step data.
  std::vector<float> x_, rewards_, logp_old_, probs_old_, values_, adv_, returns_;
  std::vector<int32_t> actions_;
  // Scratch of the policy objective (sized by CpuPolicyObjective).
  std::vector<float> logits_, probs_, d_out_;
  std::vector<double> terms_;
  GruCache<float> pol_cache_, cand_cache_, base_cache_, fit_cache_;
};

}  // namespace

std::unique_ptr<Learner> make_cpu_learner(const TrainConfig& cfg) {
  cfg.validate();
  return std::make_unique<CpuLearner>(cfg);
}

}  // namespace rl2
