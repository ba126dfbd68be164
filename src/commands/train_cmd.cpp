// `rl2-cuda train`, `eval`, `export`, and the bare default job (train, then evaluate beside the
// classical baselines of the same setting; for the maze, Table 3 beside the paper's). Defaults per device
// keep the CPU default run useful on a 2-core machine (docs/training.md).
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "commands/common.hpp"
#include "commands/maze_view.hpp"
#include "rl2/core/check.hpp"
#include "rl2/core/rng.hpp"
#include "rl2/io/onnx_export.hpp"
#include "rl2/io/paper.hpp"
#include "rl2/stats/stats.hpp"
#include "rl2/train/maze_eval.hpp"
#include "rl2/train/run.hpp"

namespace fs = std::filesystem;

namespace rl2 {

// Whether the CUDA learner has passed its gpu-labelled tests on a GPU. Until it has, --device auto keeps
// training on the CPU (a default run must not depend on code that has never run); --device cuda uses it.
constexpr bool kCudaLearnerVerified = false;

// The device training runs on. auto picks the GPU when a GPU is usable and the CUDA learner is verified;
// otherwise the CPU, and the note says why in one line.
Device train_device(const GlobalFlags& g, std::string* note) {
  const Device d = resolve_device(g.device, note);
  if (d != Device::kCuda || g.device != "auto" || kCudaLearnerVerified) return d;
  *note = "device: cpu, chosen by --device auto (the CUDA learner has not been verified on a GPU yet: "
          "--device cuda uses it; the GPU " + cuda_probe().name + " is not used)";
  return Device::kCpu;
}

namespace {

// A fresh directory name under runs/: runs/<env>-<setting>-seed<S>[-2, -3, ...]; the maze's setting is
// 5x5 or, for the ladder's corridor, corridor5.
std::string fresh_run_dir(const EnvConfig& env, uint64_t seed) {
  std::string base = "runs/" + env.name() + "-";
  base += env.kind == EnvKind::kBandit ? "k" + std::to_string(env.bandit.arms)
          : env.kind == EnvKind::kMdp  ? "s" + std::to_string(env.mdp.states)
          : env.maze.layout == Maze::kCorridor ? "corridor" + std::to_string(env.maze.size)
                                               : std::to_string(env.maze.size) + "x" + std::to_string(env.maze.size);
  base += "-n" + std::to_string(env.episodes()) + "-seed" + std::to_string(seed);
  std::string dir = base;
  for (int i = 2; fs::exists(dir); ++i) dir = base + "-" + std::to_string(i);
  return dir;
}

nlohmann::json eval_json(const EnvConfig& env, const MeanStderr& ms, int64_t instances, uint64_t seed) {
  nlohmann::json j = env_to_json(env);
  j["policy"] = "rl2";
  j["instances"] = instances;
  j["seed"] = seed;
  j["mean"] = ms.mean;
  j["stderr"] = ms.stderr_;
  const auto paper = paper_value(env, "rl2");
  j["paper"] = paper ? nlohmann::json(*paper) : nlohmann::json(nullptr);
  return j;
}

nlohmann::json eval_json(const EnvConfig& env, const std::vector<double>& totals, uint64_t seed) {
  return eval_json(env, mean_stderr(totals), static_cast<int64_t>(totals.size()), seed);
}

}  // namespace

nlohmann::json maze_eval(Learner& learner, int64_t instances, uint64_t seed, std::ostream& human,
                         std::string* markdown, bool large) {
  const std::vector<MazeMetrics> t3 = evaluate_table3(learner, instances, &human, large);
  *markdown = table3_markdown(t3);
  nlohmann::json j = eval_json(t3.front().env, t3.front().total, instances, seed);
  j["trained_on"] = env_to_json(learner.config().env);
  j["table3"] = table3_json(t3);
  return j;
}

namespace {

void print_eval(std::ostream& os, const nlohmann::json& e) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "RL² on %zu held-out instances: %.3f ± %.3f (paper: %s)\n",
                e["instances"].get<size_t>(), e["mean"].get<double>(), e["stderr"].get<double>(),
                e["paper"].is_null() ? "-" : std::to_string(e["paper"].get<double>()).substr(0, 5).c_str());
  os << buf;
}

}  // namespace

