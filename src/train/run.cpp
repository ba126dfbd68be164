// The training loop's bookkeeping over a run directory: run.json with its provenance, metrics.jsonl,
// progress with ETA, held-out evaluations, checkpoints on schedule and on signals, the non-finite stop.
#include "rl2/train/run.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <tuple>

#include "rl2/core/check.hpp"
#include "rl2/core/rng.hpp"
#include "rl2/stats/stats.hpp"
#include "rl2/train/tensorboard_log.hpp"

namespace fs = std::filesystem;

namespace rl2 {
namespace {

std::string format_duration(double s) {
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s / 3600), static_cast<int>(s / 60) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s / 60), static_cast<int>(s) % 60);
  }
  return buf;
}

std::string signal_name(int sig) {
  if (sig == SIGINT) return "SIGINT";
  if (sig == SIGTERM) return "SIGTERM";
  return "signal " + std::to_string(sig);
}


// run.json: the resolved config, and under "provenance" one entry per process that trained this run,
// each with the iteration it started from. A list rather than the latest process alone: a run resumed on
// another machine or build depends on every segment. Entries of earlier processes are kept only when
// they started before this one (start_iteration < this start), i.e. when their iterations are in the
// checkpoint being continued; a start that crashed before its first checkpoint, or an older run in a
// reused directory, contributed nothing and is dropped. An unreadable old run.json keeps no history.
nlohmann::json run_json(const fs::path& path, const TrainConfig& cfg, const nlohmann::json& provenance,
                        int64_t start_iter) {
  nlohmann::json history = nlohmann::json::array();
  if (std::ifstream in(path); in) {
    try {
      const nlohmann::json old = nlohmann::json::parse(in);
      if (old.contains("provenance") && old["provenance"].is_array())
        for (const auto& p : old["provenance"])
          if (p.is_object() && p.value("start_iteration", start_iter) < start_iter) history.push_back(p);
    } catch (const nlohmann::json::exception&) {
    }
  }
  if (!provenance.is_null()) {
    nlohmann::json p = provenance;
    p["start_iteration"] = start_iter;
    history.push_back(std::move(p));
  }
  nlohmann::json j = config_to_json(cfg);
  if (!history.empty()) j["provenance"] = std::move(history);
  return j;
}

// Keeps only the metrics of iterations the checkpoint has (later ones are replayed identically), opens
// metrics.jsonl for appending, and the TensorBoard event file that follows it.
void open_metrics(const fs::path& metrics_path, int64_t iteration, std::ofstream& metrics,
                  std::optional<TensorBoardLog>& tensorboard, const fs::path& dir, double elapsed) {
  std::vector<std::string> kept;
  {
    std::ifstream in(metrics_path);
    std::string line;
    while (std::getline(in, line)) {
      try {
        if (nlohmann::json::parse(line).at("iteration").get<int64_t>() <= iteration) kept.push_back(line);
      } catch (const nlohmann::json::exception&) {
        break;  // a torn last line from a crash
      }
    }
  }
  std::string prefix;
  for (const auto& l : kept) prefix += l + "\n";
  write_file_atomic(metrics_path.string(), prefix);
  metrics.open(metrics_path, std::ios::app);
  RL2_REQUIRE(metrics.good(), "cannot write " + metrics_path.string());
  // The TensorBoard event file follows metrics.jsonl: rewritten from the kept lines, appended with each.
  tensorboard.emplace(dir.string(), kept, elapsed);
}

}  // namespace

