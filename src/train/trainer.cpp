// RL² training written once over a Backend (backend.hpp): the Learner of every device.
//   rollout      N whole trials per iteration into the backend's [T, N] trajectory view
//   advantages   the baseline's values from its normaliser, GAE over whole trials, standardisation
//   policy       trpo_step / ppo_update (include/rl2/algo) on the PolicyObjective (objective.hpp)
//   baseline     Adam regression on normalised returns-to-go, minibatches of whole chunks of trials
//   evaluation   the backend plays the trials; the episode bookkeeping is TrialTracker's
// Finished steps: a trial whose episodes are all done (a maze trial that reached its targets early) is
// finished; its later steps are inactive (mask 0): they carry reward 0, value 0 and advantage 0, and every
// mean (surrogate, KL, entropy, advantage standardisation, explained variance, the baseline's loss and
// normaliser) is over the active steps only. Bandit and MDP trials never finish early.
// The state (TrainState, host memory) changes only at the end of an iteration, after every backend step
// succeeded; the backend's copies of the parameters and moments are made from it again after a failure.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>

#include "rl2/algo/minibatch.hpp"
#include "rl2/core/check.hpp"
#include "rl2/train/learner.hpp"
#include "rl2/train/objective.hpp"
#include "rl2/train/shard.hpp"

namespace rl2 {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

class Trainer final : public Learner {
 public:
  Trainer(std::unique_ptr<Backend> backend, const TrainConfig& cfg, Comm& comm)
      : be_(std::move(backend)),
        cfg_(cfg),
        T_(cfg.env.trial_length()),
        N_(cfg.trials_per_iter()),
        A_(cfg.env.num_actions()),
        pol_shape_(cfg.policy_shape()),
        base_shape_(cfg.baseline_shape()),
        shard_(comm, N_, T_),
        NL_(shard_.count()),
        segs_(shard_.segments()) {
    Backend& be = *be_;
    st_.policy.assign(static_cast<size_t>(pol_shape_.size()), 0.0f);
    st_.baseline.assign(static_cast<size_t>(base_shape_.size()), 0.0f);
    net_init(pol_shape_, cfg.seed, 0, 0.01f, st_.policy.data());
    net_init(base_shape_, cfg.seed, 1, 1.0f, st_.baseline.data());
    rollout_ = be.make_rollout(cfg.env, pol_shape_, base_shape_, NL_);
    const int64_t M = T_ * NL_;  // this rank's steps
    pol_params_ = Buffer<float>(be, pol_shape_.size());
    base_params_ = Buffer<float>(be, base_shape_.size());
    base_grad_ = Buffer<float>(be, base_shape_.size());
    values_ = Buffer<float>(be, M);
    adv_ = Buffer<float>(be, M);
    returns_ = Buffer<float>(be, M);
    scratch_ = Buffer<double>(be, M);
    order_ = Buffer<int64_t>(be, NL_);
    obj_ = std::make_unique<PolicyObjective>(
        be, pol_shape_, pol_params_.data(),
        PolicyBatch{T_, NL_, A_, rollout_->x(), rollout_->actions(), rollout_->logp(), rollout_->probs(), adv_.data(),
                    cfg.entropy_coef, rollout_->mask()},
        false, &shard_);
    obj_->set_fvp_subsample(cfg.algo == "ppo" ? 1.0 : cfg.trpo.fvp_subsample);
    // After the objective's full-batch nets: a backend that shares one GRU between nets sizes it for N.
    const TrialChunks chunks(N_, T_);
    const int64_t mb_max =
        std::min(NL_, (chunks.count() + baseline_minibatches() - 1) / baseline_minibatches() * chunks.size);
    pred_ = Buffer<float>(be, T_ * mb_max);
    d_out_ = Buffer<float>(be, T_ * mb_max);
    mb_x_ = Buffer<float>(be, T_ * mb_max * base_shape_.input());
    mb_mask_ = Buffer<float>(be, T_ * mb_max);
    base_fit_ = be.make_net(base_shape_, T_, mb_max);
    upload_state();
  }

  IterationStats iterate() override {
    IterationStats s;
    s.iteration = st_.iteration;
    s.env_steps = T_ * N_;
    try {
      if (!fresh_) upload_state();
      run_iteration(s);
    } catch (const InputError&) {
      fresh_ = false;
      throw;
    } catch (const Error& e) {
      fresh_ = false;  // the backend may hold a half-done update: the next call starts from state()
      const std::string what = e.what();
      if (out_of_memory(what))
        throw InputError("the GPU ran out of memory in training iteration " + std::to_string(st_.iteration) + " (" +
                         what + "); the state of the last completed iteration is kept; lower --steps-per-iter");
      throw;
    } catch (...) {
      fresh_ = false;
      throw;
    }
    return s;
  }