// The maze on 2 CPU cores (docs/training.md, "Maze"): chosen by the training ladder's runs (docs/maze.md).
// TRPO with the bandit settings collapses its entropy without learning to navigate; PPO with GAE lambda
// 0.95, batches of 40 trials and a larger entropy bonus learns.
constexpr int32_t kMazeCpuHidden = 128;
constexpr int64_t kMazeCpuStepsPerIter = 20000;
constexpr int64_t kMazeCpuIterations = 300;
constexpr double kMazeGaeLambda = 0.95;
constexpr double kMazeEntropyCoef = 0.03;
constexpr int kMazePpoEpochs = 4;
constexpr int kMazePpoMinibatches = 8;

// Bandits: the baseline's regression in one pass of 12 minibatches (12 Adam steps, as 3 x 4 took, on a third
// of the compute); with the Fisher products on a tenth of the trials this makes the default job about 3x
// faster at the same held-out return (docs/training.md, "Speed").
constexpr int kBanditBaselineEpochs = 1;
constexpr int kBanditBaselineMinibatches = 12;

// One set of defaults while only the CPU trainer exists; the CUDA trainer brings its own (docs/training.md).
TrainConfig TrainFlags::to_config() const {
  TrainConfig c;
  c.env = env.to_config();
  const bool bandit = c.env.kind == EnvKind::kBandit, maze = c.env.kind == EnvKind::kMaze;
  // kUnset marks a flag the user did not give; every given value goes through validate().
  RL2_REQUIRE(hidden == kUnset || (hidden >= 1 && hidden <= 4096), "--hidden must be in [1, 4096] (got " + std::to_string(hidden) + ")");
  c.hidden = hidden == kUnset ? (maze ? kMazeCpuHidden : 256) : static_cast<int32_t>(hidden);
  c.steps_per_iter = steps_per_iter == kUnset ? (bandit ? 10000 : maze ? kMazeCpuStepsPerIter : 20000) : steps_per_iter;
  c.iterations = iterations == kUnset ? (bandit ? 150 : maze ? kMazeCpuIterations : 100) : iterations;
  c.algo = algo.value_or(maze ? "ppo" : "trpo");
  c.trpo.max_kl = max_kl;
  c.trpo.cg_damping = cg_damping;
  c.trpo.cg_iterations = static_cast<int>(cg_iters);
  c.trpo.fvp_subsample = fvp_subsample;
  c.baseline_epochs = baseline_epochs.value_or(bandit ? kBanditBaselineEpochs : c.baseline_epochs);
  c.baseline_minibatches = baseline_minibatches.value_or(bandit ? kBanditBaselineMinibatches : c.baseline_minibatches);
  c.ppo = ppo;
  c.ppo.epochs = ppo_epochs.value_or(maze ? kMazePpoEpochs : PpoConfig{}.epochs);
  c.ppo.minibatches = ppo_minibatches.value_or(maze ? kMazePpoMinibatches : PpoConfig{}.minibatches);
  c.gamma = gamma;
  c.gae_lambda = gae_lambda.value_or(maze ? kMazeGaeLambda : 0.3);
  c.entropy_coef = entropy_coef.value_or(bandit ? 0.0 : maze ? kMazeEntropyCoef : 0.01);
  c.seed = seed;
  c.validate();
  return c;
}

