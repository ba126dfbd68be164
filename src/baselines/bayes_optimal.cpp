// Bayes-optimal value of the Bernoulli bandit by memoised DP over exchangeable posterior counts
// (equation in bayes_optimal.hpp). Single-threaded; the state count, not the arithmetic, is the cost.
#include "rl2/baselines/bayes_optimal.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "rl2/core/check.hpp"

namespace rl2 {
namespace {

constexpr int kMaxArmsTimesPulls = 100;

struct Solver {
  int arms;
  int pulls;
  // Key: the counts of the arms pulled so far as (successes, failures) byte pairs, sorted; arms never
  // pulled are all alike and implied by the length.
  std::unordered_map<std::string, double> memo;

  double value(const std::string& key, int used) {
    if (used == pulls) return 0.0;
    if (auto it = memo.find(key); it != memo.end()) return it->second;
    const int pulled = static_cast<int>(key.size() / 2);
    double best = 0.0;
    // Each distinct counts pair once (equal pairs are equal choices), plus one unpulled arm if any remain.
    for (int i = 0; i <= pulled; ++i) {
      if (i == pulled && pulled == arms) break;
      if (i < pulled && i > 0 && key.compare(2 * i, 2, key, 2 * (i - 1), 2) == 0) continue;
      const int s = i < pulled ? static_cast<unsigned char>(key[2 * i]) : 0;
      const int f = i < pulled ? static_cast<unsigned char>(key[2 * i + 1]) : 0;
      const double p = static_cast<double>(s + 1) / (s + f + 2);
      const double win = value(with_counts(key, i, s + 1, f), used + 1);
      const double lose = value(with_counts(key, i, s, f + 1), used + 1);
      best = std::max(best, p * (1.0 + win) + (1.0 - p) * lose);
    }
    memo.emplace(key, best);
    return best;
  }

  // The key after arm slot i (slot == size: a fresh arm) takes counts (s, f), re-sorted.
  static std::string with_counts(const std::string& key, int i, int s, int f) {
    std::vector<std::pair<unsigned char, unsigned char>> arms_counts;
    for (size_t j = 0; j < key.size(); j += 2) {
      arms_counts.emplace_back(static_cast<unsigned char>(key[j]), static_cast<unsigned char>(key[j + 1]));
    }
    const auto counts = std::make_pair(static_cast<unsigned char>(s), static_cast<unsigned char>(f));
    if (i == static_cast<int>(arms_counts.size())) {
      arms_counts.push_back(counts);
    } else {
      arms_counts[i] = counts;
    }
    std::sort(arms_counts.begin(), arms_counts.end());
    std::string out;
    out.reserve(arms_counts.size() * 2);
    for (const auto& [cs, cf] : arms_counts) {
      out.push_back(static_cast<char>(cs));
      out.push_back(static_cast<char>(cf));
    }
    return out;
  }
};

}  // namespace

namespace detail {
double bayes_optimal_bandit_total_all_arms(int arms, int pulls) {
  Solver solver{arms, pulls, {}};
  return solver.value(std::string(), 0);
}
}  // namespace detail

// Arms beyond the number of pulls change nothing: before each pull at most pulls - 1 arms have been
// tried, so with arms >= pulls a fresh arm is always there, and fresh arms are interchangeable. So the
// value for arms > pulls is the value for arms = pulls (k = 50, n = 10 is the k = 10 case).
double bayes_optimal_bandit_total(int arms, int pulls) {
  RL2_REQUIRE(arms >= 1 && pulls >= 0, "the Bayes-optimal bandit value needs arms >= 1 and pulls >= 0");
  arms = std::min(arms, std::max(pulls, 1));
  RL2_REQUIRE(int64_t{arms} * pulls <= kMaxArmsTimesPulls,
              "the exact Bayes-optimal bandit value is only computed for arms * pulls <= " +
                  std::to_string(kMaxArmsTimesPulls) + " (got " + std::to_string(arms) + " * " + std::to_string(pulls) +
                  ")");
  return detail::bayes_optimal_bandit_total_all_arms(arms, pulls);
}

}  // namespace rl2
