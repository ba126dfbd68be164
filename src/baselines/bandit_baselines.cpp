// The bandit baselines of the paper's Table 1 (DESIGN.md section 5): Random, Gittins, Thompson sampling,
// optimistic Thompson sampling, UCB1, ε-greedy and greedy, each over Beta(1,1) arm posteriors.
//
// Parallel layout: one OpenMP thread per trial (dynamic schedule over instances); a trial is a plain loop
// over pulls. Tasks and rewards come from Bandit::sample_task / Bandit::step of the same (seed, trial id)
// as the RL² evaluation (common random numbers); a policy's own randomness (ties, ε, posterior samples)
// comes from Philox words of (seed, trial, pull, Purpose::kBaseline). Ties are broken uniformly at random.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "rl2/baselines/baselines.hpp"
#include "rl2/baselines/gittins.hpp"
#include "rl2/baselines/tuning.hpp"
#include "rl2/core/check.hpp"
#include "rl2/core/rng.hpp"

namespace rl2 {
namespace {

// Grids of the tuned hyperparameters (6-10 values each). The ε and N grids hold the value that reduces
// the policy to its plain form (ε = 0 is greedy, N = 1 is Thompson sampling), so on the tuning instances
// the tuned policy never ends below it. The UCB1 grid is finer around c = 0.2, where the optimum of every
// setting lies and where the mean falls steeply (n = 100, k = 50: 85.0 at c = 0.2, 71.2 at c = 0.3).
const std::vector<double> kDiscounts = {0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995};
const std::vector<double> kUcbScales = {0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 1.0};
const std::vector<double> kEpsilons = {0.0, 0.01, 0.02, 0.05, 0.1, 0.2};
const std::vector<double> kPosteriorSamples = {1, 2, 3, 5, 10, 20};
constexpr const char* kDiscounted = "discounted";
constexpr const char* kFiniteHorizon = "finite-horizon";
// The finite-horizon Gittins table grows as n^3/6 floats (84 MB at n = 500, 670 MB at n = 1000).
constexpr int32_t kMaxGittinsPulls = 1000;

// A policy's randomness at one pull: Philox words, plus the spare normal of each polar-method pair.
class BaselineRandom {
 public:
  BaselineRandom(uint64_t seed, uint64_t trial, uint32_t step) : rs_(seed, trial, step, Purpose::kBaseline) {}
  uint32_t next_u32() { return rs_.next_u32(); }
  double uniform() { return rs_.uniform(); }  // [0, 1)
  // Standard normal by Marsaglia's polar method; both normals of an accepted pair are used. Like
  // RandomStream::normal, 64 rejections in a row (p < 1e-43) give 0 rather than an unbounded loop.
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    for (int tries = 0; tries < kMaxTries; ++tries) {
      const double u = uniform_signed(rs_.next_u32());
      const double v = uniform_signed(rs_.next_u32());
      const double s = u * u + v * v;
      if (s < 1.0 && s > 0.0) {
        const double scale = std::sqrt(-2.0 * std::log(s) / s);
        spare_ = v * scale;
        has_spare_ = true;
        return u * scale;
      }
    }
    return 0.0;
  }
  // Gamma(α) for α >= 1 by Marsaglia & Tsang (2000), given d = α - 1/3 and c = 1/sqrt(9d). Each try
  // accepts with probability > 0.95, so the cap (returning d, close to the mean α) is never reached.
  double gamma(double d, double c) {
    for (int tries = 0; tries < kMaxTries; ++tries) {
      const double x = normal();
      double v = 1.0 + c * x;
      if (v <= 0.0) continue;
      v = v * v * v;
      const double u = static_cast<double>(rs_.uniform_open0());
      const double x2 = x * x;
      if (u < 1.0 - 0.0331 * x2 * x2) return d * v;  // cheap squeeze, accepts ~98%
      if (std::log(u) < 0.5 * x2 + d * (1.0 - v + std::log(v))) return d * v;
    }
    return d;
  }

