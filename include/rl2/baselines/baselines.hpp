// Classical baselines of DESIGN.md section 5, batched over instances on the CPU (OpenMP over trials).
//
// Each baseline plays the same tasks, rewards and transitions as the RL² evaluation: instance i is trial
// id kEvalStream + i of the seed (rng.hpp), stepped through the same RL2_HD Env::step. Its one
// hyperparameter is tuned by grid search on a disjoint set of tuning instances (kTuneStream + i), then
// the chosen value is evaluated on the evaluation instances, so the reported mean is not fitted to them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rl2/env/bandit.hpp"
#include "rl2/env/tabular_mdp.hpp"

namespace rl2 {

class Comm;

struct BaselineOptions {
  uint64_t seed = 1;
  int64_t instances = 1000;       // evaluation instances
  int64_t tune_instances = 1000;  // tuning instances for the grid search (0 = tune on nothing: first grid value)
  // Ranks (core/comm.hpp) share every set of instances, contiguous shares in rank order, and gather the
  // totals: instance i's total is the same whoever plays it. nullptr: one process.
  Comm* comm = nullptr;
};

struct GridPoint {
  double value;      // hyperparameter value
  std::string note;  // e.g. "discounted" / "finite-horizon" for Gittins; empty otherwise
  double tune_mean;  // mean total reward on the tuning instances
};

struct BaselineResult {
  std::string policy;           // "gittins", "ucb1", ...
  std::string hyper_name;       // "discount", "c", "epsilon", "samples", "beta", "scale"; empty if none
  double hyper = 0.0;           // the chosen value (meaningless when hyper_name is empty)
  std::string hyper_note;       // variant chosen, e.g. "finite-horizon"; may be empty
  std::vector<GridPoint> grid;  // every value tried, in grid order
  std::vector<double> totals;   // [instances] total reward of each evaluation trial
  double mean = 0.0;
  double stderr_ = 0.0;         // standard error of the mean over instances
  double seconds = 0.0;         // wall time, tuning included
};

// Policy names in the order of the paper's table columns.
const std::vector<std::string>& bandit_policies();  // random gittins ts ots ucb1 eps-greedy greedy
const std::vector<std::string>& mdp_policies();     // random psrl opsrl ucrl2 beb eps-greedy greedy

// Throws InputError for an unknown policy name.
BaselineResult run_bandit_baseline(const BanditParams& params, const std::string& policy,
                                   const BaselineOptions& opt);
BaselineResult run_mdp_baseline(const MdpParams& params, const std::string& policy, const BaselineOptions& opt);

}  // namespace rl2
