// The rl2-cuda command tree (DESIGN.md section 1), built with CLI11. Every error becomes one line on
// stderr and a non-zero exit: 2 for a usage or input problem, 1 for a failure while running.
#include "commands/cli.hpp"

#include <iostream>

#include "commands/common.hpp"
#include "rl2/core/check.hpp"
#include "rl2/train/run.hpp"

namespace rl2 {
namespace {

constexpr const char* kFooter = R"(Examples:
  rl2-cuda                                     default job: train RL² on bandits k=5, n=10, evaluate
  rl2-cuda --env maze --mazes 1000             train on 1000 mazes, evaluate Table 3 on held-out mazes
  rl2-cuda train --env mdp --episodes 10 --out runs/mdp10
  rl2-cuda train --env mdp --episodes 10 --hidden 64 --iterations 3000 --algo ppo --entropy-coef 0.03 \
      --ppo-epochs 4 --ppo-minibatches 8 --ppo-lr 0.002                  MDP recipe for a CPU: 145.3 in 25 min
  rl2-cuda eval --checkpoint runs/mdp10 --instances 1000 --format json
  rl2-cuda export --checkpoint runs/mdp10 --format safetensors --out policy.safetensors
  rl2-cuda export --checkpoint runs/mdp10 --format onnx --out policy.onnx     the policy step for onnxruntime
  rl2-cuda baselines --env bandit --arms 10 --episodes 100 --policy all
  rl2-cuda baselines --env mdp --episodes 25 --policy ucrl2 --format json
  rl2-cuda bench --env bandit --arms 5 --episodes 10 --sweep
  rl2-cuda render --env maze --size 5 --seed 3 --out maze.png --frames 8
  rl2-cuda reproduce --table 1 --cells n10k5,n10k10 --out reproduce   the paper's cells, resumable
  rl2-cuda info
Config files (--config run.toml) hold flags by name; flags of a subcommand go under its table, e.g.
  seed = 3
  [baselines]
  env = "mdp"
  episodes = 25
Unknown keys are an error. Global flags (--device --seed --format --threads --config) may also follow
the subcommand. Run `rl2-cuda <command> --help` for each command's flags.)";

// Reports an error and returns the exit status. One process: the line. Ranks: an error all ranks raised
// together (collective) is rank 0's line and every rank's status; any other is one rank's own, which the
// others cannot know of: its line, naming the rank, then the whole job ends (every rank exits non-zero).
int finish(const LaunchedRank& launched, const std::string& line, int code, bool collective) {
  if (launched.size <= 1 || (collective && launched.rank == 0)) std::cerr << line << "\n";
  if (launched.size <= 1 || collective) return code;
  std::cerr << line << " (rank " << launched.rank << " of " << launched.size << "; ending every rank)\n"
            << std::flush;
  world().abort(code);
  return code;  // not reached: abort ends the process
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"rl2-cuda: RL² (Duan et al. 2016) on batched bandit, tabular-MDP and maze simulators, CPU and CUDA.\n"
               "With no command: train RL² on the given task distribution, then evaluate it beside the "
               "classical baselines."};
  app.name("rl2-cuda");
  app.footer(kFooter);
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.set_config("--config", "", "read flags from a TOML file; unknown keys are an error");
  app.fallthrough();
  app.require_subcommand(0, 1);

  GlobalFlags g;
  add_global_flags(app, g);
  TrainFlags bare;  // the bare command: train, then evaluate beside the baselines
  add_train_flags(app, bare);
  int64_t bare_instances = 1000;
  app.add_option("--instances", bare_instances, "held-out evaluation instances")->capture_default_str();

  CLI::App* train = app.add_subcommand("train", "train RL² (TRPO on a GRU policy) and export the policy");
  TrainFlags tf;
  add_train_flags(*train, tf);