 private:
  static constexpr int kMaxTries = 64;
  RandomStream rs_;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

// Index of the largest score; among equal scores one uniformly at random (one Philox word, only on ties).
int32_t argmax_random_ties(const std::vector<double>& score, BaselineRandom& rng) {
  const int32_t k = static_cast<int32_t>(score.size());
  int32_t best = 0;
  uint32_t ties = 1;
  for (int32_t i = 1; i < k; ++i) {
    if (score[i] > score[best]) {
      best = i;
      ties = 1;
    } else if (score[i] == score[best]) {
      ++ties;
    }
  }
  if (ties == 1) return best;
  uint32_t pick = uniform_int(rng.next_u32(), ties);
  for (int32_t i = best; i < k; ++i) {
    if (score[i] == score[best] && pick-- == 0) return i;
  }
  return best;
}

// Beta posterior parameters per arm: a = 1 + successes, b = 1 + failures (Beta(1,1) prior).
struct ArmCounts {
  std::vector<int32_t> a, b;
  void reset(int32_t arms) {
    a.assign(arms, 1);
    b.assign(arms, 1);
  }
  void update(int32_t arm, float reward) { (reward > 0.0f ? a : b)[arm] += 1; }
  double mean(int32_t arm) const { return static_cast<double>(a[arm]) / (a[arm] + b[arm]); }
};

struct RandomPolicy {
  int32_t arms = 0;
  void reset(int32_t k) { arms = k; }
  int32_t choose(int32_t, BaselineRandom& rng) { return static_cast<int32_t>(uniform_int(rng.next_u32(), arms)); }
  void update(int32_t, float) {}
};

// ε-greedy on the posterior mean; ε = 0 is the greedy baseline.
struct EpsGreedyPolicy {
  double epsilon;
  ArmCounts counts;
  std::vector<double> mean;  // [arms]
  void reset(int32_t k) {
    counts.reset(k);
    mean.assign(k, 0.5);
  }
  int32_t choose(int32_t, BaselineRandom& rng) {
    if (epsilon > 0.0 && rng.uniform() < epsilon) {
      return static_cast<int32_t>(uniform_int(rng.next_u32(), static_cast<uint32_t>(mean.size())));
    }
    return argmax_random_ties(mean, rng);
  }
  void update(int32_t arm, float reward) {
    counts.update(arm, reward);
    mean[arm] = counts.mean(arm);
  }
};

// UCB1 (Auer et al. 2002) with pseudo-counts: index μ̂_i + c sqrt(2 ln t / T_i), T_i = a_i + b_i >= 2 and
// t = Σ T_i = 2k + pulls so far, so the log is positive from the first pull on.
struct Ucb1Policy {
  double c;
  ArmCounts counts;
  std::vector<double> mean, inv_sqrt_count, score;  // [arms]
  int64_t total = 0;
  void reset(int32_t k) {
    counts.reset(k);
    mean.assign(k, 0.5);
    inv_sqrt_count.assign(k, 1.0 / std::sqrt(2.0));
    score.assign(k, 0.0);
    total = 2 * int64_t{k};
  }
  int32_t choose(int32_t, BaselineRandom& rng) {
    const double bonus = c * std::sqrt(2.0 * std::log(static_cast<double>(total)));
    for (size_t i = 0; i < score.size(); ++i) score[i] = mean[i] + bonus * inv_sqrt_count[i];
    return argmax_random_ties(score, rng);
  }
  void update(int32_t arm, float reward) {
    counts.update(arm, reward);
    mean[arm] = counts.mean(arm);
    inv_sqrt_count[arm] = 1.0 / std::sqrt(static_cast<double>(counts.a[arm] + counts.b[arm]));
    total += 1;
  }
};

// Discounted Gittins: an arm's index changes only when it is pulled.
struct GittinsPolicy {
  const GittinsTable* table;
  ArmCounts counts;
  std::vector<double> score;  // [arms]
  void reset(int32_t k) {
    counts.reset(k);
    score.assign(k, table->index(1, 1));
  }
  int32_t choose(int32_t, BaselineRandom& rng) { return argmax_random_ties(score, rng); }
  void update(int32_t arm, float reward) {
    counts.update(arm, reward);
    score[arm] = table->index(counts.a[arm], counts.b[arm]);
  }
};

// Finite-horizon Gittins: every arm's index depends on the pulls left, m = n - t (this one included).
struct FiniteHorizonGittinsPolicy {
  const FiniteHorizonGittinsTable* table;
  int32_t pulls;
  ArmCounts counts;
  std::vector<double> score;  // [arms]
  void reset(int32_t k) {
    counts.reset(k);
    score.assign(k, 0.0);
  }
  int32_t choose(int32_t t, BaselineRandom& rng) {
    const int m = pulls - t;
    for (size_t i = 0; i < score.size(); ++i) score[i] = table->index(counts.a[i], counts.b[i], m);
    return argmax_random_ties(score, rng);
  }
  void update(int32_t arm, float reward) { counts.update(arm, reward); }
};

// Thompson sampling (samples = 1) and optimistic TS: each arm scores the largest of `samples` draws from
// its Beta posterior, Beta(a, b) = X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b).
struct ThompsonPolicy {
  int32_t samples;
  ArmCounts counts;
  std::vector<double> score;           // [arms]
  std::vector<double> da, ca, db, cb;  // [arms] Marsaglia-Tsang constants of Gamma(a) and Gamma(b)
  void reset(int32_t k) {
    counts.reset(k);
    score.assign(k, 0.0);
    const double d = 1.0 - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
    da.assign(k, d);
    db.assign(k, d);
    ca.assign(k, c);
    cb.assign(k, c);
  }
  int32_t choose(int32_t, BaselineRandom& rng) {
    for (size_t i = 0; i < score.size(); ++i) {
      double best = 0.0;
      for (int32_t s = 0; s < samples; ++s) {
        const double x = rng.gamma(da[i], ca[i]);
        const double y = rng.gamma(db[i], cb[i]);
        best = std::max(best, x / (x + y));
      }
      score[i] = best;
    }
    return argmax_random_ties(score, rng);
  }
  void update(int32_t arm, float reward) {
    counts.update(arm, reward);
    da[arm] = counts.a[arm] - 1.0 / 3.0;
    db[arm] = counts.b[arm] - 1.0 / 3.0;
    ca[arm] = 1.0 / std::sqrt(9.0 * da[arm]);
    cb[arm] = 1.0 / std::sqrt(9.0 * db[arm]);
  }
};

// Plays trials first_trial .. first_trial + instances - 1; returns each one's total reward: [instances].
// make() builds one policy per thread, reset at every trial, so a pull allocates nothing.
template <class MakePolicy>
std::vector<double> play_trials(const BanditParams& params, uint64_t seed, uint64_t first_trial, int64_t instances,
                                const MakePolicy& make) {
  std::vector<double> totals(instances);
#pragma omp parallel
  {
    auto policy = make();
    std::vector<float> task(params.arms);  // [arms] arm means
#pragma omp for schedule(dynamic)
    for (int64_t i = 0; i < instances; ++i) {
      const uint64_t trial = first_trial + static_cast<uint64_t>(i);
      Bandit::sample_task(params, seed, trial, task.data());
      Bandit::State state;
      Bandit::reset(params, task.data(), state);
      policy.reset(params.arms);
      double total = 0.0;
      for (int32_t t = 0; t < params.episodes; ++t) {
        BaselineRandom rng(seed, trial, static_cast<uint32_t>(t));
        const int32_t arm = policy.choose(t, rng);
        const StepOut out = Bandit::step(params, task.data(), state, arm, seed, trial);
        policy.update(arm, out.reward);
        total += out.reward;
      }
      totals[i] = total;
    }
  }
  return totals;
}

// Gittins tables for the most recent pull count, shared by the grid points and by later calls with the
// same n in one process (k = 5, 10, 50 of a table row): at n = 500 the ten tables take ~3.5 s of CPU.
// Tables of an older pull count are dropped to bound memory (the finite-horizon one is 84 MB at n = 500).
class GittinsCache {
 public:
  std::shared_ptr<const GittinsTable> discounted(int pulls, double gamma) {
    std::lock_guard<std::mutex> lock(mutex_);
    keep_only(pulls);
    auto& slot = discounted_[gamma];
    if (!slot) slot = std::make_shared<const GittinsTable>(pulls, gamma);
    return slot;
  }
  std::shared_ptr<const FiniteHorizonGittinsTable> finite_horizon(int pulls) {
    std::lock_guard<std::mutex> lock(mutex_);
    keep_only(pulls);
    if (!finite_horizon_) finite_horizon_ = std::make_shared<const FiniteHorizonGittinsTable>(pulls);
    return finite_horizon_;
  }

