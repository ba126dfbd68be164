// Grid search on tuning instances (kTuneStream), evaluation on evaluation instances (kEvalStream).
#include "rl2/baselines/tuning.hpp"

#include <chrono>

#include "rl2/core/check.hpp"
#include "rl2/core/comm.hpp"
#include "rl2/core/rng.hpp"
#include "rl2/stats/stats.hpp"

namespace rl2 {

BaselineResult tune_and_evaluate(const std::string& policy, const std::string& hyper_name, std::vector<GridPoint> grid,
                                 const BaselineOptions& opt, const PlayFn& play) {
  RL2_CHECK(!grid.empty(), "a baseline needs at least one grid point");
  RL2_REQUIRE(opt.instances >= 1, "--instances must be at least 1 (got " + std::to_string(opt.instances) + ")");
  const auto t0 = std::chrono::steady_clock::now();
  // Over ranks: rank r plays instances [r n / R, (r + 1) n / R), and every rank gathers every total.
  const PlayFn shared = [&](const GridPoint& point, uint64_t stream, int64_t n) {
    if (opt.comm == nullptr || opt.comm->size() == 1) return play(point, stream, n);
    const int64_t R = opt.comm->size(), r = opt.comm->rank(), a = r * n / R, b = (r + 1) * n / R;
    const std::vector<double> all = all_gather_concat(
        *opt.comm, b > a ? play(point, stream + static_cast<uint64_t>(a), b - a) : std::vector<double>{});
    RL2_CHECK(static_cast<int64_t>(all.size()) == n, "baselines: the ranks returned the wrong number of totals");
    return all;
  };
  size_t best = 0;
  if (grid.size() > 1 && opt.tune_instances > 0) {
    for (size_t g = 0; g < grid.size(); ++g) {
      grid[g].tune_mean = mean_stderr(shared(grid[g], kTuneStream, opt.tune_instances)).mean;
      if (grid[g].tune_mean > grid[best].tune_mean) best = g;
    }
  }
  BaselineResult r;
  r.policy = policy;
  r.hyper_name = hyper_name;
  r.hyper = grid[best].value;
  r.hyper_note = grid[best].note;
  r.totals = shared(grid[best], kEvalStream, opt.instances);
  const MeanStderr ms = mean_stderr(r.totals);
  r.mean = ms.mean;
  r.stderr_ = ms.stderr_;
  r.grid = std::move(grid);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace rl2
