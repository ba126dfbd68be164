// `rl2-cuda baselines`: the classical policies of Tables 1 and 2 over the evaluation instances, with
// their tuned hyperparameter, the paper's number beside ours, and the paper's significance marking.
#include <cstdio>
#include <iostream>

#include "commands/common.hpp"
#include "rl2/baselines/baselines.hpp"
#include "rl2/core/check.hpp"
#include "rl2/core/comm.hpp"
#include "rl2/io/paper.hpp"
#include "rl2/stats/stats.hpp"
#include "rl2/train/run.hpp"

namespace rl2 {
namespace {

nlohmann::json result_json(const EnvConfig& cfg, const BaselineResult& r, const BaselineOptions& opt, uint64_t seed) {
  nlohmann::json j = env_to_json(cfg);
  j["policy"] = r.policy;
  j["instances"] = opt.instances;
  j["tune_instances"] = opt.tune_instances;
  j["seed"] = seed;
  j["mean"] = r.mean;
  j["stderr"] = r.stderr_;
  j["seconds"] = r.seconds;
  if (!r.hyper_name.empty()) {
    j["hyperparameter"] = {{"name", r.hyper_name}, {"value", r.hyper}, {"variant", r.hyper_note}};
    nlohmann::json grid = nlohmann::json::array();
    for (const GridPoint& g : r.grid) grid.push_back({{"value", g.value}, {"variant", g.note}, {"tune_mean", g.tune_mean}});
    j["grid"] = grid;
  } else {
    j["hyperparameter"] = nullptr;
  }
  const auto paper = paper_value(cfg, r.policy);
  j["paper"] = paper ? nlohmann::json(*paper) : nlohmann::json(nullptr);
  return j;
}

std::string hyper_text(const BaselineResult& r) {
  if (r.hyper_name.empty()) return "-";
  char buf[96];
  std::snprintf(buf, sizeof buf, "%s=%g%s%s%s", r.hyper_name.c_str(), r.hyper, r.hyper_note.empty() ? "" : " (",
                r.hyper_note.c_str(), r.hyper_note.empty() ? "" : ")");
  return buf;
}

}  // namespace

int run_baselines(const GlobalFlags& g, const BaselinesFlags& f, const std::vector<double>* rl2_totals) {
  apply_threads(g);
  const EnvConfig cfg = f.env.to_config();
  RL2_REQUIRE(cfg.kind != EnvKind::kMaze,
              "no classical baselines for the maze; its Table 3 compares RL² episodes with each other (rl2-cuda eval)");
  RL2_REQUIRE(f.instances >= 1, "--instances must be at least 1 (got " + std::to_string(f.instances) + ")");
  RL2_REQUIRE(f.tune_instances >= -1, "--tune-instances must be 0 or more (got " + std::to_string(f.tune_instances) + ")");
  BaselineOptions opt;
  opt.seed = g.seed;
  Comm& comm = world();  // over ranks (mpirun) each plays its share of every set of instances
  opt.comm = &comm;
  opt.instances = f.instances;
  opt.tune_instances = f.tune_instances < 0 ? f.instances : f.tune_instances;
  require_host_memory(static_cast<double>(std::max(opt.instances, opt.tune_instances)),
                      8.0 + 4.0 * static_cast<double>(cfg.task_size()), "--instances " + std::to_string(f.instances));
  if (g.device == "cuda") resolve_device("cuda");  // an explicit cuda request still needs a GPU
  const std::vector<std::string>& all = cfg.kind == EnvKind::kBandit ? bandit_policies() : mdp_policies();
  std::vector<std::string> names;
  if (f.policy == "all") {
    names = all;
  } else {
    std::string valid;
    for (const auto& n : all) valid += (valid.empty() ? "" : ", ") + n;
    RL2_REQUIRE(std::find(all.begin(), all.end(), f.policy) != all.end(),
                "unknown --policy '" + f.policy + "' for --env " + cfg.name() + " (expected all, " + valid + ")");
    names = {f.policy};
  }

  std::vector<BaselineResult> results;
  for (size_t i = 0; i < names.size(); ++i) {
    results.push_back(cfg.kind == EnvKind::kBandit ? run_bandit_baseline(cfg.bandit, names[i], opt)
                                                   : run_mdp_baseline(cfg.mdp, names[i], opt));
    const BaselineResult& r = results.back();
    if (comm.rank() == 0)
      std::fprintf(stderr, "[%zu/%zu] %-10s %9.3f ± %.3f  %s  (%.1f s)\n", i + 1, names.size(), r.policy.c_str(),
                   r.mean, r.stderr_, hyper_text(r).c_str(), r.seconds);
  }
  if (rl2_totals) {
    BaselineResult r;
    r.policy = "rl2";
    r.totals = *rl2_totals;
    const MeanStderr ms = mean_stderr(r.totals);
    r.mean = ms.mean;
    r.stderr_ = ms.stderr_;
    results.insert(results.begin(), r);
  }
  if (comm.rank() != 0) return 0;  // rank 0 reports
  std::vector<std::vector<double>> samples;
  for (const auto& r : results) samples.push_back(r.totals);
  const std::vector<bool> marks = results.size() > 1 && opt.instances >= 2 ? mark_not_worse_than_best(samples)
                                                                           : std::vector<bool>(results.size(), false);

  if (g.json()) {
    // The classical policies run on the CPU whatever --device says.
    if (results.size() == 1) {
      nlohmann::json j = result_json(cfg, results[0], opt, g.seed);
      j["provenance"] = provenance(Device::kCpu);
      std::cout << j.dump() << "\n";
    } else {
      nlohmann::json out = env_to_json(cfg);
      out["policy"] = "all";
      out["instances"] = opt.instances;
      out["tune_instances"] = opt.tune_instances;
      out["seed"] = g.seed;
      out["results"] = nlohmann::json::array();
      for (size_t i = 0; i < results.size(); ++i) {
        nlohmann::json j = result_json(cfg, results[i], opt, g.seed);
        j["not_worse_than_best"] = static_cast<bool>(marks[i]);
        out["results"].push_back(j);
      }
      out["provenance"] = provenance(Device::kCpu);
      std::cout << out.dump() << "\n";
    }
    return 0;
  }
  std::printf("%s, %lld instances, seed %llu (hyperparameters tuned on %lld separate instances)\n",
              cfg.describe().c_str(), static_cast<long long>(opt.instances), static_cast<unsigned long long>(g.seed),
              static_cast<long long>(opt.tune_instances));
  std::printf("  %-12s %10s %8s   %-34s %8s\n", "policy", "mean", "stderr", "tuned hyperparameter", "paper");
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    const auto paper = paper_value(cfg, r.policy);
    char paper_s[32] = "-";
    if (paper) std::snprintf(paper_s, sizeof paper_s, "%.1f", *paper);
    std::printf("%s %-12s %10.3f %8.3f   %-34s %8s\n", marks[i] ? "*" : " ", r.policy.c_str(), r.mean, r.stderr_,
                hyper_text(r).c_str(), paper_s);
  }
  if (results.size() > 1)
    std::printf("* the best mean, and every policy not significantly worse (one-sided Welch t-test, p = 0.05)\n");
  return 0;
}

}  // namespace rl2
