// Run directories: configs to and from JSON, torch-named tensors, atomic checkpoints, resume, and the
// training loop's bookkeeping (metrics.jsonl, progress, the non-finite stop).
#include "rl2/train/run.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <tuple>

#include "rl2/core/check.hpp"
#include "rl2/core/rng.hpp"
#include "rl2/policy/network.hpp"
#include "rl2/stats/stats.hpp"
#include "rl2/train/tensorboard_log.hpp"

namespace fs = std::filesystem;

namespace rl2 {
namespace {

constexpr const char* kFormat = "rl2-cuda/1";

template <class T>
T get(const nlohmann::json& j, const char* key) {
  RL2_REQUIRE(j.is_object() && j.contains(key), std::string("run configuration lacks '") + key + "'");
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw InputError(std::string("run configuration has a malformed '") + key + "'");
  }
}

// The torch-named tensors of one network (torch.nn.GRU's names, then the encoder's Conv2d/Linear names
// under `encoder.`): name, shape, offset in the flat parameter vector.
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset;
  int64_t count() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

std::vector<TensorSpec> network_specs(const NetShape& shape) {
  const GruLayout l = gru_layout(shape.gru);
  const int64_t H = shape.gru.hidden, I = shape.gru.input, O = shape.gru.out;
  std::vector<TensorSpec> specs = {
      {"gru.weight_ih_l0", {3 * H, I}, l.weight_ih}, {"gru.weight_hh_l0", {3 * H, H}, l.weight_hh},
      {"gru.bias_ih_l0", {3 * H}, l.bias_ih},        {"gru.bias_hh_l0", {3 * H}, l.bias_hh},
      {"head.weight", {O, H}, l.head_w},             {"head.bias", {O}, l.head_b}};
  if (shape.encoder) {
    const EncoderShape& e = shape.enc;
    const EncoderLayout el = encoder_layout(e);
    const int64_t F = e.filters, K = e.kernel, at = shape.gru_size();
    const std::vector<TensorSpec> enc = {
        {"encoder.conv1.weight", {F, e.channels, K, K}, el.conv1_w}, {"encoder.conv1.bias", {F}, el.conv1_b},
        {"encoder.conv2.weight", {F, F, K, K}, el.conv2_w},          {"encoder.conv2.bias", {F}, el.conv2_b},
        {"encoder.image_fc.weight", {e.image_fc, e.flat()}, el.image_fc_w},
        {"encoder.image_fc.bias", {e.image_fc}, el.image_fc_b},
        {"encoder.extra_fc.weight", {e.extra_fc, e.extra_in}, el.extra_fc_w},
        {"encoder.extra_fc.bias", {e.extra_fc}, el.extra_fc_b}};
    for (TensorSpec t : enc) {
      t.offset += at;
      specs.push_back(std::move(t));
    }
  }
  return specs;
}

void add_network(std::vector<TensorF32>& out, const std::string& prefix, const NetShape& shape, const std::vector<float>& p) {
  RL2_CHECK(static_cast<int64_t>(p.size()) == shape.size(), "parameter vector size does not match its layout");
  for (const TensorSpec& t : network_specs(shape))
    out.push_back(TensorF32{prefix + t.name, t.shape,
                            std::vector<float>(p.begin() + t.offset, p.begin() + t.offset + t.count())});
}

std::vector<float> read_network(const SafetensorsFile& f, const std::string& prefix, const NetShape& shape,
                                const std::string& source) {
  std::vector<float> p(static_cast<size_t>(shape.size()));
  for (const TensorSpec& spec : network_specs(shape)) {
    const TensorF32* t = f.find(prefix + spec.name);
    RL2_REQUIRE(t != nullptr, source + ": tensor '" + prefix + spec.name + "' is missing");
    RL2_REQUIRE(t->shape == spec.shape,
                source + ": tensor '" + prefix + spec.name + "' has the wrong shape for this configuration");
    std::copy(t->data.begin(), t->data.end(), p.begin() + spec.offset);
  }
  return p;
}

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

}  // namespace

