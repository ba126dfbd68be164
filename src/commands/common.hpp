// Flags shared by several commands, and how results are printed (DESIGN.md section 1):
// --format table|json; with json, stdout holds exactly one JSON object and human text goes to stderr.
#pragma once

#include <CLI/CLI.hpp>
#include <atomic>
#include <climits>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "rl2/core/device.hpp"
#include "rl2/env/env.hpp"
#include "rl2/train/learner.hpp"
#include "rl2/train/run.hpp"

namespace rl2 {

struct GlobalFlags {
  std::string device = "auto";
  uint64_t seed = 1;
  std::string format = "table";
  int threads = 0;  // 0: every core
  bool json() const { return format == "json"; }
  // Where human-readable text goes: stdout for tables, stderr when JSON owns stdout.
  std::ostream& human() const;
};

struct EnvFlags {
  std::string env = "bandit";
  int64_t arms = 5;
  std::optional<int64_t> episodes;  // unset: 10 (bandit, mdp), 2 (maze)
  int64_t states = 10;
  int64_t actions = 5;
  std::optional<int64_t> horizon;  // unset: 10 (mdp), 250 (maze 5x5; 3x3 and corridor 100, 7x7 500, 9x9 1000)
  int64_t size = 5;
  int64_t mazes = 1000;
  std::string layout = "prim";  // maze: prim | corridor
  // Validated config; throws InputError for bad values.
  EnvConfig to_config() const;
};

void add_global_flags(CLI::App& app, GlobalFlags& g);
void add_env_flags(CLI::App& app, EnvFlags& f);
// Applies --threads to OpenMP.
void apply_threads(const GlobalFlags& g);
// The same for training: --threads 0 means every core but no more threads than the batch's trial chunks
// (core/chunks.hpp; a thread without a chunk only waits). Measured the fastest choice on 2 cores for every
// default configuration (bench/RESULTS.md, "Chunked reductions"); no thread count changes a number.
void apply_train_threads(const GlobalFlags& g, const TrainConfig& cfg);
// Throws InputError when `count` items of `bytes_each` would not fit in host memory.
void require_host_memory(double count, double bytes_each, const std::string& what);

// Provenance (DESIGN.md section 11): what a result depends on besides its config and seed, for this
// process as it runs now: rl2-cuda version, commit (and whether the tree was dirty), build type, compiler
// and flags, the backend that computes (cpu or cuda, as used, with the GPU), threads (OpenMP's count
// now), ranks, CPU model, the BLAS in use (OpenBLAS config, core type, OPENBLAS_CORETYPE), library
// versions. Every command's JSON output carries it under its own key "provenance", so comparisons drop
// one key; it never enters metrics.jsonl or checkpoints, which must stay byte-identical across machines
// and thread counts. Call after apply_threads.
nlohmann::json provenance(Device backend);
// The same in one line, for table output.
std::string provenance_line(const nlohmann::json& p);

// Generated on every build by src/rl2_commit.cmake: `git rev-parse --short=12 HEAD` of the source tree,
// or "unknown" outside a git checkout; whether `git status --porcelain` listed anything.
const char* build_commit();
bool build_dirty();

// While alive, SIGINT and SIGTERM only record the signal number in received() (one lock-free atomic
// store; no I/O in the handler) for train_run to stop between iterations; the destructor restores the
// previous handlers. A signal ignored when we start (SIGINT for a background job of a non-interactive
// shell) stays ignored. A signal recorded but never acted on (it came after the last check) goes to the
// previous handler when this ends normally. One instance at a time.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  const std::atomic<int>& received() const;
};

struct BaselinesFlags {
  EnvFlags env;
  std::string policy = "all";
  int64_t instances = 1000;
  int64_t tune_instances = -1;  // -1: as many as --instances
};
// With rl2_totals (per-instance totals of a trained RL² policy on the same evaluation instances), the
// table gains an RL² row that takes part in the significance marking.
int run_baselines(const GlobalFlags& g, const BaselinesFlags& f, const std::vector<double>* rl2_totals = nullptr);

struct BenchFlags {
  EnvFlags env;
  int64_t trials = 16384;
  bool sweep = false;
  int64_t sweep_min = 1024;
  int64_t sweep_max = 1 << 20;
  double cpu_budget_s = 20.0;
  int32_t train_iterations = 2;  // timed training iterations per device and size (0: none)
  std::vector<int> ranks;         // bench --ranks: data-parallel scaling over these rank counts
  int64_t rank_steps = 10000;     // one rank's steps per iteration (weak scaling; strong: x the largest R)
};
int run_bench(const GlobalFlags& g, const BenchFlags& f);
int run_bench_ranks(const GlobalFlags& g, const BenchFlags& f);  // bench_ranks.cpp

