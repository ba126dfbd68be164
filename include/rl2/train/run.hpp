// A training run on disk (DESIGN.md sections 1 and 7): DIR/run.json (the resolved TrainConfig),
// DIR/config.toml (the same as flags, for --config), DIR/metrics.jsonl (one line per iteration),
// DIR/checkpoint.safetensors (networks + trainer state, replaced atomically), DIR/policy.safetensors
// (the export) and DIR/events.out.tfevents.rl2-cuda (metrics.jsonl for TensorBoard, tensorboard_log.hpp).
// Checkpoints and exports name tensors as torch.nn.GRU (and Conv2d/Linear) do.
// run.json also holds "provenance": one entry per process that trained the run (DESIGN.md section 11).
#pragma once

#include <atomic>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "rl2/core/check.hpp"
#include "rl2/core/comm.hpp"
#include "rl2/io/safetensors.hpp"
#include "rl2/train/checkpoint.hpp"
#include "rl2/train/config_codec.hpp"
#include "rl2/train/learner.hpp"

namespace rl2 {

struct RunOptions {
  std::string dir;               // run directory (created if missing)
  int64_t checkpoint_every = 1;  // iterations between checkpoints (and always at the end)
  int32_t max_nonfinite = 3;     // stop after this many non-finite iterations in a row
  // Read between iterations; non-zero asks train_run to checkpoint and throw Interrupted. The value is
  // the signal that asked (the CLI's SIGINT/SIGTERM handlers store it), or any non-zero number.
  const std::atomic<int>* stop = nullptr;
  // Between iterations: once the run's training wall time (TrainState::elapsed_seconds, over all its
  // resumes) reaches this, checkpoint and return (0: no limit). The state says how far it got.
  double max_seconds = 0.0;
  // Every eval_every iterations (and at the last), the held-out mean total reward over eval_instances
  // instances of the evaluation stream goes into the metrics line (heldout_mean, heldout_stderr).
  int64_t eval_every = 0;
  int64_t eval_instances = 500;
  // What this process's results depend on (the CLI's provenance()); appended to run.json's
  // "provenance" list with its start_iteration. Null: none recorded.
  nlohmann::json provenance;
  // The learner's ranks (nullptr: one process). Rank 0 alone writes the run directory; every rank runs
  // the same iterations, evaluations and stops (signals and the time limit are agreed between ranks).
  Comm* comm = nullptr;
};

// Thrown by train_run when RunOptions::stop asked it to stop: the checkpoint holds every iteration
// metrics.jsonl has (through iteration()), and `train --resume DIR` continues as if never stopped.
class Interrupted : public Error {
 public:
  Interrupted(int signal, int64_t iteration, const std::string& msg)
      : Error(msg), signal_(signal), iteration_(iteration) {}
  int signal() const { return signal_; }  // the value of *RunOptions::stop
  int64_t iteration() const { return iteration_; }

 private:
  int signal_;
  int64_t iteration_;
};

// Trains from learner.state() up to cfg.iterations, appending to metrics.jsonl and checkpointing.
// Progress goes to `log`: a rewritten line on a terminal, periodic plain lines otherwise. Throws
// Interrupted when opt.stop is set (after the iteration in flight, which cannot stop halfway).
void train_run(Learner& learner, const TrainConfig& cfg, const RunOptions& opt, std::ostream& log, bool tty);

}  // namespace rl2
