// Checkpoints and exports: torch-named tensors of the networks (and the trainer state) in safetensors files,
// written atomically, and their loading for resume, eval and export.
#include <algorithm>
#include <filesystem>

#include "rl2/core/check.hpp"
#include "rl2/policy/network.hpp"
#include "rl2/train/checkpoint.hpp"
#include "rl2/train/config_codec.hpp"

namespace fs = std::filesystem;

namespace rl2 {
namespace {

constexpr const char* kFormat = "rl2-cuda/1";

// The torch-named tensors of one network (torch.nn.GRU's names, then the encoder's Conv2d/Linear names
// under `encoder.`): name, shape, offset in the flat parameter vector.
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset;
  int64_t count() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

std::vector<TensorSpec> network_specs(const NetShape& shape) {
  const GruLayout l = gru_layout(shape.gru);
  const int64_t H = shape.gru.hidden, I = shape.gru.input, O = shape.gru.out;
  std::vector<TensorSpec> specs = {
      {"gru.weight_ih_l0", {3 * H, I}, l.weight_ih}, {"gru.weight_hh_l0", {3 * H, H}, l.weight_hh},
      {"gru.bias_ih_l0", {3 * H}, l.bias_ih},        {"gru.bias_hh_l0", {3 * H}, l.bias_hh},
      {"head.weight", {O, H}, l.head_w},             {"head.bias", {O}, l.head_b}};
  if (shape.encoder) {
    const EncoderShape& e = shape.enc;
    const EncoderLayout el = encoder_layout(e);
    const int64_t F = e.filters, K = e.kernel, at = shape.gru_size();
    const std::vector<TensorSpec> enc = {
        {"encoder.conv1.weight", {F, e.channels, K, K}, el.conv1_w}, {"encoder.conv1.bias", {F}, el.conv1_b},
        {"encoder.conv2.weight", {F, F, K, K}, el.conv2_w},          {"encoder.conv2.bias", {F}, el.conv2_b},
        {"encoder.image_fc.weight", {e.image_fc, e.flat()}, el.image_fc_w},
        {"encoder.image_fc.bias", {e.image_fc}, el.image_fc_b},
        {"encoder.extra_fc.weight", {e.extra_fc, e.extra_in}, el.extra_fc_w},
        {"encoder.extra_fc.bias", {e.extra_fc}, el.extra_fc_b}};
    for (TensorSpec t : enc) {
      t.offset += at;
      specs.push_back(std::move(t));
    }
  }
  return specs;
}

void add_network(std::vector<TensorF32>& out, const std::string& prefix, const NetShape& shape,
                 const std::vector<float>& p) {
  RL2_CHECK(static_cast<int64_t>(p.size()) == shape.size(), "parameter vector size does not match its layout");
  for (const TensorSpec& t : network_specs(shape))
    out.push_back(TensorF32{prefix + t.name, t.shape,
                            std::vector<float>(p.begin() + t.offset, p.begin() + t.offset + t.count())});
}

std::vector<float> read_network(const SafetensorsFile& f, const std::string& prefix, const NetShape& shape,
                                const std::string& source) {
  std::vector<float> p(static_cast<size_t>(shape.size()));
  for (const TensorSpec& spec : network_specs(shape)) {
    const TensorF32* t = f.find(prefix + spec.name);
    RL2_REQUIRE(t != nullptr, source + ": tensor '" + prefix + spec.name + "' is missing");
    RL2_REQUIRE(t->shape == spec.shape,
                source + ": tensor '" + prefix + spec.name + "' has the wrong shape for this configuration");
    std::copy(t->data.begin(), t->data.end(), p.begin() + spec.offset);
  }
  return p;
}

}  // namespace

std::vector<TensorF32> network_tensors(const TrainConfig& cfg, const TrainState& st) {
  std::vector<TensorF32> t;
  add_network(t, "policy.", cfg.policy_shape(), st.policy);
  add_network(t, "baseline.", cfg.baseline_shape(), st.baseline);
  return t;
}

std::map<std::string, std::string> network_metadata(const TrainConfig& cfg) {
  return {{"format", kFormat},
          {"env", cfg.env.name()},
          {"input_layout", cfg.input_layout().describe()},
          {"config", config_to_json(cfg).dump()}};
}

void export_policy(const std::string& path, const TrainConfig& cfg, const TrainState& st) {
  write_safetensors(path, network_tensors(cfg, st), network_metadata(cfg));
}

void save_checkpoint(const std::string& path, const TrainConfig& cfg, const TrainState& st) {
  std::vector<TensorF32> t = network_tensors(cfg, st);
  for (auto [name, adam] : {std::pair{"baseline", &st.baseline_adam}, std::pair{"policy", &st.policy_adam}}) {
    const int64_t n = static_cast<int64_t>(adam->m.size());
    if (n == 0) continue;  // never stepped (the policy's moments exist only with PPO)
    t.push_back(TensorF32{std::string("trainer.") + name + "_adam_m", {n}, adam->m});
    t.push_back(TensorF32{std::string("trainer.") + name + "_adam_v", {n}, adam->v});
  }
  auto meta = network_metadata(cfg);
  nlohmann::json s;
  s["iteration"] = st.iteration;
  s["adam_t"] = st.baseline_adam.t;
  s["policy_adam_t"] = st.policy_adam.t;
  s["return_mean"] = st.return_mean;
  s["return_std"] = st.return_std;
  s["nonfinite_in_a_row"] = st.nonfinite_in_a_row;
  s["elapsed_seconds"] = st.elapsed_seconds;
  meta["trainer_state"] = s.dump();
  write_safetensors(path, t, meta);
}

LoadedRun load_run(const std::string& dir_or_file) {
  std::error_code ec;
  std::string file = dir_or_file;
  if (fs::is_directory(dir_or_file, ec)) {
    file = (fs::path(dir_or_file) / "checkpoint.safetensors").string();
    if (!fs::exists(file, ec)) file = (fs::path(dir_or_file) / "policy.safetensors").string();
    RL2_REQUIRE(fs::exists(file, ec), dir_or_file + " holds no checkpoint.safetensors or policy.safetensors");
  }
  const SafetensorsFile f = read_safetensors(file);
  auto it = f.metadata.find("format");
  RL2_REQUIRE(it == f.metadata.end() || it->second.rfind("rl2-cuda/", 0) != 0 || it->second == kFormat,
              file + ": written in format " + it->second + ", which this rl2-cuda does not read (it reads " +
                  std::string(kFormat) + "); use the rl2-cuda version that wrote it");
  RL2_REQUIRE(it != f.metadata.end() && it->second == kFormat,
              file + ": not an rl2-cuda file (metadata format is not " + std::string(kFormat) + ")");
  it = f.metadata.find("config");
  RL2_REQUIRE(it != f.metadata.end(), file + ": metadata has no config");
  LoadedRun r;
  r.source = file;
  try {
    r.cfg = config_from_json(nlohmann::json::parse(it->second));
  } catch (const nlohmann::json::exception&) {
    throw InputError(file + ": metadata config is not valid JSON");
  }
  r.state.policy = read_network(f, "policy.", r.cfg.policy_shape(), file);
  r.state.baseline = read_network(f, "baseline.", r.cfg.baseline_shape(), file);
  it = f.metadata.find("trainer_state");
  if (it != f.metadata.end()) {  // a checkpoint, not a bare export
    nlohmann::json s;
    try {
      s = nlohmann::json::parse(it->second);
    } catch (const nlohmann::json::exception&) {
      throw InputError(file + ": metadata trainer_state is not valid JSON");
    }
    r.state.iteration = json_field<int64_t>(s, "iteration");
    r.state.baseline_adam.t = json_field<int64_t>(s, "adam_t");
    r.state.policy_adam.t = s.value("policy_adam_t", int64_t{0});
    r.state.return_mean = json_field<double>(s, "return_mean");
    r.state.return_std = json_field<double>(s, "return_std");
    r.state.nonfinite_in_a_row = json_field<int32_t>(s, "nonfinite_in_a_row");
    r.state.elapsed_seconds = json_field<double>(s, "elapsed_seconds");
    for (auto [name, adam, size] : {std::tuple{"baseline", &r.state.baseline_adam, r.state.baseline.size()},
                                    std::tuple{"policy", &r.state.policy_adam, r.state.policy.size()}}) {
      if (adam->t == 0) continue;  // never stepped: no moments saved
      for (auto [suffix, dst] : {std::pair{"_adam_m", &adam->m}, std::pair{"_adam_v", &adam->v}}) {
        const std::string tname = std::string("trainer.") + name + suffix;
        const TensorF32* t = f.find(tname);
        RL2_REQUIRE(t && t->data.size() == size, file + ": tensor '" + tname + "' is missing or has the wrong size");
        *dst = t->data;
      }
    }
  }
  return r;
}

}  // namespace rl2