nlohmann::json env_to_json(const EnvConfig& cfg) {
  nlohmann::json j;
  j["env"] = cfg.name();
  if (cfg.kind == EnvKind::kBandit) {
    j["arms"] = cfg.bandit.arms;
    j["episodes"] = cfg.bandit.episodes;
  } else if (cfg.kind == EnvKind::kMdp) {
    j["states"] = cfg.mdp.states;
    j["actions"] = cfg.mdp.actions;
    j["horizon"] = cfg.mdp.horizon;
    j["episodes"] = cfg.mdp.episodes;
  } else {
    j["size"] = cfg.maze.size;
    j["mazes"] = cfg.maze.mazes;
    j["horizon"] = cfg.maze.horizon;
    j["episodes"] = cfg.maze.episodes;
    // Written only for the ladder's corridor, so the paper's mazes keep the bytes of earlier versions.
    if (cfg.maze.layout != Maze::kPrim) j["layout"] = maze_layout_name(cfg.maze.layout);
  }
  return j;
}

EnvConfig env_from_json(const nlohmann::json& j) {
  EnvConfig c;
  c.kind = parse_env_kind(get<std::string>(j, "env"));
  if (c.kind == EnvKind::kBandit) {
    c.bandit = {get<int32_t>(j, "arms"), get<int32_t>(j, "episodes")};
  } else if (c.kind == EnvKind::kMdp) {
    c.mdp = {get<int32_t>(j, "states"), get<int32_t>(j, "actions"), get<int32_t>(j, "horizon"), get<int32_t>(j, "episodes")};
  } else {
    c.maze = {get<int32_t>(j, "size"), get<int32_t>(j, "episodes"), get<int32_t>(j, "horizon"), get<int32_t>(j, "mazes"),
              j.contains("layout") ? parse_maze_layout(get<std::string>(j, "layout")) : Maze::kPrim};
  }
  c.validate();
  return c;
}

nlohmann::json config_to_json(const TrainConfig& c) {
  nlohmann::json j = env_to_json(c.env);
  j["hidden"] = c.hidden;
  j["iterations"] = c.iterations;
  j["steps_per_iter"] = c.steps_per_iter;
  j["algo"] = c.algo;
  j["max_kl"] = c.trpo.max_kl;
  j["cg_iters"] = c.trpo.cg_iterations;
  j["cg_damping"] = c.trpo.cg_damping;
  j["fvp_subsample"] = c.trpo.fvp_subsample;
  j["gamma"] = c.gamma;
  j["gae_lambda"] = c.gae_lambda;
  j["entropy_coef"] = c.entropy_coef;
  j["ppo_clip"] = c.ppo.clip;
  j["ppo_epochs"] = c.ppo.epochs;
  j["ppo_minibatches"] = c.ppo.minibatches;
  j["ppo_lr"] = c.ppo.lr;
  j["ppo_target_kl"] = c.ppo.target_kl;
  j["baseline_epochs"] = c.baseline_epochs;
  j["baseline_minibatches"] = c.baseline_minibatches;
  j["baseline_lr"] = c.baseline_lr;
  j["seed"] = c.seed;
  return j;
}

// The flags of config_to_json under their command-line names (max_kl -> max-kl), so `--config` reads
// them back; the baseline's learning rate has no flag and stays in run.json only. nlohmann::json
// prints doubles as the shortest decimal that reads back as the same value.
std::string config_to_toml(const TrainConfig& c) {
  const nlohmann::json j = config_to_json(c);
  std::ostringstream o;
  o << "# Resolved configuration of this run: `rl2-cuda train --config config.toml --out DIR` repeats it.\n"
    << "seed = " << j.at("seed").dump() << "\n\n[train]\n";
  for (const auto& [key, value] : j.items()) {
    if (key == "seed" || key == "baseline_lr") continue;
    std::string flag = key;
    std::replace(flag.begin(), flag.end(), '_', '-');
    o << flag << " = " << value.dump() << "\n";
  }
  return o.str();
}

TrainConfig config_from_json(const nlohmann::json& j) {
  TrainConfig c;
  c.env = env_from_json(j);
  c.hidden = get<int32_t>(j, "hidden");
  c.iterations = get<int64_t>(j, "iterations");
  c.steps_per_iter = get<int64_t>(j, "steps_per_iter");
  c.algo = get<std::string>(j, "algo");
  c.trpo.max_kl = get<double>(j, "max_kl");
  c.trpo.cg_iterations = get<int32_t>(j, "cg_iters");
  c.trpo.cg_damping = get<double>(j, "cg_damping");
  c.gamma = get<double>(j, "gamma");
  c.gae_lambda = get<double>(j, "gae_lambda");
  // Keys added after the first runs were written read with their defaults when absent.
  c.entropy_coef = j.value("entropy_coef", 0.0);
  c.trpo.fvp_subsample = j.value("fvp_subsample", 1.0);  // runs before it used every trial
  c.ppo.clip = j.value("ppo_clip", c.ppo.clip);
  c.ppo.epochs = j.value("ppo_epochs", c.ppo.epochs);
  c.ppo.minibatches = j.value("ppo_minibatches", c.ppo.minibatches);
  c.ppo.lr = j.value("ppo_lr", c.ppo.lr);
  c.ppo.target_kl = j.value("ppo_target_kl", c.ppo.target_kl);
  c.baseline_epochs = get<int32_t>(j, "baseline_epochs");
  c.baseline_minibatches = get<int32_t>(j, "baseline_minibatches");
  c.baseline_lr = get<double>(j, "baseline_lr");
  c.seed = get<uint64_t>(j, "seed");
  c.validate();
  return c;
}