  using Learner::evaluate;
  EvalResult evaluate(const EnvConfig& env, int64_t instances, uint64_t first_trial, bool keep_actions) override {
    check_eval_request(cfg_.env, env, instances);
    const int64_t T = env.trial_length();
    const int32_t E = env.episodes();
    EvalResult out;
    out.episodes = E;
    out.lengths.assign(static_cast<size_t>(instances) * static_cast<size_t>(E), static_cast<int32_t>(T / E));
    out.success.assign(out.lengths.size(), 0);
    if (keep_actions) out.actions.assign(static_cast<size_t>(instances * T), -1);
    out.totals.assign(static_cast<size_t>(instances), 0.0);
    // Units of play_chunk trials bound memory; results do not depend on them (trial ids fix every number).
    // Over ranks, rank r plays units [r U / R, (r + 1) U / R) and every rank gathers the others' results.
    const int64_t chunk = std::max<int64_t>(1, be_->play_chunk(T));
    const int64_t units = (instances + chunk - 1) / chunk;
    Comm& comm = shard_.comm();
    const auto first_of = [&](int r) { return std::min(instances, r * units / comm.size() * chunk); };
    for (int64_t start = first_of(comm.rank()); start < first_of(comm.rank() + 1); start += chunk) {
      const int64_t n = std::min(chunk, instances - start);
      const PlayedTrials p =
          be_->play(env, pol_shape_, st_.policy.data(), n, cfg_.seed, first_trial + static_cast<uint64_t>(start));
      for (int64_t i = 0; i < n; ++i) {
        double total = 0.0;
        TrialTracker trial;
        for (int64_t t = 0; t < T; ++t) {
          const int64_t k = t * n + i;
          total += p.rewards[k];
          trial.count(&out, start + i, t, T, E, p.actions[k], p.rewards[k], p.dones[k] != 0);
        }
        out.totals[static_cast<size_t>(start + i)] = total;
      }
    }
    if (comm.size() > 1) gather_eval(comm, T, first_of, out);
    return out;
  }

  // Every rank's instances [first_of(r), first_of(r + 1)) of out, from the rank that played them.
  template <class FirstOf>
  static void gather_eval(Comm& comm, int64_t T, FirstOf&& first_of, EvalResult& out) {
    const size_t E = static_cast<size_t>(out.episodes), A = out.actions.empty() ? 0 : static_cast<size_t>(T);
    const auto span = [](auto& v, size_t from, size_t count) {
      return std::make_pair(reinterpret_cast<char*>(v.data() + from), count * sizeof(v[0]));
    };
    const auto fields = [&](size_t a, size_t n) {
      return std::array{span(out.totals, a, n), span(out.lengths, a * E, n * E), span(out.success, a * E, n * E),
                        span(out.actions, a * A, n * A)};
    };
    std::string mine;
    const size_t a = static_cast<size_t>(first_of(comm.rank()));
    for (const auto& [p, bytes] : fields(a, static_cast<size_t>(first_of(comm.rank() + 1)) - a)) mine.append(p, bytes);
    const std::vector<std::string> all = comm.all_gather(mine);
    for (int r = 0; r < comm.size(); ++r) {
      const size_t b = static_cast<size_t>(first_of(r)), n = static_cast<size_t>(first_of(r + 1)) - b;
      size_t o = 0;
      for (const auto& [p, bytes] : fields(b, n)) {
        RL2_CHECK(o + bytes <= all[static_cast<size_t>(r)].size(), "evaluation: a rank sent too few results");
        std::copy_n(all[static_cast<size_t>(r)].data() + o, bytes, p);
        o += bytes;
      }
    }
  }

  const TrainConfig& config() const override { return cfg_; }
  const TrainState& state() const override { return st_; }
  void set_state(const TrainState& s) override {
    check_state_fits(st_, s);
    st_ = s;
    fresh_ = false;
  }
  Device device() const override { return be_->device(); }

 private:
  static bool out_of_memory(const std::string& msg) {
    return msg.find("cudaErrorMemoryAllocation") != std::string::npos ||
           msg.find("CUDNN_STATUS_ALLOC_FAILED") != std::string::npos ||
           msg.find("CUBLAS_STATUS_ALLOC_FAILED") != std::string::npos;
  }