  CLI::App* eval = app.add_subcommand("eval", "evaluate a trained policy on held-out instances (disjoint seed stream)");
  EvalFlags ef;
  eval->add_option("--checkpoint", ef.checkpoint, "run directory or .safetensors file")->required();
  eval->add_option("--instances", ef.instances, "held-out evaluation instances")->capture_default_str();
  eval->add_option("--video", ef.video, "maze: write the first 3 evaluation trials as PNG frames into this directory");
  eval->add_option("--settings", ef.settings,
                   "maze: both (5x5 and 9x9, Table 3) or small (5x5 only; the 9x9 setting takes most of the time)")
      ->check(CLI::IsMember({"both", "small"}))
      ->capture_default_str();

  CLI::App* exp = app.add_subcommand("export", "export a trained policy: safetensors (policy and baseline, torch.nn.GRU "
                                                "names) or ONNX (the policy's one-step function)");
  ExportFlags xf;
  exp->add_option("--checkpoint", xf.checkpoint, "run directory or .safetensors file")->required();
  exp->add_option("--format", xf.format, "safetensors or onnx (docs/interop.md)")->capture_default_str();
  exp->add_option("--out", xf.out, "output file")->required();

  CLI::App* base = app.add_subcommand("baselines", "classical policies of the paper's Tables 1 and 2, tuned by grid search");
  BaselinesFlags bf;
  add_env_flags(*base, bf.env);
  base->add_option("--policy", bf.policy,
                   "all, or one of: bandit: random gittins ts ots ucb1 eps-greedy greedy; "
                   "mdp: random psrl opsrl ucrl2 beb eps-greedy greedy")
      ->capture_default_str();
  base->add_option("--instances", bf.instances, "evaluation instances (the RL² evaluation's, same seeds)")
      ->capture_default_str();
  base->add_option("--tune-instances", bf.tune_instances,
                   "separate instances for the hyperparameter grid search (default: as many as --instances; 0: no tuning)");

  CLI::App* bench = app.add_subcommand("bench", "throughput of the simulators on the CPU and the GPU, side by side");
  BenchFlags bn;
  add_env_flags(*bench, bn.env);
  bench->add_option("--trials", bn.trials, "trials stepped in parallel")->capture_default_str();
  bench->add_flag("--sweep", bn.sweep, "sweep the number of trials from --sweep-min to --sweep-max (x4 steps)");
  bench->add_option("--sweep-min", bn.sweep_min, "smallest batch of the sweep")->capture_default_str();
  bench->add_option("--sweep-max", bn.sweep_max, "largest batch of the sweep")->capture_default_str();
  bench->add_option("--cpu-budget", bn.cpu_budget_s, "skip CPU sizes estimated to take longer than this (seconds)")
      ->capture_default_str();
  bench->add_option("--train-iterations", bn.train_iterations,
                    "timed TRPO iterations per device (after one warm-up) for the training rows; 0 skips them")
      ->capture_default_str();
  bench->add_option("--ranks", bn.ranks,
                    "instead: data-parallel scaling of CPU training over these rank counts (e.g. 1,2; launches "
                    "mpirun), strong and weak, with projected GPU rows (docs/scaling.md)")
      ->delimiter(',');
  bench->add_option("--rank-steps", bn.rank_steps,
                    "with --ranks: one rank's steps per iteration (weak scaling; strong uses this x the largest R)")
      ->capture_default_str();