std::vector<TensorF32> network_tensors(const TrainConfig& cfg, const TrainState& st) {
  std::vector<TensorF32> t;
  add_network(t, "policy.", cfg.policy_shape(), st.policy);
  add_network(t, "baseline.", cfg.baseline_shape(), st.baseline);
  return t;
}

std::map<std::string, std::string> network_metadata(const TrainConfig& cfg) {
  return {{"format", kFormat},
          {"env", cfg.env.name()},
          {"input_layout", cfg.input_layout().describe()},
          {"config", config_to_json(cfg).dump()}};
}

void export_policy(const std::string& path, const TrainConfig& cfg, const TrainState& st) {
  write_safetensors(path, network_tensors(cfg, st), network_metadata(cfg));
}

void save_checkpoint(const std::string& path, const TrainConfig& cfg, const TrainState& st) {
  std::vector<TensorF32> t = network_tensors(cfg, st);
  for (auto [name, adam] : {std::pair{"baseline", &st.baseline_adam}, std::pair{"policy", &st.policy_adam}}) {
    const int64_t n = static_cast<int64_t>(adam->m.size());
    if (n == 0) continue;  // never stepped (the policy's moments exist only with PPO)
    t.push_back(TensorF32{std::string("trainer.") + name + "_adam_m", {n}, adam->m});
    t.push_back(TensorF32{std::string("trainer.") + name + "_adam_v", {n}, adam->v});
  }
  auto meta = network_metadata(cfg);
  nlohmann::json s;
  s["iteration"] = st.iteration;
  s["adam_t"] = st.baseline_adam.t;
  s["policy_adam_t"] = st.policy_adam.t;
  s["return_mean"] = st.return_mean;
  s["return_std"] = st.return_std;
  s["nonfinite_in_a_row"] = st.nonfinite_in_a_row;
  s["elapsed_seconds"] = st.elapsed_seconds;
  meta["trainer_state"] = s.dump();
  write_safetensors(path, t, meta);
}

LoadedRun load_run(const std::string& dir_or_file) {
  std::error_code ec;
  std::string file = dir_or_file;
  if (fs::is_directory(dir_or_file, ec)) {
    file = (fs::path(dir_or_file) / "checkpoint.safetensors").string();
    if (!fs::exists(file, ec)) file = (fs::path(dir_or_file) / "policy.safetensors").string();
    RL2_REQUIRE(fs::exists(file, ec), dir_or_file + " holds no checkpoint.safetensors or policy.safetensors");
  }
  const SafetensorsFile f = read_safetensors(file);
  auto it = f.metadata.find("format");
  RL2_REQUIRE(it == f.metadata.end() || it->second.rfind("rl2-cuda/", 0) != 0 || it->second == kFormat,
              file + ": written in format " + it->second + ", which this rl2-cuda does not read (it reads " +
                  std::string(kFormat) + "); use the rl2-cuda version that wrote it");
  RL2_REQUIRE(it != f.metadata.end() && it->second == kFormat, file + ": not an rl2-cuda file (metadata format is not " +
                                                                   std::string(kFormat) + ")");
  it = f.metadata.find("config");
  RL2_REQUIRE(it != f.metadata.end(), file + ": metadata has no config");
  LoadedRun r;
  r.source = file;
  try {
    r.cfg = config_from_json(nlohmann::json::parse(it->second));
  } catch (const nlohmann::json::exception&) {
    throw InputError(file + ": metadata config is not valid JSON");
  }
  r.state.policy = read_network(f, "policy.", r.cfg.policy_shape(), file);
  r.state.baseline = read_network(f, "baseline.", r.cfg.baseline_shape(), file);
  it = f.metadata.find("trainer_state");
  if (it != f.metadata.end()) {  // a checkpoint, not a bare export
    nlohmann::json s;
    try {
      s = nlohmann::json::parse(it->second);
    } catch (const nlohmann::json::exception&) {
      throw InputError(file + ": metadata trainer_state is not valid JSON");
    }
    r.state.iteration = get<int64_t>(s, "iteration");
    r.state.baseline_adam.t = get<int64_t>(s, "adam_t");
    r.state.policy_adam.t = s.value("policy_adam_t", int64_t{0});
    r.state.return_mean = get<double>(s, "return_mean");
    r.state.return_std = get<double>(s, "return_std");
    r.state.nonfinite_in_a_row = get<int32_t>(s, "nonfinite_in_a_row");
    r.state.elapsed_seconds = get<double>(s, "elapsed_seconds");
    for (auto [name, adam, size] : {std::tuple{"baseline", &r.state.baseline_adam, r.state.baseline.size()},
                                    std::tuple{"policy", &r.state.policy_adam, r.state.policy.size()}}) {
      if (adam->t == 0) continue;  // never stepped: no moments saved
      for (auto [suffix, dst] : {std::pair{"_adam_m", &adam->m}, std::pair{"_adam_v", &adam->v}}) {
        const std::string tname = std::string("trainer.") + name + suffix;
        const TensorF32* t = f.find(tname);
        RL2_REQUIRE(t && t->data.size() == size, file + ": tensor '" + tname + "' is missing or has the wrong size");
        *dst = t->data;
      }
    }
  }
  return r;
}