void add_train_flags(CLI::App& app, TrainFlags& f) {
  add_env_flags(app, f.env);
  app.add_option("--iterations", f.iterations, "policy-update iterations (default per env and device; see docs/training.md)");
  app.add_option("--steps-per-iter", f.steps_per_iter, "environment steps per iteration, split into whole trials");
  app.add_option("--hidden", f.hidden, "GRU hidden size (default 256; 128 for the maze on the CPU)");
  app.add_option("--algo", f.algo,
                 "outer-loop algorithm: trpo (the paper's; the default) or ppo (clipped ratio, Adam; the maze's default)");
  app.add_option("--max-kl", f.max_kl, "TRPO step size: mean KL limit delta")->capture_default_str();
  app.add_option("--gamma", f.gamma, "discount")->capture_default_str();
  app.add_option("--gae-lambda", f.gae_lambda, "GAE lambda (default 0.3, the paper's; 0.95 for the maze)");
  app.add_option("--entropy-coef", f.entropy_coef,
                 "entropy bonus beta added to the surrogate (default: 0 for bandits, 0.01 for MDPs, 0.03 for the maze)");
  app.add_option("--cg-damping", f.cg_damping, "damping added to the Fisher matrix in conjugate gradient")
      ->capture_default_str();
  app.add_option("--cg-iters", f.cg_iters, "conjugate-gradient iterations")->capture_default_str();
  app.add_option("--fvp-subsample", f.fvp_subsample,
                 "TRPO: fraction of the batch's trials, spread evenly, that conjugate gradient's Fisher-vector "
                 "products use (1: all; CG's cost is about proportional)")
      ->capture_default_str();
  app.add_option("--baseline-epochs", f.baseline_epochs,
                 "passes of the baseline's Adam regression over each batch (default 1 for bandits, 3 otherwise)");
  app.add_option("--baseline-minibatches", f.baseline_minibatches,
                 "minibatches of whole trials per baseline pass, one Adam step each (default 12 for bandits, 4 otherwise)");
  app.add_option("--ppo-clip", f.ppo.clip, "PPO: ratio clip epsilon")->capture_default_str();
  app.add_option("--ppo-epochs", f.ppo_epochs,
                 "PPO: passes over each batch, fewer when the KL guard trips (default 8; 4 for the maze)");
  app.add_option("--ppo-minibatches", f.ppo_minibatches, "PPO: minibatches of whole trials per pass (default 4; 8 for the maze)");
  app.add_option("--ppo-lr", f.ppo.lr, "PPO: Adam learning rate of the policy")->capture_default_str();
  app.add_option("--ppo-target-kl", f.ppo.target_kl, "PPO: a pass that takes the mean KL above 1.5x this ends the update")
      ->capture_default_str();
  app.add_option("--out", f.out, "run directory (default: a fresh runs/<setting>-seed<S>)");
  app.add_option("--resume", f.resume, "continue the run in this directory (its saved config; --iterations may raise the total)");
  app.add_option("--checkpoint-every", f.checkpoint_every, "iterations between checkpoints")->capture_default_str();
  app.add_option("--max-minutes", f.max_minutes,
                 "stop with a checkpoint once the run's training wall time (all its resumes) reaches this; "
                 "--resume continues (0: no limit)")
      ->capture_default_str();
  app.add_option("--eval-every", f.eval_every,
                 "every K iterations, evaluate on held-out instances and write heldout_mean to metrics.jsonl (0: never)")
      ->capture_default_str();
  app.add_option("--eval-instances", f.eval_instances, "held-out instances of each --eval-every evaluation")
      ->capture_default_str();
}

// Ranks (mpirun -np R): every rank resolves the run itself, then they agree that each did so without error
// and with the same configuration and starting iteration, so a difference is one line from rank 0.
void agree_on_run(Comm& comm, const LoadedRun& run, const std::string& dir) {
  if (comm.size() == 1) return;
  nlohmann::json mine = config_to_json(run.cfg);
  mine["start_iteration"] = run.state.iteration;
  mine["run_dir"] = dir;
  const std::vector<std::string> all = comm.all_gather(mine.dump());
  const nlohmann::json first = nlohmann::json::parse(all[0]);
  for (size_t r = 1; r < all.size(); ++r) {
    const nlohmann::json other = nlohmann::json::parse(all[r]);
    if (other == first) continue;
    std::string key;
    for (const auto& [k, v] : first.items())
      if (!other.contains(k) || other[k] != v) {
        key = k + " (" + v.dump() + " on rank 0, " + (other.contains(k) ? other[k].dump() : "none") + " on rank " +
              std::to_string(r) + ")";
        break;
      }
    throw CollectiveError("the ranks were started with different training settings: " +
                              (key.empty() ? "rank " + std::to_string(r) + " has more" : key) +
                              "; give every rank the same flags and run directory",
                          2);
  }
}

