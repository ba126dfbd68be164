// Run configurations to and from JSON (run.json, checkpoint metadata) and TOML (config.toml).
#include <string>

#include "rl2/core/check.hpp"
#include "rl2/train/config_codec.hpp"

namespace rl2 {

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
  c.kind = parse_env_kind(json_field<std::string>(j, "env"));
  if (c.kind == EnvKind::kBandit) {
    c.bandit = {json_field<int32_t>(j, "arms"), json_field<int32_t>(j, "episodes")};
  } else if (c.kind == EnvKind::kMdp) {
    c.mdp = {json_field<int32_t>(j, "states"), json_field<int32_t>(j, "actions"), json_field<int32_t>(j, "horizon"),
             json_field<int32_t>(j, "episodes")};
  } else {
    c.maze = {json_field<int32_t>(j, "size"), json_field<int32_t>(j, "episodes"), json_field<int32_t>(j, "horizon"),
              json_field<int32_t>(j, "mazes"),
              j.contains("layout") ? parse_maze_layout(json_field<std::string>(j, "layout")) : Maze::kPrim};
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
  c.hidden = json_field<int32_t>(j, "hidden");
  c.iterations = json_field<int64_t>(j, "iterations");
  c.steps_per_iter = json_field<int64_t>(j, "steps_per_iter");
  c.algo = json_field<std::string>(j, "algo");
  c.trpo.max_kl = json_field<double>(j, "max_kl");
  c.trpo.cg_iterations = json_field<int32_t>(j, "cg_iters");
  c.trpo.cg_damping = json_field<double>(j, "cg_damping");
  c.gamma = json_field<double>(j, "gamma");
  c.gae_lambda = json_field<double>(j, "gae_lambda");
  // Keys added after the first runs were written read with their defaults when absent.
  c.entropy_coef = j.value("entropy_coef", 0.0);
  c.trpo.fvp_subsample = j.value("fvp_subsample", 1.0);  // runs before it used every trial
  c.ppo.clip = j.value("ppo_clip", c.ppo.clip);
  c.ppo.epochs = j.value("ppo_epochs", c.ppo.epochs);
  c.ppo.minibatches = j.value("ppo_minibatches", c.ppo.minibatches);
  c.ppo.lr = j.value("ppo_lr", c.ppo.lr);
  c.ppo.target_kl = j.value("ppo_target_kl", c.ppo.target_kl);
  c.baseline_epochs = json_field<int32_t>(j, "baseline_epochs");
  c.baseline_minibatches = json_field<int32_t>(j, "baseline_minibatches");
  c.baseline_lr = json_field<double>(j, "baseline_lr");
  c.seed = json_field<uint64_t>(j, "seed");
  c.validate();
  return c;
}
}  // namespace rl2