namespace {

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

}  // namespace

void train_run(Learner& learner, const TrainConfig& cfg, const RunOptions& opt, std::ostream& log, bool tty) {
  const fs::path dir(opt.dir);
  fs::create_directories(dir);
  const int64_t start_iter = learner.state().iteration;
  const fs::path run_path = dir / "run.json";
  write_file_atomic(run_path.string(), run_json(run_path, cfg, opt.provenance, start_iter).dump(1) + "\n");
  write_file_atomic((dir / "config.toml").string(), config_to_toml(cfg));
  // Keep only metrics of iterations the checkpoint has; later ones are replayed identically.
  const fs::path metrics_path = dir / "metrics.jsonl";
  std::vector<std::string> kept;
  {
    std::ifstream in(metrics_path);
    std::string line;
    while (std::getline(in, line)) {
      try {
        if (nlohmann::json::parse(line).at("iteration").get<int64_t>() <= learner.state().iteration) kept.push_back(line);
      } catch (const nlohmann::json::exception&) {
        break;  // a torn last line from a crash
      }
    }
  }
  std::string prefix;
  for (const auto& l : kept) prefix += l + "\n";
  write_file_atomic(metrics_path.string(), prefix);
  std::ofstream metrics(metrics_path, std::ios::app);
  RL2_REQUIRE(metrics.good(), "cannot write " + metrics_path.string());
  // The TensorBoard event file follows metrics.jsonl: rewritten from the kept lines, appended with each.
  TensorBoardLog tensorboard(dir.string(), kept, learner.state().elapsed_seconds);

  const auto t_start = std::chrono::steady_clock::now();
  auto last_line = t_start;
  const double elapsed0 = learner.state().elapsed_seconds;
  const std::string ckpt = (dir / "checkpoint.safetensors").string();
  int64_t saved = -1;  // the iteration this process last checkpointed
  auto save = [&](const TrainState& st) {
    save_checkpoint(ckpt, cfg, st);
    saved = st.iteration;
  };
  for (;;) {
    // A stop request (the CLI's SIGINT/SIGTERM) is honoured here, between iterations: the iteration in
    // flight when it came has completed (an iteration cannot stop halfway), its metrics line is written,
    // so checkpointing it keeps metrics.jsonl and the checkpoint at the same iteration. A second signal
    // meanwhile changes nothing, and the save is atomic: a SIGKILL leaves the previous checkpoint whole.
    if (opt.stop != nullptr && opt.stop->load() != 0) {
      const int sig = opt.stop->load();
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
    metrics << m.dump() << "\n" << std::flush;
    tensorboard.append(m);
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
        throw Error("training stopped: " + std::to_string(st.nonfinite_in_a_row) +
                    " iterations in a row had a non-finite loss, gradient or KL (the parameters were left unchanged; "
                    "checkpoint in " + opt.dir + ")");
      }
    }
  }
}

}  // namespace rl2
