// `rl2-cuda reproduce`: the paper's RL² cells (Tables 1-3), each trained with the recipe recorded for it
// (docs/training.md, "Recipes"), evaluated on held-out instances and set beside the paper's RL², our
// classical baselines on the same instances (with the paper's significance rule) and, where it can be
// computed, the exact Bayes-optimal value. Resumable: OUT/<cell>/seed<S> is an ordinary run directory,
// continued where it stopped; a seed whose run is finished is not trained again, and evaluations and
// baselines are kept beside the runs (heldout.json, baselines.json) and reused while they still match.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands/common.hpp"
#include "rl2/baselines/baselines.hpp"
#include "rl2/baselines/bayes_optimal.hpp"
#include "rl2/core/check.hpp"
#include "rl2/core/rng.hpp"
#include "rl2/io/paper.hpp"
#include "rl2/io/safetensors.hpp"
#include "rl2/stats/stats.hpp"

namespace fs = std::filesystem;

namespace rl2 {
namespace {

// One cell of the paper's tables and how we train it. The recipes are `train` flags (the env's, then
// the training's); the CPU recipe is what a 2-core machine runs, one cell per core (docs/training.md).
struct Cell {
  const char* name;
  int table;
  const char* env;         // env flags
  const char* cpu;         // training flags on the CPU
  const char* gpu;         // training flags on a GPU (the paper's batch of 250 000 steps)
  double minutes;          // default training budget per seed, minutes of wall time
  int seeds;               // default number of training seeds
  int64_t instances;       // held-out instances
  int64_t eval_every;      // held-out evaluation every this many iterations (metrics.jsonl)
  bool cpu_reaches;        // false: the CPU budget is known not to reach the paper's regime ("needs a GPU")
};

constexpr const char* kBanditGpu = "--steps-per-iter 250000 --iterations 1000";
// n = 100 and 500: TRPO with the n = 10 settings collapsed its entropy and stalled at 67 for n100k5 (Gittins
// 78.2); PPO with an entropy bonus, GAE lambda 0.95 and a GRU-128 (5x cheaper per step) keeps learning.
constexpr const char* kBanditLongCpu =
    "--hidden 128 --steps-per-iter 20000 --iterations 5000 --algo ppo --entropy-coef 0.01 --gae-lambda 0.95 "
    "--ppo-epochs 4 --ppo-minibatches 8 --ppo-lr 0.001";
constexpr const char* kMdpCpu =
    "--hidden 64 --steps-per-iter 20000 --iterations 11000 --algo ppo --entropy-coef 0.03 --ppo-epochs 4 "
    "--ppo-minibatches 8 --ppo-lr 0.002";
constexpr const char* kMdpGpu =
    "--steps-per-iter 250000 --iterations 1000 --algo ppo --entropy-coef 0.03 --ppo-epochs 4 --ppo-minibatches 8 "
    "--ppo-lr 0.002";

const std::vector<Cell>& all_cells() {
  static const std::vector<Cell> cells = {
      {"n10k5", 1, "--env bandit --arms 5 --episodes 10", "", kBanditGpu, 10, 3, 4000, 10, true},
      {"n10k10", 1, "--env bandit --arms 10 --episodes 10", "--iterations 300", kBanditGpu, 10, 3, 4000, 10, true},
      {"n10k50", 1, "--env bandit --arms 50 --episodes 10", "--iterations 800", kBanditGpu, 20, 3, 4000, 10, true},
      {"n100k5", 1, "--env bandit --arms 5 --episodes 100", kBanditLongCpu, kBanditGpu, 60,
       1, 1000, 25, true},
      {"n100k10", 1, "--env bandit --arms 10 --episodes 100", kBanditLongCpu, kBanditGpu, 60,
       1, 1000, 25, true},
      {"n100k50", 1, "--env bandit --arms 50 --episodes 100", kBanditLongCpu, kBanditGpu, 60,
       1, 1000, 25, false},
      {"n500k5", 1, "--env bandit --arms 5 --episodes 500", kBanditLongCpu, kBanditGpu, 60, 1,
       1000, 25, false},
      {"n500k10", 1, "--env bandit --arms 10 --episodes 500", kBanditLongCpu, kBanditGpu, 60,
       1, 1000, 25, false},
      {"n500k50", 1, "--env bandit --arms 50 --episodes 500", kBanditLongCpu, kBanditGpu, 60,
       1, 1000, 25, false},
      {"mdp-n10", 2, "--env mdp --episodes 10", kMdpCpu, kMdpGpu, 60, 1, 1000, 100, true},
      {"mdp-n25", 2, "--env mdp --episodes 25", kMdpCpu, kMdpGpu, 60, 1, 1000, 100, true},
      {"mdp-n50", 2, "--env mdp --episodes 50", kMdpCpu, kMdpGpu, 60, 1, 1000, 100, false},
      {"mdp-n75", 2, "--env mdp --episodes 75", kMdpCpu, kMdpGpu, 60, 1, 1000, 100, false},
      {"mdp-n100", 2, "--env mdp --episodes 100", kMdpCpu, kMdpGpu, 60, 1, 1000, 100, false},
      {"maze5", 3, "--env maze --mazes 1000", "",
       "--hidden 256 --steps-per-iter 250000 --iterations 400", 60, 1, 1000, 50, true},
  };
  return cells;
}

// The train flags of a recipe, parsed by train's own parser (so a recipe is exactly a train command).
TrainFlags parse_recipe(const std::string& args) {
  CLI::App app;
  TrainFlags f;
  add_train_flags(app, f);
  try {
    app.parse(args, false);
  } catch (const CLI::ParseError& e) {
    throw Error("recipe '" + args + "' does not parse: " + e.what());
  }
  return f;
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  if (!in) return nullptr;
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception&) {
    return nullptr;  // torn or foreign: recomputed and rewritten
  }
}

void write_json(const fs::path& p, const nlohmann::json& j) { write_file_atomic(p.string(), j.dump(1) + "\n"); }

std::string join_args(const std::string& a, const std::string& b) { return b.empty() ? a : a.empty() ? b : a + " " + b; }

// Per-instance averages over the seeds' totals (every seed evaluated on the same instances): the policy
// "a seed drawn at random", whose mean is the mean over seeds and whose stderr is over instances.
std::vector<double> average_over_seeds(const std::vector<std::vector<double>>& per_seed) {
  std::vector<double> avg(per_seed.front().size(), 0.0);
  for (const auto& t : per_seed)
    for (size_t i = 0; i < avg.size(); ++i) avg[i] += t[i] / static_cast<double>(per_seed.size());
  return avg;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

struct Options {
  double budget_minutes = -1.0;  // < 0: the cell's
  int seeds = 0;                 // 0: the cell's
  int64_t instances = 0;         // 0: the cell's
  std::string out;
  bool train = true;             // false: evaluate and report what the run directories hold
};

class Reproducer {
 public:
  // Progress goes to stderr (the table to stdout), as train's.
  Reproducer(const GlobalFlags& g, const Options& o) : g_(g), o_(o), human_(std::cerr) {}

  nlohmann::json cell(const Cell& c, size_t index, size_t count) {
    std::string note;  // run_training says which device in its own line
    const Device device = train_device(g_, &note);
    const bool gpu = device == Device::kCuda;
    const std::string recipe = join_args(c.env, gpu ? c.gpu : c.cpu);
    const double minutes = o_.budget_minutes >= 0.0 ? o_.budget_minutes : c.minutes;
    const int seeds = o_.seeds > 0 ? o_.seeds : c.seeds;
    const int64_t instances = o_.instances > 0 ? o_.instances : c.instances;
    const fs::path dir = fs::path(o_.out) / c.name;
    fs::create_directories(dir);
    const TrainFlags base = parse_recipe(recipe);
    const EnvConfig env = base.env.to_config();
    const bool maze = env.kind == EnvKind::kMaze;

    nlohmann::json row;
    row["cell"] = c.name;
    row["table"] = c.table;
    row["device"] = device_name(device);
    row["budget_minutes_per_seed"] = minutes;
    row["instances"] = instances;
    row["eval_seed"] = g_.seed;
    row["seeds"] = nlohmann::json::array();
    std::vector<std::vector<double>> totals;
    double seconds = 0.0;
    int64_t env_steps = 0;
    for (int s = 0; s < seeds; ++s) {
      const uint64_t seed = g_.seed + static_cast<uint64_t>(s);
      const fs::path run_dir = dir / ("seed" + std::to_string(seed));
      char head[160];
      std::snprintf(head, sizeof head, "[%zu/%zu] %s seed %llu (%d of %d): ", index + 1, count, c.name,
                    static_cast<unsigned long long>(seed), s + 1, seeds);
      TrainFlags f = base;
      f.seed = seed;
      f.max_minutes = minutes;
      f.eval_every = c.eval_every;
      f.eval_instances = std::min<int64_t>(instances, maze ? 100 : 500);
      const std::string command = "rl2-cuda train " + recipe + " --seed " + std::to_string(seed) + " --max-minutes " +
                                  fmt("%g", minutes) + " --eval-every " + std::to_string(c.eval_every) +
                                  " --eval-instances " + std::to_string(f.eval_instances) + " --out " +
                                  run_dir.string();
      LoadedRun run;
      const TrainConfig want = f.to_config();
      const bool started = fs::exists(run_dir / "checkpoint.safetensors");
      if (started) {
        // The same recipe but for its length: a recipe that grew (more iterations) continues the run.
        run = load_run(run_dir.string());
        nlohmann::json have = config_to_json(run.cfg), need = config_to_json(want);
        have.erase("iterations");
        need.erase("iterations");
        RL2_REQUIRE(have == need, run_dir.string() + " holds a run of another recipe (its run.json differs from `" +
                                      command + "`); move it away or choose another --out");
      }
      auto finished = [&] {
        return run.state.iteration >= want.iterations || (minutes > 0.0 && run.state.elapsed_seconds >= 60.0 * minutes);
      };
      if (!started && !o_.train) {
        human_ << head << "not started; skipped (--no-train)\n";
        continue;
      }
      if (!(started && finished()) && o_.train) {
        human_ << head << (started ? "resuming at iteration " + std::to_string(run.state.iteration) : "training")
               << " (at most " << fmt("%g", minutes) << " min)\n" << std::flush;
        GlobalFlags quiet = g_;
        quiet.format = "json";  // run_training's own lines go to stderr either way
        quiet.seed = seed;      // a fresh run takes its seed from the global flags
        if (started) {
          f.resume = run_dir.string();
          f.iterations = want.iterations;
        } else {
          f.out = run_dir.string();
        }
        run = run_training(quiet, f, std::cerr).run;
      }
      // Every seed is evaluated on the same instances: those of --seed (the baselines' too).
      const nlohmann::json ev = heldout(run, run_dir, instances, maze);
      std::vector<double> t = ev.at("totals").get<std::vector<double>>();
      const double metric = ev.at("mean").get<double>(), se = ev.at("stderr").get<double>();
      human_ << head << "iteration " << run.state.iteration << ", " << fmt("%.0f", run.state.elapsed_seconds)
             << " s of training: held-out " << fmt("%.3f", metric) << " ± " << fmt("%.3f", se) << "\n" << std::flush;
      const int64_t steps = run.state.iteration * run.cfg.trials_per_iter() * run.cfg.env.trial_length();
      row["seeds"].push_back({{"seed", seed},
                              {"mean", metric},
                              {"stderr", se},
                              {"iterations", run.state.iteration},
                              {"seconds", run.state.elapsed_seconds},
                              {"env_steps", steps},
                              {"run_dir", run_dir.string()},
                              {"finished", finished()},
                              {"command", command}});
      if (maze) {
        row["seeds"].back()["table3"] = ev.at("table3");
        row["seeds"].back()["table3_markdown"] = ev.value("table3_markdown", "");
      }
      seconds += run.state.elapsed_seconds;
      env_steps += steps;
      totals.push_back(std::move(t));
    }
    if (totals.empty()) return nullptr;  // --no-train and no seed started
    row["seconds"] = seconds;
    row["env_steps"] = env_steps;
    row["command"] = row["seeds"].front()["command"];
    row["gpu_recipe"] = "rl2-cuda train " + join_args(c.env, c.gpu) + " --device cuda";
    row["cpu_reaches_paper"] = c.cpu_reaches;
    size_t best = 0;
    for (size_t s = 1; s < totals.size(); ++s)
      if (row["seeds"][s]["mean"].get<double>() > row["seeds"][best]["mean"].get<double>()) best = s;
    row["best_seed"] = row["seeds"][best];
    row["best_seed"].erase("table3");
    row["best_seed"].erase("table3_markdown");
    std::vector<double> seed_means;
    double var_of_mean = 0.0;  // of the mean over seeds, from the seeds' own standard errors
    for (const auto& sd : row["seeds"]) {
      seed_means.push_back(sd["mean"].get<double>());
      var_of_mean += std::pow(sd["stderr"].get<double>() / static_cast<double>(totals.size()), 2);
    }
    const MeanStderr over_seeds = mean_stderr(seed_means);
    const size_t k = seed_means.size();
    row["seed_sd"] = k > 1 ? nlohmann::json(over_seeds.stderr_ * std::sqrt(static_cast<double>(k)))
                               : nlohmann::json(nullptr);
    if (maze) {
      // Table 3's headline: episode-1 success on held-out 5x5 mazes (%), mean over seeds.
      row["metric"] = "episode-1 success % on held-out 5x5 mazes";
      row["mean"] = over_seeds.mean;
      row["stderr"] = std::sqrt(var_of_mean);
      row["paper"] = paper_maze_value("success_pct", 1, "small").value_or(0.0);
      row["best_baseline"] = nullptr;
      row["bayes_optimal"] = nullptr;
      row["bold"] = nullptr;
      row["gap_se"] = nullptr;
      return row;
    }
    const std::vector<double> avg = average_over_seeds(totals);
    const MeanStderr ms = mean_stderr(avg);
    row["metric"] = "total reward per trial";
    row["mean"] = ms.mean;
    row["stderr"] = ms.stderr_;
    const auto paper = paper_value(env, "rl2");
    row["paper"] = paper ? nlohmann::json(*paper) : nlohmann::json(nullptr);
    row["bayes_optimal"] = bayes_optimal(env);

    // The baselines on the same instances, and the paper's rule: bold = the best mean of the row, or not
    // significantly worse than it (one-sided Welch t-test, p = 0.05). RL² enters as its best seed (what
    // the paper reported) and, separately, as the mean over seeds.
    const nlohmann::json bl = baselines(env, dir, instances);
    std::vector<std::vector<double>> samples = {totals[best]};
    for (const auto& r : bl["results"]) samples.push_back(r.at("totals").get<std::vector<double>>());
    const std::vector<bool> marks = mark_not_worse_than_best(samples);
    samples.front() = avg;
    const std::vector<bool> marks_mean = mark_not_worse_than_best(samples);
    size_t top = 0;
    for (size_t i = 1; i < bl["results"].size(); ++i)
      if (bl["results"][i]["mean"].get<double>() > bl["results"][top]["mean"].get<double>()) top = i;
    const nlohmann::json& b = bl["results"][top];
    row["best_baseline"] = {{"policy", b["policy"]}, {"mean", b["mean"]}, {"stderr", b["stderr"]}};
    row["bold"] = static_cast<bool>(marks[0]);
    row["bold_mean_over_seeds"] = static_cast<bool>(marks_mean[0]);
    const double se_b = b["stderr"].get<double>();
    row["gap_se"] = (ms.mean - b["mean"].get<double>()) / std::sqrt(ms.stderr_ * ms.stderr_ + se_b * se_b);
    return row;
  }

 private:
  static nlohmann::json bayes_optimal(const EnvConfig& env) {
    if (env.kind != EnvKind::kBandit) return nullptr;
    try {
      return bayes_optimal_bandit_total(env.bandit.arms, env.bandit.episodes);
    } catch (const InputError&) {
      return nullptr;  // too large to solve exactly
    }
  }

  // The held-out evaluation of a run's final state on the instances of --seed, kept in heldout.json.
  nlohmann::json heldout(const LoadedRun& run, const fs::path& run_dir, int64_t instances, bool maze) {
    const fs::path path = run_dir / "heldout.json";
    nlohmann::json ev = read_json(path);
    if (ev.is_object() && ev.value("iteration", int64_t{-1}) == run.state.iteration &&
        ev.value("instances", int64_t{-1}) == instances && ev.value("eval_seed", uint64_t{0}) == g_.seed)
      return ev;
    TrainConfig cfg = run.cfg;
    cfg.seed = g_.seed;
    std::string note;
    auto learner = make_learner(train_device(g_, &note), cfg);
    learner->set_state(run.state);
    ev = {{"iteration", run.state.iteration}, {"instances", instances}, {"eval_seed", g_.seed}};
    if (maze) {
      std::string table;
      const nlohmann::json e = maze_eval(*learner, instances, g_.seed, std::cerr, &table);
      const nlohmann::json& ep1 = e["table3"]["small"]["per_episode"][0];
      const double p = ep1["success_pct"].get<double>() / 100.0;
      ev["mean"] = 100.0 * p;
      ev["stderr"] = 100.0 * std::sqrt(p * (1.0 - p) / static_cast<double>(instances));
      ev["totals"] = std::vector<double>{};
      ev["table3"] = e["table3"];
      ev["table3_markdown"] = table;
    } else {
      const std::vector<double> t = learner->evaluate(instances, kEvalStream);
      const MeanStderr ms = mean_stderr(t);
      ev["mean"] = ms.mean;
      ev["stderr"] = ms.stderr_;
      ev["totals"] = t;
    }
    write_json(path, ev);
    return ev;
  }

  // Every classical policy of the table on the instances of --seed, tuned on separate ones; kept in
  // baselines.json (with each policy's per-instance totals, for the significance test).
  nlohmann::json baselines(const EnvConfig& env, const fs::path& dir, int64_t instances) {
    const fs::path path = dir / "baselines.json";
    nlohmann::json bl = read_json(path);
    if (bl.is_object() && bl.value("instances", int64_t{-1}) == instances && bl.value("seed", uint64_t{0}) == g_.seed &&
        bl.value("env", nlohmann::json()) == env_to_json(env))
      return bl;
    BaselineOptions opt;
    opt.seed = g_.seed;
    opt.instances = instances;
    opt.tune_instances = std::min<int64_t>(instances, 1000);
    bl = {{"env", env_to_json(env)}, {"instances", instances}, {"seed", g_.seed}, {"results", nlohmann::json::array()}};
    const bool bandit = env.kind == EnvKind::kBandit;
    human_ << "  baselines on the same " << instances << " instances:" << std::flush;
    for (const std::string& name : bandit ? bandit_policies() : mdp_policies()) {
      const BaselineResult r =
          bandit ? run_bandit_baseline(env.bandit, name, opt) : run_mdp_baseline(env.mdp, name, opt);
      human_ << " " << name << std::flush;
      bl["results"].push_back({{"policy", r.policy}, {"mean", r.mean}, {"stderr", r.stderr_}, {"totals", r.totals}});
    }
    human_ << "\n";
    write_json(path, bl);
    return bl;
  }

  const GlobalFlags& g_;
  Options o_;
  std::ostream& human_;
};

std::string markdown(int table, const std::vector<nlohmann::json>& rows) {
  std::ostringstream o;
  o << "# Table " << table << ": RL² reproduced\n\n";
  if (table == 3)
    o << "Written by `rl2-cuda reproduce --table 3`: trained on 5x5 mazes, evaluated on held-out 5x5 and 9x9 "
         "configurations as the paper (Table 3 has no classical baselines). Ours: episode-1 success on 5x5, mean "
         "over the training seeds ± its standard error; each seed's whole Table 3 follows.\n\n";
  else
    o << "Written by `rl2-cuda reproduce --table " << table << "`. Ours: held-out mean ± standard error over the "
    << "instances, mean over the training seeds (each seed evaluated on the same instances); the best seed is "
       "what the paper reported. **Bold**: the best mean of the row with our baselines, or not significantly "
       "worse than it (one-sided Welch t-test, p = 0.05), for the best seed as the paper did. Gap: (ours − best "
       "baseline) in standard errors of the difference.\n\n";
  if (table == 3) {
    o << "| cell | ours: episode-1 success % (5x5) | best seed | paper | seeds × iterations | minutes | env steps |\n"
      << "|---|---|---|---|---|---|---|\n";
  } else {
    o << "| cell | ours (mean over seeds) | best seed | paper RL² | best baseline (ours) | Bayes-optimal | gap (SE) | "
         "seeds × iterations | minutes | env steps |\n"
      << "|---|---|---|---|---|---|---|---|---|---|\n";
  }
  std::string tables3;
  bool stopped = false;
  std::string not_run;
  for (const auto& r : rows) {
    if (r.value("not_run", false)) {
      const std::string name = r["cell"].get<std::string>() + (r["cpu_reaches_paper"].get<bool>() ? "" : " (needs a GPU)");
      o << "| " << name << " | not run |";
      for (int col = 2; col < (table == 3 ? 7 : 10); ++col) o << " |";
      o << "\n";
      not_run += "- " + r["cell"].get<std::string>() + ": `" + r["cpu_recipe"].get<std::string>() + "` (CPU)\n";
      continue;
    }
    const int digits = std::fabs(r["mean"].get<double>()) < 20.0 ? 3 : 1;
    const std::string f = "%." + std::to_string(digits) + "f";
    auto pm = [&](const nlohmann::json& x) {
      return fmt(f.c_str(), x["mean"].get<double>()) + " ± " + fmt(f.c_str(), x["stderr"].get<double>());
    };
    std::string best = pm(r["best_seed"]) + " (seed " + std::to_string(r["best_seed"]["seed"].get<uint64_t>()) + ")";
    if (r["bold"].is_boolean() && r["bold"].get<bool>()) best = "**" + best + "**";
    std::string its;
    for (const auto& s : r["seeds"]) {
      its += (its.empty() ? "" : ", ") + std::to_string(s["iterations"].get<int64_t>());
      if (!s.value("finished", true)) {
        its += "*";
        stopped = true;
      }
    }
    const std::string seeds = std::to_string(r["seeds"].size()) + " × (" + its + ")";
    const std::string minutes = fmt("%.1f", r["seconds"].get<double>() / 60.0);
    const std::string steps = fmt("%.3g", static_cast<double>(r["env_steps"].get<int64_t>()));
    std::string cell = r["cell"].get<std::string>();
    if (!r["cpu_reaches_paper"].get<bool>() && r["device"] == "cpu") cell += " (needs a GPU)";
    const std::string paper = r["paper"].is_null() ? "-" : fmt("%.1f", r["paper"].get<double>());
    if (table == 3) {
      o << "| " << cell << " | " << pm(r) << " | " << best << " | " << paper << " | " << seeds << " | " << minutes
        << " | " << steps << " |\n";
      for (const auto& s : r["seeds"])
        if (s.contains("table3_markdown"))
          tables3 += "\n### " + r["cell"].get<std::string>() + ", seed " + std::to_string(s["seed"].get<uint64_t>()) +
                     " (iteration " + std::to_string(s["iterations"].get<int64_t>()) + ")\n\n" +
                     s["table3_markdown"].get<std::string>();
      continue;
    }
    const auto& b = r["best_baseline"];
    o << "| " << cell << " | " << pm(r) << " | " << best << " | " << paper << " | " << b["policy"].get<std::string>()
      << " " << pm(b) << " | " << (r["bayes_optimal"].is_null() ? "-" : fmt("%.3f", r["bayes_optimal"].get<double>()))
      << " | " << fmt("%+.1f", r["gap_se"].get<double>()) << " | " << seeds << " | " << minutes << " | " << steps
      << " |\n";
  }
  if (stopped)
    o << "\n\\* stopped before its iterations or its budget were spent (the run resumes with the next `reproduce` "
         "call that trains).\n";
  o << tables3;
  o << "\nCommands (one per seed; `reproduce` runs them and resumes them):\n\n";
  for (const auto& r : rows)
    for (const auto& s : r["seeds"]) o << "- " << r["cell"].get<std::string>() << ": `" << s["command"].get<std::string>() << "`\n";
  if (!not_run.empty()) o << "\nNot run yet (`rl2-cuda reproduce --table " << table << " --cells CELL` runs them):\n\n" << not_run;
  o << "\nGPU recipes (not yet run: the CUDA trainer has not run on a GPU):\n\n";
  for (const auto& r : rows) o << "- " << r["cell"].get<std::string>() << ": `" << r["gpu_recipe"].get<std::string>() << "`\n";
  return o.str();
}

}  // namespace

std::vector<std::string> reproduce_cells(int table) {
  std::vector<std::string> names;
  for (const Cell& c : all_cells())
    if (c.table == table) names.push_back(c.name);
  return names;
}

int run_reproduce(const GlobalFlags& g, const ReproduceFlags& f) {
  RL2_REQUIRE(f.table >= 1 && f.table <= 3, "--table must be 1, 2 or 3 (got " + std::to_string(f.table) + ")");
  RL2_REQUIRE(f.budget_minutes == -1.0 || (f.budget_minutes >= 0.0 && std::isfinite(f.budget_minutes)),
              "--budget-minutes must be 0 (no limit) or more");
  RL2_REQUIRE(f.seeds == 0 || (f.seeds >= 1 && f.seeds <= 100), "--seeds must be in [1, 100]");
  RL2_REQUIRE(f.instances >= 0, "--instances must be at least 1");
  RL2_REQUIRE(!f.out.empty(), "--out must name a directory");
  const std::vector<std::string> valid = reproduce_cells(f.table);
  std::vector<const Cell*> chosen;
  std::string list = f.cells;
  if (list.empty())
    for (const auto& n : valid) list += (list.empty() ? "" : ",") + n;
  std::stringstream ss(list);
  for (std::string name; std::getline(ss, name, ',');) {
    auto it = std::find_if(all_cells().begin(), all_cells().end(),
                           [&](const Cell& c) { return c.name == name && c.table == f.table; });
    if (it == all_cells().end()) {
      std::string v;
      for (const auto& n : valid) v += (v.empty() ? "" : ", ") + n;
      throw InputError("unknown cell '" + name + "' for --table " + std::to_string(f.table) + " (expected " + v + ")");
    }
    chosen.push_back(&*it);
  }
  apply_threads(g);
  std::error_code ec;
  fs::create_directories(f.out, ec);
  RL2_REQUIRE(fs::is_directory(f.out), "--out: cannot create the directory " + f.out);
  Options o{f.budget_minutes, f.seeds, f.instances, f.out, !f.no_train};
  Reproducer rep(g, o);
  for (size_t i = 0; i < chosen.size(); ++i) {
    nlohmann::json row = rep.cell(*chosen[i], i, chosen.size());
    if (row.is_null()) continue;
    write_json(fs::path(f.out) / chosen[i]->name / "cell.json", row);
  }
  // The table holds every cell of this table: its result in --out (the ones run now included), or its
  // recipes, marked not run.
  std::vector<nlohmann::json> all;
  for (const Cell& c : all_cells()) {
    if (c.table != f.table) continue;
    const nlohmann::json r = read_json(fs::path(f.out) / c.name / "cell.json");
    if (r.is_object()) {
      all.push_back(r);
      continue;
    }
    all.push_back({{"cell", c.name}, {"table", c.table}, {"not_run", true}, {"mean", nullptr}, {"stderr", nullptr},
                   {"cpu_reaches_paper", c.cpu_reaches}, {"device", "cpu"},
                   {"command", "rl2-cuda reproduce --table " + std::to_string(c.table) + " --cells " + c.name},
                   {"cpu_recipe", "rl2-cuda train " + join_args(c.env, c.cpu) + " --max-minutes " + fmt("%g", c.minutes)},
                   {"gpu_recipe", "rl2-cuda train " + join_args(c.env, c.gpu) + " --device cuda"},
                   {"seeds", nlohmann::json::array()}});
  }
  const std::string md = markdown(f.table, all);
  nlohmann::json out = {{"table", f.table}, {"cells", all}, {"provenance", provenance(Device::kCpu)}};
  const fs::path base = fs::path(f.out) / ("table" + std::to_string(f.table));
  write_file_atomic(base.string() + ".md", md);
  write_json(base.string() + ".json", out);
  if (g.json()) {
    std::cout << out.dump() << "\n";
  } else {
    std::cout << md << "\nwritten to " << base.string() << ".md and .json\n";
  }
  return 0;
}

}  // namespace rl2
