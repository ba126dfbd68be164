// Classical baselines for random tabular MDPs (DESIGN.md section 5, paper Table 2): Random, PSRL,
// optimistic PSRL, UCRL2, BEB, epsilon-greedy and Greedy, all given the true prior of section 2.
//
// Parallel layout: one OpenMP thread per trial (schedule(dynamic)), each thread owning a preallocated
// Workspace, so the step loop never allocates. Every reward and transition comes from TabularMdp::step on
// the task TabularMdp::sample_task draws for the trial id, the same ones the RL² evaluation sees. A
// baseline's own randomness at global step t of a trial uses Purpose::kBaseline with counter step t:
// block 0 for the action (tie-break, epsilon coin, random action), blocks 1.. for posterior samples.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "rl2/baselines/baselines.hpp"
#include "rl2/baselines/mdp_planning.hpp"
#include "rl2/baselines/tuning.hpp"
#include "rl2/core/check.hpp"
#include "rl2/core/rng.hpp"

namespace rl2 {
namespace {

enum class MdpKind { kRandom, kPsrl, kOpsrl, kUcrl2, kBeb, kEpsGreedy, kGreedy };

struct KindInfo {
  const char* name;
  MdpKind kind;
};
constexpr KindInfo kKinds[] = {{"random", MdpKind::kRandom}, {"psrl", MdpKind::kPsrl},
                               {"opsrl", MdpKind::kOpsrl},   {"ucrl2", MdpKind::kUcrl2},
                               {"beb", MdpKind::kBeb},       {"eps-greedy", MdpKind::kEpsGreedy},
                               {"greedy", MdpKind::kGreedy}};

// Development knobs (temporary).
int knob(const char* name, int def) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : def;
}

struct Workspace {
  Workspace(const MdpParams& mp, int32_t max_samples)
      : task(static_cast<size_t>(TabularMdp::task_size(mp))),
        post(mp.states, mp.actions),
        planner(mp.states, mp.actions, mp.horizon),
        r(static_cast<size_t>(max_samples) * mp.states * mp.actions),
        p(static_cast<size_t>(max_samples) * mp.states * mp.actions * mp.states),
        bonus(static_cast<size_t>(mp.states) * mp.actions),
        radius(static_cast<size_t>(mp.states) * mp.actions) {}
  std::vector<float> task;
  MdpPosterior post;
  FiniteHorizonPlanner planner;
  std::vector<double> r;       // [samples, S*A] model rewards
  std::vector<double> p;       // [samples, S*A, S] model transitions
  std::vector<double> bonus;   // [S*A] UCRL2 reward slack
  std::vector<double> radius;  // [S*A] UCRL2 L1 transition slack
};

// argmax of q[0..n), exact ties broken uniformly with the word `bits`.
int32_t argmax_random_ties(const double* q, int32_t n, uint32_t bits) {
  double best = q[0];
  int32_t ties = 1;
  for (int32_t a = 1; a < n; ++a) {
    if (q[a] > best) {
      best = q[a];
      ties = 1;
    } else if (q[a] == best) {
      ++ties;
    }
  }
  int32_t pick = static_cast<int32_t>(uniform_int(bits, static_cast<uint32_t>(ties)));
  for (int32_t a = 0; a < n; ++a) {
    if (q[a] == best && pick-- == 0) return a;
  }
  return 0;
}

struct PolicyConfig {
  MdpKind kind;
  double hyper;
  bool replan_each_step;
};

void plan(const MdpParams& mp, const PolicyConfig& cfg, int32_t steps, uint32_t t, uint64_t seed, uint64_t trial,
          Workspace& ws) {
  const int32_t sa_count = mp.states * mp.actions;
  switch (cfg.kind) {
    case MdpKind::kRandom:
      return;
    case MdpKind::kPsrl:
    case MdpKind::kOpsrl: {
      RandomStream rs(seed, trial, t, Purpose::kBaseline);
      rs.block = 1;
      const int32_t samples = cfg.kind == MdpKind::kPsrl ? 1 : static_cast<int32_t>(cfg.hyper);
      for (int32_t m = 0; m < samples; ++m) {
        ws.post.sample_model(rs, ws.r.data() + static_cast<size_t>(m) * sa_count,
                             ws.p.data() + static_cast<size_t>(m) * sa_count * mp.states);
      }
      if (samples == 1 || knob("RL2_OPSRL_QMAX", 0) == 0) {
        ws.planner.solve_max_over_samples(ws.r.data(), ws.p.data(), samples, steps);
      } else {
        // dev: act on max over samples of each sample's own Q.
        std::vector<double> qmax(static_cast<size_t>(steps) * sa_count, -HUGE_VAL);
        for (int32_t m = 0; m < samples; ++m) {
          ws.planner.solve(ws.r.data() + static_cast<size_t>(m) * sa_count,
                           ws.p.data() + static_cast<size_t>(m) * sa_count * mp.states, steps);
          for (int32_t k = 0; k < steps; ++k)
            for (int32_t i = 0; i < sa_count; ++i)
              qmax[static_cast<size_t>(k) * sa_count + i] = std::max(qmax[static_cast<size_t>(k) * sa_count + i], ws.planner.q(k)[i]);
        }
        ws.planner.solve_max_over_samples(ws.r.data(), ws.p.data(), 1, steps);
        for (int32_t k = 0; k < steps; ++k)
          for (int32_t i = 0; i < sa_count; ++i) const_cast<double*>(ws.planner.q(k))[i] = qmax[static_cast<size_t>(k) * sa_count + i];
      }
      return;
    }
    case MdpKind::kUcrl2: {
      ws.post.mean_model(ws.r.data(), ws.p.data());
      const int variant = knob("RL2_UCRL_VAR", 0);
      const double tt = std::max(2.0, static_cast<double>(t) + 1.0);
      constexpr double kDelta = 0.05;
      const double log_r = std::log(2.0 * sa_count * tt / kDelta);
      const double log_p = std::log(2.0 * mp.actions * tt / kDelta);
      for (int32_t sa = 0; sa < sa_count; ++sa) {
        const double n_r = std::max(1, ws.post.visits[sa]);
        const double n_p = std::max(1, ws.post.next_total[sa]);
        if (variant == 1 && ws.post.visits[sa] > 0) ws.r[sa] = ws.post.reward_sum[sa] / ws.post.visits[sa];
        if (variant == 1 && ws.post.next_total[sa] > 0) {
          for (int32_t j = 0; j < mp.states; ++j)
            ws.p[static_cast<size_t>(sa) * mp.states + j] =
                static_cast<double>(ws.post.next_counts[static_cast<size_t>(sa) * mp.states + j]) / ws.post.next_total[sa];
        }
        ws.bonus[sa] = cfg.hyper * std::sqrt(3.5 * log_r / n_r);
        ws.radius[sa] = cfg.hyper * std::sqrt(14.0 * mp.states * log_p / n_p);
      }
      ws.planner.solve_extended(ws.r.data(), ws.bonus.data(), ws.p.data(), ws.radius.data(), steps);
      return;
    }
    case MdpKind::kBeb:
      ws.post.mean_model(ws.r.data(), ws.p.data());
      for (int32_t sa = 0; sa < sa_count; ++sa) ws.r[sa] += cfg.hyper / (1.0 + ws.post.visits[sa]);
      ws.planner.solve(ws.r.data(), ws.p.data(), steps);
      return;
    case MdpKind::kEpsGreedy:
    case MdpKind::kGreedy:
      ws.post.mean_model(ws.r.data(), ws.p.data());
      ws.planner.solve(ws.r.data(), ws.p.data(), steps);
      return;
  }
}

// One trial: n episodes of the task of trial id `trial`; returns the total reward.
double play_trial(const MdpParams& mp, const PolicyConfig& cfg, uint64_t seed, uint64_t trial, Workspace& ws) {
  TabularMdp::sample_task(mp, seed, trial, ws.task.data());
  ws.post.clear();
  TabularMdp::State st;
  TabularMdp::reset(mp, st);
  const double epsilon = cfg.kind == MdpKind::kEpsGreedy ? cfg.hyper : 0.0;
  double total = 0.0;
  for (int32_t e = 0; e < mp.episodes; ++e) {
    for (int32_t h = 0; h < mp.horizon; ++h) {
      const uint32_t t = static_cast<uint32_t>(st.t);
      int32_t k = h;  // index of the current step in the plan
      if (h == 0 || cfg.replan_each_step) {
        plan(mp, cfg, mp.horizon - h, t, seed, trial, ws);
        k = 0;
      }
      const Bits4 bits = philox_bits(seed, trial, t, Purpose::kBaseline, 0);
      int32_t a;
      if (cfg.kind == MdpKind::kRandom || (epsilon > 0.0 && u01(bits.v[1]) < epsilon)) {
        a = static_cast<int32_t>(uniform_int(bits.v[2], static_cast<uint32_t>(mp.actions)));
      } else {
        a = argmax_random_ties(ws.planner.q(k) + static_cast<size_t>(st.s) * mp.actions, mp.actions, bits.v[0]);
      }
      const int32_t s = st.s;
      const StepOut out = TabularMdp::step(mp, ws.task.data(), st, a, seed, trial);
      total += out.reward;
      ws.post.observe_reward(s, a, out.reward);
      // At an episode's last step the env resets to state 0, so the drawn next state is never seen.
      if (!out.done) ws.post.observe_transition(s, a, st.s);
    }
  }
  return total;
}

MdpKind kind_of(const std::string& policy) {
  std::string valid;
  for (const KindInfo& k : kKinds) {
    if (policy == k.name) return k.kind;
    valid += (valid.empty() ? "" : ", ") + std::string(k.name);
  }
  RL2_REQUIRE(false, "unknown MDP baseline policy '" + policy + "' (valid: " + valid + ")");
  return MdpKind::kRandom;
}

std::vector<GridPoint> grid_of(const std::vector<double>& values) {
  std::vector<GridPoint> g;
  for (double v : values) g.push_back(GridPoint{v, "", 0.0});
  return g;
}

std::vector<double> env_grid(const char* name, std::vector<double> def) {
  const char* v = std::getenv(name);
  if (!v) return def;
  std::vector<double> out;
  std::string s(v);
  size_t pos = 0;
  while (pos < s.size()) {
    size_t c = s.find(',', pos);
    if (c == std::string::npos) c = s.size();
    out.push_back(std::atof(s.substr(pos, c - pos).c_str()));
    pos = c + 1;
  }
  return out;
}

}  // namespace

