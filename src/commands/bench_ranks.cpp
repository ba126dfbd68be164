// `rl2-cuda bench --ranks 1,2`: data-parallel scaling of training (docs/scaling.md), measured side by side
// in one run. For each R it launches `mpirun -np R rl2-cuda train` on the CPU (each rank with its share of
// this machine's cores) twice: strong scaling (the same total batch for every R) and weak scaling (R times
// one rank's batch), and reads env-steps/s from the runs' metrics.jsonl (the first iteration, a warm-up,
// left out). Every row runs on the same cores, so efficiency is throughput against the first row: 100% is
// perfect, and what is lost is the ranks' communication and their smaller per-rank work. Then it projects
// GPU rows from the communication model of docs/scaling.md: what the ordered sums of one TRPO iteration
// cost on 8 GPUs over NVLink and 64 over InfiniBand against the iteration's compute at the GPU target.
// Those rows are arithmetic, labelled as such, never a measurement.
#include <omp.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands/common.hpp"
#include "rl2/core/check.hpp"
#include "rl2_build_config.hpp"

namespace fs = std::filesystem;

namespace rl2 {
namespace {

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// The env flags as train takes them (train ignores the ones another env does not use).
std::string env_flags(const EnvFlags& e) {
  std::ostringstream o;
  o << " --env " << e.env << " --arms " << e.arms << " --states " << e.states << " --actions " << e.actions
    << " --size " << e.size << " --mazes " << e.mazes << " --layout " << e.layout;
  if (e.episodes) o << " --episodes " << *e.episodes;
  if (e.horizon) o << " --horizon " << *e.horizon;
  return o.str();
}

// Mean env-steps/s over the iterations after the first, from a run's metrics.jsonl; NaN when missing.
double steps_per_second(const fs::path& metrics) {
  std::ifstream in(metrics);
  std::string line;
  double sum = 0.0;
  int n = 0, k = 0;
  while (std::getline(in, line)) {
    if (k++ == 0) continue;
    sum += nlohmann::json::parse(line).at("env_steps_per_s").get<double>();
    ++n;
  }
  return n > 0 ? sum / n : std::nan("");
}

}  // namespace

int run_bench_ranks(const GlobalFlags& g, const BenchFlags& f) {
  RL2_REQUIRE(!f.ranks.empty(), "--ranks needs a list of rank counts, e.g. 1,2");
  for (int r : f.ranks) RL2_REQUIRE(r >= 1 && r <= 1024, "--ranks: each rank count is 1 to 1024");
  RL2_REQUIRE(f.train_iterations >= 1, "--ranks needs --train-iterations 1 or more");
  const std::string mpirun = RL2_MPIEXEC;
  RL2_REQUIRE(!mpirun.empty(), "bench --ranks needs a build with MPI (install libopenmpi-dev and rebuild)");
  char exe[4096];
  const ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  RL2_REQUIRE(len > 0, "bench --ranks: cannot find this executable's path");
  exe[len] = '\0';
  const EnvConfig env = f.env.to_config();
  const int cores = omp_get_num_procs();
  int max_r = 1;
  for (int r : f.ranks) max_r = std::max(max_r, r);
  const int64_t per_rank = f.rank_steps;
  const fs::path tmp = fs::temp_directory_path() / ("rl2-bench-ranks-" + std::to_string(getpid()));
  fs::create_directories(tmp);
  std::ostream& human = g.human();
  human << "data-parallel training (TRPO, CPU), " << env.describe() << ", " << cores << " cores shared by the ranks, "
        << f.train_iterations << " timed iterations after one warm-up, mpirun " << mpirun << "\n";
  char line[256];
  human << "  the ranks share these cores (each rank cores / R threads): the same hardware in every row, so 100% is\n"
           "  perfect scaling here; with a machine or GPU per rank the throughput would grow with R\n";
  std::snprintf(line, sizeof line, "  %-7s %5s %14s %14s %11s\n", "scaling", "ranks", "steps/iter", "env-steps/s",
                "efficiency");
  human << line;
  nlohmann::json out = env_to_json(env);
  out["cores"] = cores;
  out["rows"] = nlohmann::json::array();
  for (const char* mode : {"strong", "weak"}) {
    double base = 0.0;
    for (int r : f.ranks) {
      const bool strong = std::string(mode) == "strong";
      const int64_t steps = strong ? per_rank * max_r : per_rank * r;
      const fs::path dir = tmp / (std::string(mode) + std::to_string(r));
      std::ostringstream cmd;
      cmd << shell_quote(mpirun) << (geteuid() == 0 ? " --allow-run-as-root" : "")
          << " --oversubscribe --bind-to none -np " << r << " " << shell_quote(exe) << " train --device cpu"
          << env_flags(f.env) << " --seed " << g.seed << " --threads " << std::max(1, cores / r) << " --steps-per-iter "
          << steps << " --iterations " << f.train_iterations + 1 << " --out " << shell_quote(dir.string()) << " > "
          << shell_quote((tmp / "log").string()) << " 2>&1";
      const int rc = std::system(cmd.str().c_str());
      const double sps = rc == 0 ? steps_per_second(dir / "metrics.jsonl") : std::nan("");
      RL2_REQUIRE(std::isfinite(sps), "bench --ranks: the run with " + std::to_string(r) + " ranks failed (" +
                                          cmd.str() + "; its output is in " + (tmp / "log").string() + ")");
      if (base == 0.0) base = sps;  // the first row: the same cores as every other row
      const double eff = sps / base;
      std::snprintf(line, sizeof line, "  %-7s %5d %14lld %14.4g %10.0f%%\n", mode, r, static_cast<long long>(steps),
                    sps, 100.0 * eff);
      human << line;
      out["rows"].push_back(
          {{"scaling", mode}, {"ranks", r}, {"steps_per_iter", steps}, {"env_steps_per_s", sps}, {"efficiency", eff}});
    }
  }
  fs::remove_all(tmp);

  // Projected GPU rows (docs/scaling.md): per TRPO iteration, ordered float64 sums of P-vectors (the policy
  // gradient, CG's products and the step's, the baseline's minibatches), each a chain of R - 1 hops of 8P
  // bytes then a tree broadcast of 4P bytes, against the paper's 250 000 steps at the 2e6 env-steps/s target.
  TrainConfig tc;
  tc.env = env;
  const double P = static_cast<double>(tc.policy_shape().size());
  const double sums = 1.0 + (tc.trpo.cg_iterations + 1) + tc.baseline_epochs * tc.baseline_minibatches;
  const double compute = 250000.0 / 2e6;
  human << "projected GPU rows (the model of docs/scaling.md, not measured): " << static_cast<int>(sums)
        << " ordered P-sums per iteration, P = " << static_cast<int64_t>(P) << ", iteration compute " << compute * 1e3
        << " ms\n";
  struct Link {
    const char* name;
    int ranks;
    double bytes_per_s, latency_s;
  };
  for (const Link& l :
       {Link{"8 GPUs, NVLink 150 GB/s", 8, 150e9, 5e-6}, Link{"64 GPUs, InfiniBand 25 GB/s", 64, 25e9, 5e-6}}) {
    const double chain = (l.ranks - 1) * (8.0 * P / l.bytes_per_s + l.latency_s);
    const double bcast = std::ceil(std::log2(l.ranks)) * (4.0 * P / l.bytes_per_s + l.latency_s);
    const double comm = sums * (chain + bcast);
    std::snprintf(line, sizeof line, "  %-30s comm %7.1f ms/iteration, efficiency %3.0f%%\n", l.name, comm * 1e3,
                  100.0 * compute / (compute + comm));
    human << line;
    out["projected"].push_back(
        {{"setting", l.name}, {"ranks", l.ranks}, {"comm_ms", comm * 1e3}, {"efficiency", compute / (compute + comm)}});
  }
  if (g.json()) std::cout << out.dump() << "\n";
  return 0;
}

}  // namespace rl2