void train_run(Learner& learner, const TrainConfig& cfg, const RunOptions& opt, std::ostream& log, bool tty) {
  Comm& comm = opt.comm != nullptr ? *opt.comm : single_process();
  const bool writer = comm.rank() == 0;  // every other rank trains in step and writes nothing
  const fs::path dir(opt.dir);
  const int64_t start_iter = learner.state().iteration;
  const fs::path run_path = dir / "run.json";
  const fs::path metrics_path = dir / "metrics.jsonl";
  std::ofstream metrics;
  std::optional<TensorBoardLog> tensorboard;
  if (writer) {
    fs::create_directories(dir);
    write_file_atomic(run_path.string(), run_json(run_path, cfg, opt.provenance, start_iter).dump(1) + "\n");
    write_file_atomic((dir / "config.toml").string(), config_to_toml(cfg));
    open_metrics(metrics_path, learner.state().iteration, metrics, tensorboard, dir, learner.state().elapsed_seconds);
  }
  const auto t_start = std::chrono::steady_clock::now();
  auto last_line = t_start;
  const double elapsed0 = learner.state().elapsed_seconds;
  const std::string ckpt = (dir / "checkpoint.safetensors").string();
  int64_t saved = -1;  // the iteration this process last checkpointed
  auto save = [&](const TrainState& st) {
    if (writer) save_checkpoint(ckpt, cfg, st);
    saved = st.iteration;
  };
  for (;;) {
    // A stop request (the CLI's SIGINT/SIGTERM) is honoured here, between iterations: the iteration in
    // flight when it came has completed (an iteration cannot stop halfway), its metrics line is written,
    // so checkpointing it keeps metrics.jsonl and the checkpoint at the same iteration. A second signal
    // meanwhile changes nothing, and the save is atomic: a SIGKILL leaves the previous checkpoint whole.
    // Ranks agree: any rank's signal stops every rank after the same iteration (a launcher forwards a
    // signal to each rank, not at the same instant), and rank 0's clock is the run's (the time limit).
    const int sig = static_cast<int>(all_max(comm, opt.stop != nullptr ? opt.stop->load() : 0));
    if (comm.size() > 1) {
      TrainState st = learner.state();
      comm.broadcast(&st.elapsed_seconds, sizeof st.elapsed_seconds, 0);
      learner.set_state(st);
    }
    if (sig != 0) {
      const TrainState& st = learner.state();
      if (saved != st.iteration) save(st);
      // On a terminal, end the rewritten progress line (the last iteration's ends with a newline).
      if (tty && st.iteration > start_iter && st.iteration < cfg.iterations) log << "\n" << std::flush;
      throw Interrupted(sig, st.iteration,
                        "interrupted by " + signal_name(sig) + " after iteration " + std::to_string(st.iteration) +
                            "; checkpoint saved, continue with --resume " + opt.dir);
    }
    if (learner.state().iteration >= cfg.iterations) break;
    if (opt.max_seconds > 0.0 && learner.state().elapsed_seconds >= opt.max_seconds) {
      const TrainState& st = learner.state();
      if (saved != st.iteration) save(st);
      log << (tty && st.iteration > start_iter ? "\n" : "") << "time limit reached: " << format_duration(st.elapsed_seconds)
          << " of training after iteration " << st.iteration << " of " << cfg.iterations << "; checkpoint saved, --resume "
          << opt.dir << " continues\n" << std::flush;
      break;
    }
    const auto t0 = std::chrono::steady_clock::now();
    const IterationStats s = learner.iterate();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    TrainState st = learner.state();
    st.elapsed_seconds = elapsed0 + std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    learner.set_state(st);
    nlohmann::json m;
    m["iteration"] = st.iteration;  // iterations completed, 1-based
    m["env_steps"] = st.iteration * cfg.env.trial_length() * cfg.trials_per_iter();
    m["env_steps_per_s"] = static_cast<double>(s.env_steps) / secs;
    m["mean_return"] = s.mean_return;
    m["kl"] = s.update.kl;
    m["surrogate_gain"] = s.update.surrogate_gain;
    m["entropy"] = s.entropy;
    m["explained_variance"] = s.explained_variance;
    m[cfg.algo == "ppo" ? "epochs" : "line_search_steps"] = s.update.steps;
    m["status"] = update_status_name(s.update.status);
    m["cg_iterations"] = s.update.cg_iterations;
    m["rollout_logp_mismatch"] = s.rollout_mismatch;
    m["baseline_loss"] = std::isfinite(s.baseline_loss) ? nlohmann::json(s.baseline_loss) : nlohmann::json(nullptr);
    m["seconds"] = {{"rollout", s.seconds_rollout}, {"policy", s.seconds_policy}, {"baseline", s.seconds_baseline}};
    if (cfg.algo == "trpo") {  // the policy update's phases (trpo.hpp); the rest of "policy" is the advantages
      m["seconds"]["gradient"] = s.update.seconds_gradient;
      m["seconds"]["cg"] = s.update.seconds_cg;
      m["seconds"]["line_search"] = s.update.seconds_line_search;
    }
    if (opt.eval_every > 0 && (st.iteration % opt.eval_every == 0 || st.iteration == cfg.iterations)) {
      // Held-out return on the evaluation stream (the same instances as `eval`; for the maze, configurations
      // of their own as Table 3's, with the training's episodes and horizon): it reads the policy
      // and draws from its own trial ids, so the training's numbers do not change. Its time counts as
      // training wall time.
      EnvConfig heldout = cfg.env;
      if (heldout.kind == EnvKind::kMaze) heldout.maze.mazes = 0;  // fresh configurations, not the training pool
      const MeanStderr h = mean_stderr(learner.evaluate(heldout, opt.eval_instances, kEvalStream, false).totals);
      m["heldout_mean"] = h.mean;
      m["heldout_stderr"] = h.stderr_;
      m["heldout_instances"] = opt.eval_instances;
      st.elapsed_seconds = elapsed0 + std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
      learner.set_state(st);
    }
    m["wall_time"] = st.elapsed_seconds;
    if (writer) {
      metrics << m.dump() << "\n" << std::flush;
      tensorboard->append(m);
    }
    const bool last = st.iteration >= cfg.iterations;
    if (last || (st.iteration - start_iter) % opt.checkpoint_every == 0) save(st);

    const double done = static_cast<double>(st.iteration - start_iter);
    const double per_iter = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count() / done;
    char line[256];
    std::snprintf(line, sizeof line, "iter %lld/%lld  %.3g env-steps/s  return %.3f  KL %.4f  %s  ETA %s",
                  static_cast<long long>(st.iteration), static_cast<long long>(cfg.iterations), m["env_steps_per_s"].get<double>(),
                  s.mean_return, s.update.kl, update_status_name(s.update.status),
                  format_duration(per_iter * static_cast<double>(cfg.iterations - st.iteration)).c_str());
    if (tty) {
      log << "\r" << line << "\x1b[K" << (last ? "\n" : "") << std::flush;
    } else if (last || std::chrono::duration<double>(std::chrono::steady_clock::now() - last_line).count() >= 5.0 ||
               st.iteration == start_iter + 1) {
      log << line << "\n" << std::flush;
      last_line = std::chrono::steady_clock::now();
    }
    if (s.update.status == UpdateStatus::kNonFinite) {
      log << (tty ? "\n" : "") << "warning: iteration " << st.iteration << " skipped: " << s.update.reason << "\n";
      if (st.nonfinite_in_a_row >= opt.max_nonfinite) {
        if (saved != st.iteration) save(st);
        // Every rank counts the same iterations: the error is all ranks' at once.
        throw CollectiveError("training stopped: " + std::to_string(st.nonfinite_in_a_row) +
                                  " iterations in a row had a non-finite loss, gradient or KL (the parameters were "
                                  "left unchanged; checkpoint in " + opt.dir + ")",
                              1);
      }
    }
  }
}

}  // namespace rl2