const std::vector<std::string>& mdp_policies() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const KindInfo& k : kKinds) n.emplace_back(k.name);
    return n;
  }();
  return names;
}

BaselineResult run_mdp_baseline(const MdpParams& params, const std::string& policy, const BaselineOptions& opt) {
  const MdpKind kind = kind_of(policy);
  RL2_REQUIRE(params.states >= 1 && params.actions >= 1 && params.horizon >= 1 && params.episodes >= 1,
              "MDP baselines need at least one state, action, step and episode");
  std::string hyper_name;
  std::vector<double> values{0.0};
  switch (kind) {
    case MdpKind::kOpsrl:
      hyper_name = "samples";
      values = env_grid("RL2_GRID_OPSRL", {2, 3, 5, 8});
      break;
    case MdpKind::kUcrl2:
      hyper_name = "scale";
      values = env_grid("RL2_GRID_UCRL2", {0.01, 0.03, 0.1, 0.3, 1.0});
      break;
    case MdpKind::kBeb:
      hyper_name = "beta";
      values = env_grid("RL2_GRID_BEB", {0.3, 1, 2, 4, 8});
      break;
    case MdpKind::kEpsGreedy:
      hyper_name = "epsilon";
      values = env_grid("RL2_GRID_EPS", {0.01, 0.02, 0.05, 0.1, 0.2});
      break;
    default:
      break;
  }
  int32_t max_samples = 1;
  for (double v : values) max_samples = std::max(max_samples, static_cast<int32_t>(v));
  const bool replan = knob("RL2_REPLAN", 0) != 0 && kind != MdpKind::kPsrl && kind != MdpKind::kOpsrl;
  const PlayFn play = [&](const GridPoint& point, uint64_t first_trial, int64_t instances) {
    const PolicyConfig cfg{kind, point.value, replan};
    std::vector<double> totals(static_cast<size_t>(instances));
#pragma omp parallel
    {
      Workspace ws(params, max_samples);
#pragma omp for schedule(dynamic)
      for (int64_t i = 0; i < instances; ++i) {
        totals[static_cast<size_t>(i)] = play_trial(params, cfg, opt.seed, first_trial + static_cast<uint64_t>(i), ws);
      }
    }
    return totals;
  };
  return tune_and_evaluate(policy, hyper_name, grid_of(values), opt, play);
}

}  // namespace rl2