  // Minibatches are whole chunks of trials (a chunk computes as one unit on whichever rank holds it).
  int64_t baseline_minibatches() const {
    return std::max<int64_t>(1, std::min<int64_t>(cfg_.baseline_minibatches, TrialChunks(N_, T_).count()));
  }

  // Host state -> backend (parameters, Adam moments); the backend then holds exactly state().
  void upload_state() {
    be_->upload(pol_params_.data(), st_.policy);
    be_->upload(base_params_.data(), st_.baseline);
    upload_adam(*be_, st_.policy_adam, pol_adam_);
    upload_adam(*be_, st_.baseline_adam, base_adam_);
    fresh_ = true;
  }

  void run_iteration(IterationStats& s) {
    Backend& be = *be_;
    const int64_t M = T_ * NL_;
    auto t0 = std::chrono::steady_clock::now();
    rollout_->run(st_.policy.data(), st_.baseline.data(), cfg_.seed,
                  static_cast<uint64_t>(st_.iteration) * N_ + static_cast<uint64_t>(shard_.first()));
    const float* mask = rollout_->mask();
    s.mean_return = shard_.step_sum(be, 1, segs_, rollout_->totals(), nullptr) / static_cast<double>(N_);
    obj_->new_batch();
    active_ = obj_->active_steps();
    be.run(ops::Entropy{M, A_, rollout_->probs(), scratch_.data(), mask});
    s.entropy = shard_.step_sum(be, T_, segs_, scratch_.data(), nullptr) / active_;
    s.seconds_rollout = seconds_since(t0);

    t0 = std::chrono::steady_clock::now();
    s.explained_variance = compute_advantages();
    if (cfg_.algo == "ppo") {
      obj_->set_adam(&pol_adam_);
      s.update = ppo_update(*obj_, cfg_.ppo, cfg_.seed, st_.iteration);
    } else {
      s.update = trpo_step(*obj_, cfg_.trpo);
    }
    s.rollout_mismatch = obj_->rollout_mismatch();
    const int32_t nonfinite = s.update.status == UpdateStatus::kNonFinite ? st_.nonfinite_in_a_row + 1 : 0;
    s.seconds_policy = seconds_since(t0);

    t0 = std::chrono::steady_clock::now();
    double ret_mean = st_.return_mean, ret_std = st_.return_std;
    s.baseline_loss = fit_baseline(ret_mean, ret_std);
    s.seconds_baseline = seconds_since(t0);

    // Commit: the backend's parameters and moments become the state.
    TrainState next = st_;
    next.policy = be.download(pol_params_.data(), pol_params_.size());
    next.baseline = be.download(base_params_.data(), base_params_.size());
    next.policy_adam = download_adam(be, pol_adam_);
    next.baseline_adam = download_adam(be, base_adam_);
    next.return_mean = ret_mean;
    next.return_std = ret_std;
    next.nonfinite_in_a_row = nonfinite;
    next.iteration += 1;
    st_ = std::move(next);
  }

  // Baseline values, GAE, standardised advantages; returns the explained variance of the values.
  double compute_advantages() {
    Backend& be = *be_;
    const int64_t M = T_ * NL_;
    const float* mask = rollout_->mask();
    const float* raw = rollout_->values();
    if (raw == nullptr) {  // the rollout did not run the baseline alongside
      if (!base_full_) {
        base_full_ = be.make_net(base_shape_, T_, NL_);
        raw_ = Buffer<float>(be, M);
      }
      base_full_->forward(base_params_.data(), rollout_->x(), NL_, raw_.data(), &segs_);
      raw = raw_.data();
    }
    be.run(ops::Values{M, raw, st_.return_mean, st_.return_std, values_.data(), mask});
    be.run(ops::Gae{T_, NL_, rollout_->rewards(), values_.data(), cfg_.gamma, cfg_.gae_lambda, adv_.data(),
                    returns_.data()});
    const double var_ret = shard_.mean_var(be, T_, segs_, returns_.data(), mask, active_).second;
    be.run(ops::Residual{M, returns_.data(), values_.data(), scratch_.data()});
    const double var_resid = shard_.mean_var(be, T_, segs_, scratch_.data(), mask, active_).second;
    const double ev = var_ret > 0.0 ? 1.0 - var_resid / var_ret : 0.0;
    const auto [adv_mean, adv_var] = shard_.mean_var(be, T_, segs_, adv_.data(), mask, active_);
    be.run(ops::Standardise{M, adv_mean, std::sqrt(adv_var), adv_.data(), mask});
    return ev;
  }