Trained run_training(const GlobalFlags& g, const TrainFlags& f, std::ostream& human_out) {
  Comm& comm = world();
  // Only rank 0 speaks and writes; the other ranks train in step.
  static std::ostream quiet(nullptr);  // a stream without a buffer discards what it is given
  std::ostream& human = comm.rank() == 0 ? human_out : quiet;
  std::string note;
  LoadedRun run;
  std::string dir;
  std::string failure;
  int code = 2;
  try {
    RL2_REQUIRE(f.max_minutes >= 0.0 && std::isfinite(f.max_minutes), "--max-minutes must be 0 (no limit) or more");
    RL2_REQUIRE(f.eval_every >= 0, "--eval-every must be 0 (never) or more");
    RL2_REQUIRE(f.eval_instances >= 1, "--eval-instances must be at least 1");
    if (!f.resume.empty()) {
      RL2_REQUIRE(f.out.empty() || f.out == f.resume, "--resume and --out name different directories");
      run = load_run(f.resume);
      RL2_REQUIRE(fs::path(run.source).filename() == "checkpoint.safetensors",
                  f.resume + " holds no checkpoint.safetensors to resume from");
      if (f.iterations != TrainFlags::kUnset) run.cfg.iterations = f.iterations;
      dir = f.resume;
    } else {
      TrainFlags flags = f;
      flags.seed = g.seed;
      run.cfg = flags.to_config();
      dir = f.out.empty() ? fresh_run_dir(run.cfg.env, run.cfg.seed) : f.out;
      RL2_REQUIRE(!fs::exists(fs::path(dir) / "checkpoint.safetensors"),
                  dir + " already holds a run; use --resume " + dir + " to continue it or another --out");
    }
  } catch (const InputError& e) {
    if (comm.size() == 1) throw;
    failure = e.what();
  } catch (const Error& e) {
    if (comm.size() == 1) throw;
    failure = e.what();
    code = 1;
  }
  agree(comm, failure, code);  // over ranks: every rank fails here when one did (rank 0 says which)
  agree_on_run(comm, run, dir);
  apply_train_threads(g, run.cfg);
  const Device device = train_device(g, &note);
  human << note << "\n";
  auto learner = make_learner(device, run.cfg, comm);
  if (!f.resume.empty()) learner->set_state(run.state);
  human << "training RL² (" << run.cfg.algo << ") on " << run.cfg.env.describe() << ": " << run.cfg.iterations
        << " iterations x " << run.cfg.trials_per_iter() << " trials ("
        << run.cfg.trials_per_iter() * run.cfg.env.trial_length() << " steps), GRU " << run.cfg.hidden << ", seed "
        << run.cfg.seed << ", run dir " << dir << "\n";
  if (comm.size() > 1) {
    human << "ranks: " << comm.describe() << "; each plays and trains on its share of every batch";
    if (device == Device::kCuda)
      human << " (on the GPU the numbers repeat for this rank count; they equal one process's on the CPU, "
               "docs/scaling.md)";
    human << "\n";
  }
  RunOptions opt;
  opt.dir = dir;
  opt.checkpoint_every = std::max<int64_t>(1, f.checkpoint_every);
  opt.max_seconds = 60.0 * f.max_minutes;
  opt.eval_every = f.eval_every;
  opt.eval_instances = f.eval_instances;
  opt.provenance = provenance(device);
  opt.comm = &comm;
  {
    // SIGINT/SIGTERM (Ctrl-C, a scheduler's preemption): train_run finishes the iteration in flight,
    // checkpoints it and throws Interrupted, which run_cli turns into one line and exit 128 + signal.
    const StopSignals stop;
    opt.stop = &stop.received();
    train_run(*learner, run.cfg, opt, comm.rank() == 0 ? std::cerr : quiet, isatty(fileno(stderr)) != 0);
  }
  run.state = learner->state();
  if (comm.rank() == 0) export_policy((fs::path(dir) / "policy.safetensors").string(), run.cfg, run.state);
  run.source = dir;
  human << "trained " << run.state.iteration << " iterations in " << static_cast<int>(run.state.elapsed_seconds)
        << " s; policy exported to " << (fs::path(dir) / "policy.safetensors").string() << "\n";
  return Trained{std::move(run), std::move(learner), std::move(opt.provenance)};
}

