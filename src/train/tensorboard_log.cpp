// The run directory's TensorBoard event file: rewritten atomically from the kept metrics lines at every
// start, then appended one event per iteration (include/rl2/train/tensorboard_log.hpp).
#include "rl2/train/tensorboard_log.hpp"

#include <chrono>
#include <filesystem>

#include "rl2/core/check.hpp"
#include "rl2/io/safetensors.hpp"

namespace fs = std::filesystem;

namespace rl2 {
namespace {

void flatten(const nlohmann::json& j, const std::string& prefix, std::vector<Scalar>& out) {
  for (const auto& [key, value] : j.items()) {
    const std::string tag = prefix.empty() ? key : prefix + "/" + key;
    if (value.is_object()) {
      flatten(value, tag, out);
    } else if (value.is_number() && !(prefix.empty() && key == "iteration")) {
      out.push_back(Scalar{tag, static_cast<float>(value.get<double>())});
    }
  }
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The wall time of the first event of the event file at `path` (the run's start), or a negative number
// when the file is missing or does not start with a whole, valid file_version event.
double recorded_start(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return -1.0;
  std::string head(4096, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  try {
    const std::vector<EventRecord> r = decode_event_records(head, path);
    if (!r.empty() && r.front().file_version == kEventFileVersion) return r.front().wall_time;
  } catch (const InputError&) {
  }
  return -1.0;
}

}  // namespace

std::vector<Scalar> metrics_scalars(const nlohmann::json& line) {
  std::vector<Scalar> out;
  flatten(line, "", out);
  return out;
}

TensorBoardLog::TensorBoardLog(const std::string& dir, const std::vector<std::string>& kept, double elapsed_seconds)
    : path_((fs::path(dir) / kEventFileName).string()) {
  start_ = kept.empty() ? -1.0 : recorded_start(path_);
  if (start_ < 0.0) start_ = now_seconds() - elapsed_seconds;
  std::string bytes = file_version_record(start_);
  for (const std::string& l : kept) {
    const nlohmann::json j = nlohmann::json::parse(l);
    bytes += scalars_record(start_ + j.value("wall_time", 0.0), j.at("iteration").get<int64_t>(), metrics_scalars(j));
  }
  write_file_atomic(path_, bytes);
  out_.open(path_, std::ios::binary | std::ios::app);
  RL2_REQUIRE(out_.good(), "cannot append to " + path_);
}

void TensorBoardLog::append(const nlohmann::json& line) {
  const std::string r =
      scalars_record(start_ + line.value("wall_time", 0.0), line.at("iteration").get<int64_t>(), metrics_scalars(line));
  out_.write(r.data(), static_cast<std::streamsize>(r.size()));
  out_.flush();
  RL2_REQUIRE(out_.good(), "cannot append to " + path_);
}

}  // namespace rl2