  // Adam regression of the baseline on normalised returns-to-go over the active steps, minibatches of whole
  // trials. On success sets the new normaliser; a non-finite fit restores the baseline and its moments from
  // state() (untouched since the iteration began) and returns NaN.
  double fit_baseline(double& ret_mean, double& ret_std) {
    Backend& be = *be_;
    const int64_t I = base_shape_.input(), P = base_shape_.size();
    const float* mask = rollout_->mask();
    const auto [mean, var] = shard_.mean_var(be, T_, segs_, returns_.data(), mask, active_);
    const double sd = std::max(std::sqrt(var), 1e-3);
    const int64_t mb_count = baseline_minibatches();
    double last_loss = 0.0;
    const TrialChunks chunks(N_, T_);
    const int64_t K = chunks.count();
    for (int32_t epoch = 0; epoch < cfg_.baseline_epochs; ++epoch) {
      const std::vector<int64_t> order =
          shuffled_trials(cfg_.seed, static_cast<uint64_t>(st_.iteration), static_cast<uint32_t>(epoch), K);
      double loss_sum = 0.0;
      for (int64_t mb = 0; mb < mb_count; ++mb) {
        const int64_t lo = mb * K / mb_count, hi = (mb + 1) * K / mb_count;
        // This rank's trials of the minibatch's chunks, ascending, one segment per chunk (shard.hpp).
        const std::vector<int64_t> trials = chunks.trials_of(order.data() + lo, hi - lo);
        const Shard::Part part = shard_.select(trials.data(), static_cast<int64_t>(trials.size()));
        const int64_t b = static_cast<int64_t>(part.ids.size());
        be.upload(order_.data(), part.ids);
        const int64_t* ids = order_.data();
        be.run(ops::GatherTrialsF{rollout_->x(), T_, NL_, I, ids, b, mb_x_.data()});
        if (mask != nullptr) be.run(ops::GatherTrialsF{mask, T_, NL_, 1, ids, b, mb_mask_.data()});
        // >= the minibatch's trials: every trial's first step is active
        const double active_b = shard_.active_steps(be, T_, part.segs, mask != nullptr ? mb_mask_.data() : nullptr);
        base_fit_->forward(base_params_.data(), mb_x_.data(), b, pred_.data(), &part.segs);
        be.run(ops::BaselineLoss{T_, b, NL_, ids, pred_.data(), returns_.data(), mean, sd, 2.0 / active_b,
                                 scratch_.data(), d_out_.data(), mask});
        const double loss = shard_.step_sum(be, T_, part.segs, scratch_.data(), nullptr) / active_b;
        shard_.backward(be, *base_fit_, P, base_params_.data(), mb_x_.data(), part.segs, d_out_.data(),
                        base_grad_.data());
        if (!std::isfinite(loss) || !adam_step(be, base_adam_, base_params_.data(), base_grad_.data(), P, cfg_.baseline_lr)) {
          be.upload(base_params_.data(), st_.baseline);
          upload_adam(be, st_.baseline_adam, base_adam_);
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

  std::unique_ptr<Backend> be_;
  TrainConfig cfg_;
  int64_t T_, N_;  // the whole batch: N_ trials of all ranks
  int32_t A_;
  NetShape pol_shape_, base_shape_;
  Shard shard_;         // this rank's trials of every batch and the ranks' sums
  int64_t NL_;          // this rank's trials
  TrialSegments segs_;  // and their chunks
  TrainState st_;
  bool fresh_ = false;  // the backend's parameters and moments equal st_'s
  double active_ = 0.0;  // this iteration's active steps
  std::unique_ptr<BackendRollout> rollout_;
  Buffer<float> pol_params_, base_params_, base_grad_;
  BackendAdam pol_adam_, base_adam_;
  Buffer<float> values_, adv_, returns_, raw_;  // [T, NL] (this rank's trials)
  Buffer<double> scratch_;                      // [T, NL]
  Buffer<int64_t> order_;                       // [NL] a minibatch's trials
  Buffer<float> pred_, d_out_, mb_x_, mb_mask_;  // the baseline's minibatch
  std::unique_ptr<BackendNet> base_fit_, base_full_;
  std::unique_ptr<PolicyObjective> obj_;
};

}  // namespace

std::unique_ptr<Learner> make_learner(std::unique_ptr<Backend> backend, const TrainConfig& cfg, Comm& comm) {
  return std::make_unique<Trainer>(std::move(backend), cfg, comm);
}

}  // namespace rl2