int run_train(const GlobalFlags& g, const TrainFlags& f) {
  const Trained trained = run_training(g, f, g.human());
  const LoadedRun& run = trained.run;
  if (g.json()) {
    nlohmann::json j = config_to_json(run.cfg);
    j["run_dir"] = run.source;
    j["iterations_done"] = run.state.iteration;
    j["seconds"] = run.state.elapsed_seconds;
    j["provenance"] = trained.provenance;
    std::cout << j.dump() << "\n";
  }
  return 0;
}

int run_eval(const GlobalFlags& g, const EvalFlags& f) {
  apply_threads(g);
  RL2_REQUIRE(!f.checkpoint.empty(), "eval needs --checkpoint DIR (a run directory or a .safetensors file)");
  RL2_REQUIRE(f.instances >= 1, "--instances must be at least 1 (got " + std::to_string(f.instances) + ")");
  std::string note;
  const LoadedRun run = load_run(f.checkpoint);
  const Device device = train_device(g, &note);
  TrainConfig cfg = run.cfg;
  if (f.seed_given) cfg.seed = g.seed;
  const bool maze = cfg.env.kind == EnvKind::kMaze;
  RL2_REQUIRE(f.video.empty() || maze,
              "--video is for maze runs only (" + run.source + " is a " + cfg.env.name() + " run)");
  if (!f.video.empty()) {
    std::error_code ec;
    fs::create_directories(f.video, ec);
    RL2_REQUIRE(fs::is_directory(f.video), "--video: cannot create the directory " + f.video);
  }
  g.human() << note << "\n";
  // Per trial of the largest evaluation batch: the env, a network step's input and caches, the GRU state.
  const EnvConfig biggest = maze ? maze_eval_env(cfg.env, f.settings == "both") : cfg.env;
  require_host_memory(static_cast<double>(std::min<int64_t>(f.instances, 4096)),
                      8.0 * cfg.hidden + 4.0 * biggest.bytes_per_trial() +
                          4.0 * static_cast<double>(cfg.input_layout().size() + cfg.policy_shape().cache_floats_per_step()),
                      "--instances");
  // Over ranks (mpirun) each plays its share of the instances; rank 0 writes and prints.
  Comm& comm = world();
  auto learner = make_learner(device, cfg, comm);
  learner->set_state(run.state);
  nlohmann::json e;
  std::string table;
  if (maze) {
    e = maze_eval(*learner, f.instances, cfg.seed, g.human(), &table, f.settings == "both");
  } else {
    e = eval_json(cfg.env, learner->evaluate(f.instances, kEvalStream), cfg.seed);
  }
  e["checkpoint"] = run.source;
  e["iteration"] = run.state.iteration;
  e["provenance"] = provenance(device);
  if (!f.video.empty()) {
    constexpr int64_t kVideoTrials = 3;
    const EnvConfig small = maze_eval_env(cfg.env, false);
    const EvalResult r = learner->evaluate(small, kVideoTrials, kEvalStream, true);
    if (comm.rank() != 0) return 0;
    const int64_t files = write_maze_videos(f.video, small.maze, cfg.seed, kEvalStream, kVideoTrials, r.actions);
    g.human() << "video: " << files << " PNG files of the first " << kVideoTrials << " evaluation trials ("
              << small.describe() << ") in " << f.video << "\n";
    e["video"] = f.video;
  }
  if (comm.rank() != 0) return 0;
  if (g.json()) {
    std::cout << e.dump() << "\n";
    return 0;
  }
  if (maze) {
    std::cout << table;
  } else {
    print_eval(std::cout, e);
  }
  std::cout << provenance_line(e["provenance"]) << "\n";
  return 0;
}

