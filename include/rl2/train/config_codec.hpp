// Run configurations to and from JSON (run.json, the checkpoints' metadata) and TOML (config.toml).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "rl2/core/check.hpp"
#include "rl2/train/learner.hpp"

namespace rl2 {

// j[key] as a T; InputError naming the key when it is missing or malformed.
template <class T>
T json_field(const nlohmann::json& j, const char* key) {
  RL2_REQUIRE(j.is_object() && j.contains(key), std::string("run configuration lacks '") + key + "'");
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw InputError(std::string("run configuration has a malformed '") + key + "'");
  }
}

nlohmann::json env_to_json(const EnvConfig& cfg);
EnvConfig env_from_json(const nlohmann::json& j);  // InputError if malformed
nlohmann::json config_to_json(const TrainConfig& cfg);
// The resolved config as a CLI11 TOML file: `rl2-cuda train --config FILE` repeats the run.
std::string config_to_toml(const TrainConfig& cfg);
TrainConfig config_from_json(const nlohmann::json& j);  // InputError if malformed

}  // namespace rl2
