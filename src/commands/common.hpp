// Flags shared by several commands, and how results are printed (DESIGN.md section 1):
// --format table|json; with json, stdout holds exactly one JSON object and human text goes to stderr.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>

#include "rl2/core/device.hpp"
#include "rl2/env/env.hpp"

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
  int64_t episodes = 10;
  int64_t states = 10;
  int64_t actions = 5;
  int64_t horizon = 10;
  // Validated config; throws InputError for bad values.
  EnvConfig to_config() const;
};

void add_global_flags(CLI::App& app, GlobalFlags& g);
void add_env_flags(CLI::App& app, EnvFlags& f);
// Applies --threads to OpenMP.
void apply_threads(const GlobalFlags& g);
// JSON description of an env setting: {"env": ..., "arms"/"states"...}.
nlohmann::json env_json(const EnvConfig& cfg);
// Throws InputError when `count` items of `bytes_each` would not fit in host memory.
void require_host_memory(double count, double bytes_each, const std::string& what);

struct BaselinesFlags {
  EnvFlags env;
  std::string policy = "all";
  int64_t instances = 1000;
  int64_t tune_instances = -1;  // -1: as many as --instances
};
int run_baselines(const GlobalFlags& g, const BaselinesFlags& f);

struct BenchFlags {
  EnvFlags env;
  int64_t trials = 16384;
  bool sweep = false;
  int64_t sweep_min = 1024;
  int64_t sweep_max = 1 << 20;
  double cpu_budget_s = 20.0;
};
int run_bench(const GlobalFlags& g, const BenchFlags& f);

int run_info(const GlobalFlags& g);

}  // namespace rl2
