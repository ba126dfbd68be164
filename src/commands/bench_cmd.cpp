// `rl2-cuda bench`: environment throughput for one config on every usable backend, side by side in one
// run (CPU threads and the CUDA kernels), optionally swept over the number of trials. Measures task
// sampling (reset, tasks/s) and stepping (env-steps/s) separately; actions are a fixed random pattern
// already in the backend's memory, so only the environment is timed. For the maze, also rendering alone
// (render-frames/s: every trial's 40x30 view drawn again from its pose, as many frames as steps). With a usable GPU it then times the
// CUDA rollout (env + GRU-256 policy + GRU-256 baseline, whole trials, graph replayed, parameter upload
// included; the maze: the conv encoder in front of each GRU, launched eagerly) at the same trial counts: rollout steps/s (docs/cuda_rollout.md), in FP32 and with the
// optional TF32 GEMMs (RolloutOptions::allow_tf32; training stays FP32). Last, end-to-end training
// (TRPO, GRU-256 policy and baseline) on each backend: env-steps/s over whole iterations and the split
// of an iteration's time into rollout, the update's gradient, conjugate gradient (with its Fisher-vector
// products) and line search, the baseline fit, and the rest (advantages).
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "commands/common.hpp"
#include "rl2/core/check.hpp"
#include "rl2/core/rng.hpp"
#include "rl2/env/batch.hpp"
#include "rl2/train/learner.hpp"
#include "rl2/train/run.hpp"
#include "rl2/policy/network.hpp"
#include "rl2/train/backend.hpp"

