// Checkpoints and exports (DESIGN.md section 7): the networks' torch-named tensors and the trainer state in
// safetensors files, replaced atomically; loading them back for resume, eval and export.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "rl2/io/safetensors.hpp"
#include "rl2/train/learner.hpp"

namespace rl2 {

// policy.gru.weight_ih_l0 [3H, I] ... policy.head.bias [A], baseline.* with a [1, H] head; for the maze
// also policy.encoder.conv1.weight [16, 3, 5, 5] ... encoder.extra_fc.bias [32] and baseline.encoder.*.
std::vector<TensorF32> network_tensors(const TrainConfig& cfg, const TrainState& st);
// __metadata__ of exports and checkpoints: format rl2-cuda/1, env, input layout, config.
std::map<std::string, std::string> network_metadata(const TrainConfig& cfg);

void save_checkpoint(const std::string& path, const TrainConfig& cfg, const TrainState& st);
void export_policy(const std::string& path, const TrainConfig& cfg, const TrainState& st);

struct LoadedRun {
  TrainConfig cfg;
  TrainState state;
  std::string source;  // the file the networks came from
};
// From a run directory (its checkpoint) or a checkpoint/export file; InputError when missing or invalid.
LoadedRun load_run(const std::string& dir_or_file);

}  // namespace rl2