int run_export(const GlobalFlags& g, const ExportFlags& f) {
  (void)g;
  RL2_REQUIRE(f.format == "safetensors" || f.format == "onnx",
              "unknown export --format '" + f.format + "' (expected safetensors or onnx)");
  RL2_REQUIRE(!f.checkpoint.empty(), "export needs --checkpoint DIR");
  RL2_REQUIRE(!f.out.empty(), "export needs --out FILE");
  // The file is written whole to a temporary beside --out and renamed over it (write_file_atomic), so a
  // failure leaves no partial file; a bad --out is refused before anything is read.
  std::error_code ec;
  const fs::path out_dir = fs::path(f.out).parent_path().empty() ? fs::path(".") : fs::path(f.out).parent_path();
  RL2_REQUIRE(fs::is_directory(out_dir, ec), "cannot write --out " + f.out + ": " + out_dir.string() +
                                                  (fs::exists(out_dir, ec) ? " is not a directory" : " does not exist"));
  RL2_REQUIRE(!fs::is_directory(f.out, ec), "cannot write --out " + f.out + ": it is a directory");
  const LoadedRun run = load_run(f.checkpoint);
  const std::string bytes =
      f.format == "onnx"
          ? encode_onnx_policy(run.cfg.policy_shape(), network_tensors(run.cfg, run.state), "policy.", network_metadata(run.cfg))
          : encode_safetensors(network_tensors(run.cfg, run.state), network_metadata(run.cfg));
  try {
    write_file_atomic(f.out, bytes);
  } catch (const Error& e) {
    throw InputError("cannot write --out " + f.out + ": " + e.what());
  }
  std::cerr << "exported " << run.source << " (iteration " << run.state.iteration << ") as " << f.format << " to "
            << f.out << "\n";
  return 0;
}

int run_default_job(const GlobalFlags& g, const TrainFlags& f, int64_t instances) {
  std::ostream& human = g.human();
  RL2_REQUIRE(instances >= 1, "--instances must be at least 1 (got " + std::to_string(instances) + ")");
  const Trained trained = run_training(g, f, human);
  if (trained.run.cfg.env.kind == EnvKind::kMaze) {
    // Table 3 beside the paper's; no classical baselines exist for the maze.
    std::string table;
    nlohmann::json e = maze_eval(*trained.learner, instances, trained.run.cfg.seed, human, &table);
    e["run_dir"] = trained.run.source;
    e["provenance"] = trained.provenance;
    const fs::path dir(trained.run.source);
    write_file_atomic((dir / "table3.json").string(), e.dump(1) + "\n");
    write_file_atomic((dir / "table3.md").string(), table);
    human << table << "written to " << (dir / "table3.md").string() << " and table3.json\n"
          << provenance_line(trained.provenance) << "\n";
    if (g.json()) std::cout << e.dump() << "\n";
    return 0;
  }
  const std::vector<double> rl2_totals = trained.learner->evaluate(instances, kEvalStream);
  nlohmann::json e = eval_json(trained.run.cfg.env, rl2_totals, trained.run.cfg.seed);
  e["run_dir"] = trained.run.source;
  print_eval(human, e);
  human << "classical baselines on the same " << instances << " instances:\n";
  BaselinesFlags bf;
  bf.env = f.env;
  bf.instances = instances;
  if (g.json()) {
    // Capture the baselines' JSON and join it with the RL² result in one object.
    std::stringstream captured;
    auto* old = std::cout.rdbuf(captured.rdbuf());
    const int rc = run_baselines(g, bf, &rl2_totals);
    std::cout.rdbuf(old);
    nlohmann::json out;
    out["rl2"] = e;
    out["baselines"] = nlohmann::json::parse(captured.str());
    // One provenance for the whole job, at the top: this process's, with the backend RL² trained and
    // evaluated on (the classical baselines always run on the CPU).
    out["baselines"].erase("provenance");
    out["provenance"] = trained.provenance;
    std::cout << out.dump() << "\n";
    return rc;
  }
  const int rc = run_baselines(g, bf, &rl2_totals);
  human << provenance_line(trained.provenance) << "\n";
  return rc;
}

}  // namespace rl2
