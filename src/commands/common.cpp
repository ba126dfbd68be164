// Shared flag definitions and output helpers for the commands; provenance; the SIGINT/SIGTERM handlers
// that let training stop between iterations.
#include "commands/common.hpp"

#include "rl2/core/comm.hpp"

#include <cblas.h>  // OpenBLAS's cblas.h: openblas_get_config/corename, and OPENBLAS_VERSION
#include <gnu/libc-version.h>
#include <omp.h>
#include <signal.h>

#include <csignal>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <fstream>
#include <iostream>
#include <thread>

#include "rl2/core/check.hpp"
#include "rl2/core/chunks.hpp"
#include "rl2_build_config.hpp"

namespace rl2 {

std::ostream& GlobalFlags::human() const { return json() ? std::cerr : std::cout; }

void add_global_flags(CLI::App& app, GlobalFlags& g) {
  app.add_option("--device", g.device, "auto: the GPU when one is usable, else the CPU; cpu; cuda (an error without a GPU)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  app.add_option("--seed", g.seed, "seed of every random number (tasks, rewards, actions); same seed, same numbers")
      ->capture_default_str();
  app.add_option("--format", g.format, "table: text for people; json: one JSON object on stdout")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  app.add_option("--threads", g.threads, "CPU threads (0: every core; training: at most one per trial chunk of its batch). Any value gives the "
                 "same numbers")->check(CLI::Range(0, 4096))->capture_default_str();
}

void add_env_flags(CLI::App& app, EnvFlags& f) {
  app.add_option("--env", f.env, "task distribution: bandit | mdp | maze")->capture_default_str();
  app.add_option("--arms", f.arms, "bandit: number of arms k (paper: 5, 10, 50)")->capture_default_str();
  app.add_option("--episodes", f.episodes,
                 "episodes per trial n (bandit: pulls; paper: 10, 100, 500 / 10..100; default 10, maze 2)");
  app.add_option("--states", f.states, "mdp: number of states (paper: 10)")->capture_default_str();
  app.add_option("--actions", f.actions, "mdp: number of actions (paper: 5)")->capture_default_str();
  app.add_option("--horizon", f.horizon,
                 "mdp, maze: steps per episode (default: mdp 10, maze 250; 3x3 and corridor 100, 7x7 500, 9x9 1000)");
  app.add_option("--size", f.size, "maze: cells inside the outer wall, 3, 5, 7 or 9 (the paper's: 5 and 9)")
      ->capture_default_str();
  app.add_option("--layout", f.layout,
                 "maze: prim (the paper's random mazes) or corridor (a straight corridor, the target at its far "
                 "end: the first rung of the training ladder, docs/maze.md)")
      ->capture_default_str();
  app.add_option("--mazes", f.mazes, "maze: training configurations (layout, start, target) drawn from the seed")
      ->capture_default_str();
}

EnvConfig EnvFlags::to_config() const {
  EnvConfig c;
  c.kind = parse_env_kind(env);
  auto narrow = [](int64_t v, const char* name) {
    RL2_REQUIRE(v >= 1, std::string("--") + name + " must be at least 1 (got " + std::to_string(v) + ")");
    RL2_REQUIRE(v <= (int64_t{1} << 30), std::string("--") + name + " " + std::to_string(v) + " is absurdly large");
    return static_cast<int32_t>(v);
  };
  if (c.kind == EnvKind::kBandit) {
    c.bandit = {narrow(arms, "arms"), narrow(episodes.value_or(10), "episodes")};
  } else if (c.kind == EnvKind::kMdp) {
    c.mdp = {narrow(states, "states"), narrow(actions, "actions"), narrow(horizon.value_or(10), "horizon"),
             narrow(episodes.value_or(10), "episodes")};
  } else {
    // The paper evaluates 9x9 mazes with 4x the 5x5 horizon; the smaller ladder rungs get 100.
    const int32_t s = narrow(size, "size");
    const int32_t layout = parse_maze_layout(this->layout);
    const int32_t default_horizon = layout == Maze::kCorridor || s == 3 ? 100 : s == 9 ? 1000 : s == 7 ? 500 : 250;
    c.maze = {s, narrow(episodes.value_or(2), "episodes"), narrow(horizon.value_or(default_horizon), "horizon"),
              narrow(mazes, "mazes"), layout};
  }
  c.validate();
  return c;
}

void apply_threads(const GlobalFlags& g) {
  if (g.threads > 0) omp_set_num_threads(g.threads);
  // The CPU backend calls BLAS per unit of work, single-threaded (src/cpu/cpu_blas.hpp); say so from the
  // start, so provenance records the BLAS threads that are used.
  openblas_set_num_threads(1);
}

void apply_train_threads(const GlobalFlags& g, const TrainConfig& cfg) {
  apply_threads(g);
  if (g.threads > 0) return;
  const int64_t chunks = TrialChunks(cfg.trials_per_iter(), cfg.env.trial_length()).count();
  omp_set_num_threads(static_cast<int>(std::clamp<int64_t>(chunks, 1, omp_get_num_procs())));
}

void require_host_memory(double count, double bytes_each, const std::string& what) {
  const double need = count * bytes_each;
  const int64_t avail = host_available_bytes();
  if (avail <= 0) return;
  RL2_REQUIRE(need <= 0.9 * static_cast<double>(avail),
              what + " needs " + format_bytes(need) + " of memory; " + format_bytes(static_cast<double>(avail)) +
                  " is available");
}

namespace {

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\n");
  const auto e = s.find_last_not_of(" \t\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// The first "model name" of /proc/cpuinfo (x86; many ARM kernels have none), else "unknown".
std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const auto colon = line.find(':');
    if (colon != std::string::npos) return trim(line.substr(colon + 1));
  }
  return "unknown";
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  char buf[32];
  if (gmtime_r(&t, &tm) == nullptr || std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) return "unknown";
  return buf;
}

}  // namespace

nlohmann::json provenance(Device backend) {
  const BuildInfo b = build_info();
  nlohmann::json p;
  p["rl2_cuda"] = b.version;
  const std::string commit = build_commit();
  p["commit"] = commit;
  p["dirty"] = commit == "unknown" ? nlohmann::json(nullptr) : nlohmann::json(build_dirty());
  p["build"] = {{"type", b.build_type},
                {"compiler", b.compiler},
                {"cxx_flags", RL2_CXX_FLAGS},
                {"cuda_backend", b.with_cuda}};
  if (b.with_cuda) {
    p["build"]["cuda_flags"] = RL2_CUDA_FLAGS;
    p["build"]["cuda_architectures"] = b.cuda_archs;
  }
  p["backend"] = device_name(backend);
  if (backend == Device::kCuda) {
    const CudaProbe& g = cuda_probe();
    p["gpu"] = {{"name", g.name},
                {"compute_capability", std::to_string(g.sm_major) + "." + std::to_string(g.sm_minor)},
                {"driver", g.driver_version}};
  }
  p["threads"] = omp_get_max_threads();
  p["ranks"] = world().size();  // mpirun -np R (docs/scaling.md)
  p["cpu"] = {{"model", cpu_model()}, {"logical_cpus", std::thread::hardware_concurrency()}};
  // The BLAS kernel may change the last bits across CPU types (DESIGN.md section 11): record the core
  // OpenBLAS picked at run time (DYNAMIC_ARCH) and the variable that can force it.
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  const int par = openblas_get_parallel();
  p["blas"] = {{"library", "OpenBLAS"},
               {"core", trim(openblas_get_corename())},
               {"config", trim(openblas_get_config())},
               {"threads", openblas_get_num_threads()},
               {"parallel", par == 0 ? "sequential" : par == 1 ? "pthreads" : par == 2 ? "openmp" : "unknown"},
               {"OPENBLAS_CORETYPE", coretype ? nlohmann::json(coretype) : nlohmann::json(nullptr)}};
  std::string openblas = trim(OPENBLAS_VERSION);  // the headers built against: " OpenBLAS 0.3.21 "
  if (openblas.rfind("OpenBLAS ", 0) == 0) openblas = openblas.substr(9);
  p["libraries"] = {{"glibc", gnu_get_libc_version()},
                    {"openblas", openblas},
                    {"nlohmann_json", std::to_string(NLOHMANN_JSON_VERSION_MAJOR) + "." +
                                          std::to_string(NLOHMANN_JSON_VERSION_MINOR) + "." +
                                          std::to_string(NLOHMANN_JSON_VERSION_PATCH)},
                    {"cli11", CLI11_VERSION},
                    {"cuda_toolkit", b.cuda_version},
                    {"cudnn", b.cudnn_version}};
#if defined(RL2_WITH_CUDA)
  // The CUDA libraries the dynamic loader found, as loaded (they may differ from the build's headers).
  for (const CudaLibraryVersion& l : cuda_library_versions()) p["libraries"][l.name + "_loaded"] = l.runtime;
#endif
  p["time_utc"] = utc_now();
  return p;
}

std::string provenance_line(const nlohmann::json& p) {
  std::string s = "provenance: rl2-cuda " + p.value("rl2_cuda", "?") + ", commit " + p.value("commit", "?");
  if (p.contains("dirty") && p["dirty"].is_boolean() && p["dirty"].get<bool>()) s += " (dirty)";
  s += ", " + p.at("build").value("type", "?") + " " + p.at("build").value("compiler", "?");
  s += ", " + p.value("backend", "?");
  if (p.contains("gpu")) s += " (" + p.at("gpu").value("name", "?") + ")";
  auto count = [](int n, const char* what) { return std::to_string(n) + " " + what + (n == 1 ? "" : "s"); };
  s += ", " + count(p.value("threads", 0), "thread") + ", " + count(p.value("ranks", 0), "rank");
  s += ", " + p.at("cpu").value("model", "?") + ", OpenBLAS " + p.at("libraries").value("openblas", "?") + " " +
       p.at("blas").value("core", "?");
  return s;
}

namespace {

constexpr int kStopSignalList[] = {SIGINT, SIGTERM};
std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free atomic");
struct sigaction g_old_action[2];
bool g_installed[2] = {false, false};
bool g_stop_signals_alive = false;

// Async-signal-safe: one lock-free atomic operation. The first signal wins; later ones change nothing.
void record_stop_signal(int sig) {
  int none = 0;
  g_stop_signal.compare_exchange_strong(none, sig);
}

}  // namespace

StopSignals::StopSignals() {
  RL2_CHECK(!g_stop_signals_alive, "one StopSignals at a time");
  g_stop_signals_alive = true;
  g_stop_signal.store(0);
  for (int i = 0; i < 2; ++i) {
    struct sigaction current {};
    g_installed[i] = ::sigaction(kStopSignalList[i], nullptr, &current) == 0 &&
                     ((current.sa_flags & SA_SIGINFO) != 0 || current.sa_handler != SIG_IGN);
    if (!g_installed[i]) continue;
    struct sigaction sa {};
    sa.sa_handler = record_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;  // system calls in flight (file writes) resume instead of failing with EINTR
    g_installed[i] = ::sigaction(kStopSignalList[i], &sa, &g_old_action[i]) == 0;
  }
}

StopSignals::~StopSignals() {
  for (int i = 0; i < 2; ++i)
    if (g_installed[i]) ::sigaction(kStopSignalList[i], &g_old_action[i], nullptr);
  g_stop_signals_alive = false;
  // Recorded after train_run's last look and not acted on: hand it to the previous handler (by default
  // the process ends by that signal). Not while an exception (Interrupted) unwinds: that one acted on it.
  const int sig = g_stop_signal.exchange(0);
  if (sig != 0 && std::uncaught_exceptions() == 0) std::raise(sig);
}

const std::atomic<int>& StopSignals::received() const { return g_stop_signal; }

}  // namespace rl2
