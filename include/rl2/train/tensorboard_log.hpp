// The run directory's TensorBoard event file (DESIGN.md section 7, docs/interop.md): DIR/
// events.out.tfevents.rl2-cuda holds the scalars of metrics.jsonl, one event per iteration (step =
// "iteration"), so `tensorboard --logdir runs` shows the curves. The event file follows metrics.jsonl:
// at every start or resume train_run keeps the metrics lines of the iterations its checkpoint has and
// drops the rest (they are replayed); the event file is then rewritten atomically from exactly those
// kept lines, and each new metrics line is appended to both. So every tag has exactly one point per
// iteration, whatever stopped the previous process.
// Wall times: the file's first event holds the run's first start (seconds since the epoch, kept across
// resumes), and an iteration's event holds that start plus the metrics line's "wall_time" (training
// seconds so far), so the rewrite reproduces the events it replaces bit for bit.
#pragma once

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "rl2/io/tensorboard.hpp"

namespace rl2 {

inline constexpr const char* kEventFileName = "events.out.tfevents.rl2-cuda";

// The scalars of one metrics.jsonl line: every number but "iteration", nested objects' keys joined with
// '/' ("seconds/rollout"), in key order; strings (e.g. "status") and nulls are skipped.
std::vector<Scalar> metrics_scalars(const nlohmann::json& line);

class TensorBoardLog {
 public:
  // Rewrites DIR/kEventFileName from `kept` (metrics lines, in order). A fresh run (kept empty) starts
  // its clock now; a resumed one reads its start from the old file's first event, or, when that file is
  // missing or unreadable, takes now - elapsed_seconds. Throws rl2::Error when the file cannot be written.
  TensorBoardLog(const std::string& dir, const std::vector<std::string>& kept, double elapsed_seconds);
  // Appends the event of one metrics line (flushed).
  void append(const nlohmann::json& line);

 private:
  std::string path_;
  double start_ = 0.0;  // the run's first start, seconds since the epoch
  std::ofstream out_;
};

}  // namespace rl2