 private:
  void keep_only(int pulls) {
    if (pulls == pulls_) return;
    pulls_ = pulls;
    discounted_.clear();
    finite_horizon_.reset();
  }
  std::mutex mutex_;
  int pulls_ = -1;
  std::map<double, std::shared_ptr<const GittinsTable>> discounted_;
  std::shared_ptr<const FiniteHorizonGittinsTable> finite_horizon_;
};

GittinsCache& gittins_cache() {
  static GittinsCache cache;
  return cache;
}

std::vector<GridPoint> grid_of(const std::vector<double>& values, const std::string& note = "") {
  std::vector<GridPoint> grid;
  for (double v : values) grid.push_back(GridPoint{v, note, 0.0});
  return grid;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

const std::vector<std::string>& bandit_policies() {
  static const std::vector<std::string> names = {"random", "gittins", "ts", "ots", "ucb1", "eps-greedy", "greedy"};
  return names;
}

BaselineResult run_bandit_baseline(const BanditParams& params, const std::string& policy, const BaselineOptions& opt) {
  const auto& names = bandit_policies();
  RL2_REQUIRE(std::find(names.begin(), names.end(), policy) != names.end(),
              "unknown bandit baseline '" + policy + "' (expected one of: " + joined(names) + ")");
  RL2_REQUIRE(params.arms >= 1, "a bandit needs at least 1 arm (got " + std::to_string(params.arms) + ")");
  RL2_REQUIRE(params.episodes >= 1,
              "a bandit trial needs at least 1 pull (got " + std::to_string(params.episodes) + ")");
  const uint64_t seed = opt.seed;
  const int32_t pulls = params.episodes;

  if (policy == "random") {
    return tune_and_evaluate(policy, "", grid_of({0.0}), opt, [&](const GridPoint&, uint64_t first, int64_t count) {
      return play_trials(params, seed, first, count, [] { return RandomPolicy{}; });
    });
  }
  if (policy == "greedy" || policy == "eps-greedy") {
    const bool tuned = policy == "eps-greedy";
    return tune_and_evaluate(
        policy, tuned ? "epsilon" : "", grid_of(tuned ? kEpsilons : std::vector<double>{0.0}), opt,
        [&](const GridPoint& point, uint64_t first, int64_t count) {
          return play_trials(params, seed, first, count, [&] { return EpsGreedyPolicy{point.value, {}, {}}; });
        });
  }
  if (policy == "ucb1") {
    return tune_and_evaluate(
        policy, "c", grid_of(kUcbScales), opt, [&](const GridPoint& point, uint64_t first, int64_t count) {
          return play_trials(params, seed, first, count, [&] { return Ucb1Policy{point.value, {}, {}, {}, {}}; });
        });
  }
  if (policy == "ts" || policy == "ots") {
    const bool tuned = policy == "ots";
    return tune_and_evaluate(policy, tuned ? "samples" : "",
                             grid_of(tuned ? kPosteriorSamples : std::vector<double>{1.0}), opt,
                             [&](const GridPoint& point, uint64_t first, int64_t count) {
                               const int32_t samples = static_cast<int32_t>(point.value);
                               return play_trials(params, seed, first, count,
                                                  [&] { return ThompsonPolicy{samples, {}, {}, {}, {}, {}, {}}; });
                             });
  }
  // Gittins: the discounted variant at every discount, and the finite-horizon variant (γ = 1, listed as 1).
  RL2_REQUIRE(pulls <= kMaxGittinsPulls, "the Gittins baseline supports at most " + std::to_string(kMaxGittinsPulls) +
                                             " pulls (got " + std::to_string(pulls) + ")");
  std::vector<GridPoint> grid = grid_of(kDiscounts, kDiscounted);
  grid.push_back(GridPoint{1.0, kFiniteHorizon, 0.0});
  return tune_and_evaluate(
      policy, "discount", std::move(grid), opt, [&](const GridPoint& point, uint64_t first, int64_t count) {
        if (point.note == kFiniteHorizon) {
          const auto table = gittins_cache().finite_horizon(pulls);
          return play_trials(params, seed, first, count, [&] {
            return FiniteHorizonGittinsPolicy{table.get(), pulls, {}, {}};
          });
        }
        const auto table = gittins_cache().discounted(pulls, point.value);
        return play_trials(params, seed, first, count, [&] { return GittinsPolicy{table.get(), {}, {}}; });
      });
}

}  // namespace rl2