namespace rl2 {
namespace {

struct BenchPoint {
  Device device;
  int64_t trials;
  double reset_s;
  double step_s;
  int64_t steps;
  double render_s;  // the maze: observe() alone, i.e. every view rendered again (render-only frames)
  int64_t frames;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

BenchPoint measure(Device device, const EnvConfig& cfg, int64_t trials, uint64_t seed) {
  auto batch = make_env_batch(device, cfg, trials);
  std::vector<int32_t> actions(static_cast<size_t>(trials));
  for (int64_t i = 0; i < trials; ++i)
    actions[i] = static_cast<int32_t>(uniform_int(philox_bits(seed, static_cast<uint64_t>(i), 0, Purpose::kAction, 0).v[0],
                                                  static_cast<uint32_t>(cfg.num_actions())));
  batch->copy_actions_from_host(actions.data());
  auto run_trial = [&](BenchPoint& p) {
    auto t0 = std::chrono::steady_clock::now();
    batch->reset(seed, 0);
    batch->synchronize();
    p.reset_s += seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    for (int64_t t = 0; t < cfg.trial_length(); ++t) batch->step(batch->action_buffer());
    batch->synchronize();
    p.step_s += seconds_since(t0);
    p.steps += trials * cfg.trial_length();
    if (cfg.kind != EnvKind::kMaze) return;
    t0 = std::chrono::steady_clock::now();
    for (int64_t t = 0; t < cfg.trial_length(); ++t) batch->observe();  // the final poses, rendered again
    batch->synchronize();
    p.render_s += seconds_since(t0);
    p.frames += trials * cfg.trial_length();
  };
  BenchPoint warm{device, trials, 0, 0, 0, 0, 0};
  run_trial(warm);  // first touch of memory, kernel load
  BenchPoint p{device, trials, 0, 0, 0, 0, 0};
  // Repeat until a quarter second of stepping has been timed (at most 50 trials' worth).
  for (int rep = 0; rep < 50 && (rep == 0 || p.step_s < 0.25); ++rep) run_trial(p);
  return p;
}

constexpr int32_t kRolloutHidden = 256;  // DESIGN.md section 9's target configuration

// The CUDA rollout at each size: one warm-up run (eager launch + graph capture), then replays until a
// quarter second has been timed (at most 50). Returns {"hidden", "results": [...]} or {"hidden", "skipped"}.
nlohmann::json bench_rollout(const GlobalFlags& g, const EnvConfig& cfg, const std::vector<int64_t>& sizes,
                             std::ostream& human) {
  nlohmann::json out = {{"what", "env + policy + baseline"}, {"hidden", kRolloutHidden}};
  human << "rollout steps/s (env + policy + baseline, GRU " << kRolloutHidden << "), " << cfg.describe() << "\n";
  std::string why;
  if (g.device == "cpu") why = "not run with --device cpu";
  else if (!cuda_probe().usable) why = "no usable GPU: " + cuda_probe().reason;
  if (!why.empty()) {
    human << "  cuda   " << why << "\n";
    out["skipped"] = why;
    return out;
  }
  out["results"] = nlohmann::json::array();
  const std::unique_ptr<Backend> be = make_backend(Device::kCuda);
  TrainConfig tc;  // the training networks (the maze: conv encoder -> GRU -> head)
  tc.env = cfg;
  tc.hidden = kRolloutHidden;
  const NetShape pol = tc.policy_shape(), base = tc.baseline_shape();
  std::vector<float> pp(static_cast<size_t>(pol.size())), bp(static_cast<size_t>(base.size()));
  net_init(pol, g.seed, 0, 0.01f, pp.data());
  net_init(base, g.seed, 1, 1.0f, bp.data());
  char line[256];
  std::snprintf(line, sizeof line, "  %-9s %10s %16s\n", "device", "trials", "rollout-steps/s");
  human << line;
  for (int64_t n : sizes) {
    for (const bool tf32 : {false, true}) {  // FP32 (what training uses), then the optional TF32 GEMMs
      std::unique_ptr<BackendRollout> ro;
      try {
        ro = be->make_rollout(cfg, pol, base, n, tf32);
      } catch (const InputError& e) {
        human << "  cuda " << n << " skipped: " << e.what() << "\n";
        break;
      }
      ro->run(pp.data(), bp.data(), g.seed, 0);  // eager launch + graph capture
      double secs = 0.0;
      int reps = 0;
      for (; reps < 50 && (reps == 0 || secs < 0.25); ++reps) {
        const auto t0 = std::chrono::steady_clock::now();
        ro->run(pp.data(), bp.data(), g.seed, static_cast<uint64_t>(reps + 1) * static_cast<uint64_t>(n));
        secs += seconds_since(t0);
      }
      const double steps_per_s = static_cast<double>(reps) * static_cast<double>(n * cfg.trial_length()) / secs;
      const char* name = tf32 ? "cuda-tf32" : "cuda";
      std::snprintf(line, sizeof line, "  %-9s %10lld %16.3e\n", name, static_cast<long long>(n), steps_per_s);
      human << line << std::flush;
      out["results"].push_back({{"device", "cuda"},
                                {"math", tf32 ? "tf32" : "fp32"},
                                {"trials", n},
                                {"repeats", reps},
                                {"seconds", secs},
                                {"rollout_steps_per_s", steps_per_s}});
    }
  }
  return out;
}

// Training throughput: `iterations` timed iterations after one warm-up, with train's defaults for this env
// (algorithm, network, Fisher subsample; docs/training.md) at each size (whole trials). The CPU runs one
// size, the largest that its budget allows (about 4 000 steps/s, 500 for the maze, is assumed until a
// measurement says otherwise), so a bench always has a CPU row.
nlohmann::json bench_training(const GlobalFlags& g, const EnvFlags& env, const std::vector<Device>& devices,
                              const std::vector<int64_t>& sizes, int iterations, double cpu_budget_s, std::ostream& human) {
  TrainFlags defaults;
  defaults.env = env;
  defaults.seed = g.seed;
  const TrainConfig base = defaults.to_config();
  const EnvConfig& cfg = base.env;
  const std::string what = base.algo + " iterations, policy and baseline GRU " + std::to_string(base.hidden) +
                           (base.algo == "trpo" ? ", Fisher products on " + nlohmann::json(base.trpo.fvp_subsample).dump() + " of the trials" : "");
  nlohmann::json out = {{"what", what}, {"iterations", iterations}, {"results", nlohmann::json::array()}};
  human << "training env-steps/s (" << what << "; train's defaults), " << cfg.describe() << "\n";
  const std::string why = iterations <= 0 ? "--train-iterations 0" : "";
  if (!why.empty()) {
    human << "  skipped: " << why << "\n";
    out["skipped"] = why;
    return out;
  }
  char line[256];
  // Shares of the iteration's wall time; "other" is what no phase covers (advantages, state bookkeeping).
  std::snprintf(line, sizeof line, "  %-6s %10s %16s %8s %8s %8s %8s %8s %8s\n", "device", "trials", "env-steps/s",
                "rollout", "gradient", "cg", "line-srch", "baseline", "other");
  human << line;
  const int64_t T = cfg.trial_length();
  for (Device d : devices) {
    std::vector<int64_t> ns = sizes;
    if (d == Device::kCpu) {
      // The maze's conv encoder makes a step about 8x dearer (docs/training.md has its CPU times).
      const double kCpuStepsPerS = cfg.kind == EnvKind::kMaze ? 500.0 : 4000.0;
      const auto fit = static_cast<int64_t>(cpu_budget_s * kCpuStepsPerS / (static_cast<double>(iterations + 1) * T));
      ns = {std::max<int64_t>(1, std::min(sizes.back(), fit))};
    }
    for (int64_t n : ns) {
      TrainConfig tc = base;
      tc.steps_per_iter = n * T;
      tc.iterations = iterations + 1;
      try {
        auto learner = make_learner(d, tc);
        learner->iterate();  // warm-up: first touch, graph capture, library initialisation
        double total = 0.0, roll = 0.0, pol = 0.0, base = 0.0, grad = 0.0, cg = 0.0, ls = 0.0;
        for (int i = 0; i < iterations; ++i) {
          const auto t0 = std::chrono::steady_clock::now();
          const IterationStats st = learner->iterate();
          total += seconds_since(t0);
          roll += st.seconds_rollout;
          pol += st.seconds_policy;
          base += st.seconds_baseline;
          grad += st.update.seconds_gradient;
          cg += st.update.seconds_cg;
          ls += st.update.seconds_line_search;
        }
        const double steps_per_s = static_cast<double>(iterations) * static_cast<double>(n * T) / total;
        const double other = total - roll - grad - cg - ls - base;
        auto pct = [&](double x) { return 100.0 * x / total; };
        std::snprintf(line, sizeof line, "  %-6s %10lld %16.3e %7.1f%% %7.1f%% %7.1f%% %8.1f%% %7.1f%% %7.1f%%\n",
                      device_name(d).c_str(), static_cast<long long>(n), steps_per_s, pct(roll), pct(grad), pct(cg),
                      pct(ls), pct(base), pct(other));
        human << line << std::flush;
        out["results"].push_back({{"device", device_name(d)},
                                  {"trials", n},
                                  {"steps_per_iter", n * T},
                                  {"seconds", total},
                                  {"train_env_steps_per_s", steps_per_s},
                                  {"seconds_rollout", roll},
                                  {"seconds_policy", pol},
                                  {"seconds_gradient", grad},
                                  {"seconds_cg", cg},
                                  {"seconds_line_search", ls},
                                  {"seconds_baseline", base}});
      } catch (const InputError& e) {
        human << "  " << device_name(d) << " " << n << " skipped: " << e.what() << "\n";
      } catch (const std::exception& e) {  // the CUDA learner is not verified on a GPU yet: report, go on
        human << "  " << device_name(d) << " " << n << " failed: " << e.what() << "\n";
        out["results"].push_back({{"device", device_name(d)}, {"trials", n}, {"error", e.what()}});
      }
    }
  }
  return out;
}

}  // namespace

int run_bench(const GlobalFlags& g, const BenchFlags& f) {
  apply_threads(g);
  const EnvConfig cfg = f.env.to_config();
  std::vector<int64_t> sizes;
  if (f.sweep) {
    RL2_REQUIRE(f.sweep_min >= 1 && f.sweep_max >= f.sweep_min, "--sweep-min/--sweep-max must satisfy 1 <= min <= max");
    for (int64_t n = f.sweep_min; n <= f.sweep_max; n *= 4) sizes.push_back(n);
  } else {
    RL2_REQUIRE(f.trials >= 1, "--trials must be at least 1 (got " + std::to_string(f.trials) + ")");
    sizes.push_back(f.trials);
  }
  std::vector<Device> devices;
  if (g.device != "cuda") devices.push_back(Device::kCpu);
  if (g.device == "cuda" || (g.device == "auto" && cuda_probe().usable)) devices.push_back(resolve_device("cuda"));
  // Fail before printing anything when even the smallest batch cannot run.
  for (Device d : devices) check_batch_fits(d, cfg, sizes.front());
  if (g.device == "auto" && !cuda_probe().usable)
    std::fprintf(stderr, "bench: CUDA skipped: %s\n", cuda_probe().reason.c_str());
  const int threads = omp_get_max_threads();
  nlohmann::json out = env_to_json(cfg);
  out["seed"] = g.seed;
  out["cpu_threads"] = threads;
  out["gpu"] = cuda_probe().usable ? nlohmann::json(cuda_probe().name) : nlohmann::json(nullptr);
  out["results"] = nlohmann::json::array();
  std::ostream& human = g.human();
  human << "env-only throughput, " << cfg.describe() << ", " << cfg.trial_length() << " steps per trial, CPU threads "
        << threads << (cuda_probe().usable ? ", GPU " + cuda_probe().name : std::string(", no GPU")) << "\n";
  char line[256];
  const bool maze = cfg.kind == EnvKind::kMaze;
  std::snprintf(line, sizeof line, "  %-6s %10s %14s %16s%s\n", "device", "trials", "tasks/s", "env-steps/s",
                maze ? "  render-frames/s" : "");
  human << line;
  for (Device d : devices) {
    double last_cost = 0.0;  // seconds per trial at the previous size (CPU budget estimate)
    for (int64_t n : sizes) {
      if (d == Device::kCpu && last_cost * n > f.cpu_budget_s) {
        std::snprintf(line, sizeof line, "  %-6s %10lld  skipped: about %.0f s, over --cpu-budget %.0f s\n", "cpu",
                      static_cast<long long>(n), last_cost * n, f.cpu_budget_s);
        human << line;
        continue;
      }
      try {
        check_batch_fits(d, cfg, n);
      } catch (const InputError& e) {
        human << "  " << device_name(d) << " " << n << " skipped: " << e.what() << "\n";
        continue;
      }
      const BenchPoint p = measure(d, cfg, n, g.seed);
      const int reps = static_cast<int>(p.steps / (n * cfg.trial_length()));
      last_cost = (p.reset_s + p.step_s + p.render_s) / reps / static_cast<double>(n) * 52;  // 50 reps + warm-up
      const double tasks_per_s = static_cast<double>(n) * reps / p.reset_s;
      const double steps_per_s = static_cast<double>(p.steps) / p.step_s;
      std::snprintf(line, sizeof line, "  %-6s %10lld %14.3e %16.3e", device_name(d).c_str(), static_cast<long long>(n),
                    tasks_per_s, steps_per_s);
      human << line;
      nlohmann::json r = {{"device", device_name(d)},   {"trials", n},
                          {"repeats", reps},             {"reset_seconds", p.reset_s},
                          {"step_seconds", p.step_s},    {"tasks_per_s", tasks_per_s},
                          {"env_steps_per_s", steps_per_s}};
      if (maze) {
        const double frames_per_s = static_cast<double>(p.frames) / p.render_s;
        std::snprintf(line, sizeof line, " %17.3e", frames_per_s);
        human << line;
        r["render_seconds"] = p.render_s;
        r["render_frames_per_s"] = frames_per_s;
      }
      human << "\n" << std::flush;
      out["results"].push_back(r);
    }
  }
  out["rollout"] = bench_rollout(g, cfg, sizes, human);
  out["training"] = bench_training(g, f.env, devices, sizes, f.train_iterations, f.cpu_budget_s, human);
  if (g.json()) std::cout << out.dump() << "\n";
  return 0;
}

}  // namespace rl2