  CLI::App* repro = app.add_subcommand(
      "reproduce", "train and evaluate the paper's RL² cells with their recipes, beside the paper and our baselines");
  ReproduceFlags rp;
  repro->add_option("--table", rp.table, "the paper's table: 1 (bandits), 2 (tabular MDPs) or 3 (maze)")->required();
  repro->add_option("--cells", rp.cells,
                    "comma-separated cells (default: all of the table): 1: n10k5 n10k10 n10k50 n100k5 n100k10 n100k50 "
                    "n500k5 n500k10 n500k50; 2: mdp-n10 mdp-n25 mdp-n50 mdp-n75 mdp-n100; 3: maze5");
  repro->add_option("--budget-minutes", rp.budget_minutes,
                    "training wall time per cell and seed (default: the cell's recipe, 10-60; 0: no limit, the recipe's "
                    "iterations); a run that stopped at it continues when a later call allows more");
  repro->add_option("--seeds", rp.seeds, "training seeds --seed, --seed+1, ... (default: the cell's, 3 for n=10 bandits, else 1)");
  repro->add_option("--instances", rp.instances, "held-out instances (default: the cell's, 4000 for n=10 bandits, else 1000)");
  repro->add_flag("--no-train", rp.no_train,
                  "train nothing: evaluate the runs in --out as they are (a run stopped early is marked) and write the tables");
  repro->add_option("--out", rp.out, "results: <out>/<cell>/seed<S> run directories, <out>/table<N>.md and .json")
      ->capture_default_str();

  CLI::App* info = app.add_subcommand("info", "version, build flags, CUDA/cuDNN at build time, devices at run time");

  CLI::App* render = app.add_subcommand("render", "maze views as PNG: first-person frames of a random trajectory, top view");
  RenderFlags rf;
  rf.env.env = "maze";
  add_env_flags(*render, rf.env);
  render->add_option("--out", rf.out, "writes <stem>_fp_000.png ... and <stem>_top.png beside this name")
      ->capture_default_str();
  render->add_option("--frames", rf.frames, "first-person frames (the first observation, then one per step)")
      ->capture_default_str();
  render->add_option("--policy", rf.policy, "who picks the actions: random (seeded)")->capture_default_str();

  // Under an MPI launcher every rank parses the same flags: rank 0 alone reports what they all found.
  const LaunchedRank launched = launched_rank();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return launched.rank == 0 ? app.exit(e) : 0;  // --help, --version
    if (launched.rank == 0) std::cerr << "rl2-cuda: error: " << e.what() << " (see rl2-cuda --help)\n";
    return 2;
  }

  try {
    // Training, evaluation and the baselines run over ranks; every other command is one process's work.
    if (launched.size > 1 && !*train && !*eval && !*base)
      throw CollectiveError("only train, eval and baselines run over several ranks (mpirun -np " +
                                std::to_string(launched.size) + "); run this command as one process",
                            2);
    if (*base) return run_baselines(g, bf);
    if (*bench) return bn.ranks.empty() ? run_bench(g, bn) : run_bench_ranks(g, bn);
    if (*info) return run_info(g);
    if (*train) {
      tf.seed = g.seed;
      return run_train(g, tf);
    }
    if (*eval) {
      ef.seed_given = app.count("--seed") > 0;
      return run_eval(g, ef);
    }
    if (*exp) return run_export(g, xf);
    if (*render) return run_render(g, rf);
    if (*repro) return run_reproduce(g, rp);
    // The default job: train on the given setting, evaluate, and compare with the classical baselines.
    bare.seed = g.seed;
    return run_default_job(g, bare, bare_instances);
  } catch (const Interrupted& e) {
    // SIGINT/SIGTERM during training: the checkpoint is saved; exit as a shell reports death by the
    // signal (128 + its number: 130 for SIGINT, 143 for SIGTERM), so schedulers and scripts see it.
    // Ranks stop together (train_run agrees), so rank 0 alone says so.
    return finish(launched, "rl2-cuda: " + std::string(e.what()), 128 + e.signal(), true);
  } catch (const CollectiveError& e) {
    return finish(launched, "rl2-cuda: error: " + std::string(e.what()), e.code(), true);
  } catch (const InputError& e) {
    return finish(launched, "rl2-cuda: error: " + std::string(e.what()), 2, false);
  } catch (const Error& e) {
    return finish(launched,
                  "rl2-cuda: error: " + std::string(e.what()) + (e.where().empty() ? "" : " [at " + e.where() + "]"), 1,
                  false);
  } catch (const std::exception& e) {
    return finish(launched, "rl2-cuda: error: " + std::string(e.what()), 1, false);
  }
}

}  // namespace rl2