int run_info(const GlobalFlags& g);

// Training flags; kUnset means "not given: the default for this env and device".
struct TrainFlags {
  static constexpr int64_t kUnset = INT64_MIN;
  EnvFlags env;
  int64_t iterations = kUnset;
  int64_t steps_per_iter = kUnset;
  int64_t hidden = kUnset;
  std::optional<std::string> algo;  // unset: trpo, ppo for the maze on the CPU
  double max_kl = 0.01;
  double gamma = 0.99;
  std::optional<double> gae_lambda;    // unset: 0.3, 0.95 for the maze
  std::optional<double> entropy_coef;  // unset: the default for this env
  double cg_damping = 0.01;
  int64_t cg_iters = 10;
  double fvp_subsample = 0.1;
  std::optional<int> baseline_epochs;       // unset: 1 for bandits, else TrainConfig's (3)
  std::optional<int> baseline_minibatches;  // unset: 12 for bandits, else TrainConfig's (4)
  PpoConfig ppo;  // epochs and minibatches: see ppo_epochs, ppo_minibatches
  std::optional<int> ppo_epochs;       // unset: 8, 4 for the maze
  std::optional<int> ppo_minibatches;  // unset: 4, 8 for the maze
  std::string out;
  std::string resume;
  int64_t checkpoint_every = 1;
  double max_minutes = 0.0;     // 0: no limit on the run's training wall time
  int64_t eval_every = 0;       // 0: no held-out evaluations during training
  int64_t eval_instances = 500;
  uint64_t seed = 1;  // filled from --seed
  TrainConfig to_config() const;
};
void add_train_flags(CLI::App& app, TrainFlags& f);
int run_train(const GlobalFlags& g, const TrainFlags& f);

// The device training runs on: --device, except that auto keeps the CPU while the CUDA learner is
// unverified (the note says why in one line).
Device train_device(const GlobalFlags& g, std::string* note);
struct Trained {
  LoadedRun run;                     // final config and state; run.source is the run directory
  std::unique_ptr<Learner> learner;  // holds that state, ready to evaluate
  nlohmann::json provenance;         // this process's, as recorded in run.json
};
// Trains (or resumes, with f.resume) and returns the run with its learner; progress goes to stderr.
Trained run_training(const GlobalFlags& g, const TrainFlags& f, std::ostream& human);
// The maze's evaluation (Table 3): the eval JSON of the small setting (its env, mean and stderr of the
// total reward per trial) with both settings under "table3"; *markdown gets the table beside the paper.
nlohmann::json maze_eval(Learner& learner, int64_t instances, uint64_t seed, std::ostream& human,
                         std::string* markdown, bool large = true);
int run_default_job(const GlobalFlags& g, const TrainFlags& f, int64_t instances);

struct EvalFlags {
  std::string checkpoint;
  int64_t instances = 1000;
  bool seed_given = false;
  std::string video;  // maze: a directory for the first evaluation trials' frames
  std::string settings = "both";  // maze: "small" (5x5 only) or "both" (and 9x9: Table 3)
};
int run_eval(const GlobalFlags& g, const EvalFlags& f);

struct ExportFlags {
  std::string checkpoint;
  std::string format = "safetensors";
  std::string out;
};
int run_export(const GlobalFlags& g, const ExportFlags& f);

struct ReproduceFlags {
  int table = 0;
  std::string cells;             // comma-separated; empty: every cell of the table
  double budget_minutes = -1.0;  // -1: each cell's own; 0: no limit
  int seeds = 0;                 // 0: each cell's own
  int64_t instances = 0;         // 0: each cell's own
  std::string out = "reproduce";
  bool no_train = false;         // evaluate and report the run directories as they are
};
int run_reproduce(const GlobalFlags& g, const ReproduceFlags& f);
// The cells of the paper's Table `table` (1, 2 or 3) that reproduce knows, in table order.
std::vector<std::string> reproduce_cells(int table);

struct RenderFlags {
  EnvFlags env;  // env "maze": the only one with a view
  std::string out = "maze.png";  // writes <stem>_fp_000.png ... and <stem>_top.png beside it
  int64_t frames = 16;
  std::string policy = "random";
};
int run_render(const GlobalFlags& g, const RenderFlags& f);

}  // namespace rl2
