// Writes an interop case for tests/interop/safetensors_policy.py: loads an exported policy, builds
// input sequences in the policy's layout (real rollout-like inputs: onehot actions, rewards, dones),
// runs the product's sequence forward (the training path) and writes {"x": [T][B][I], "probs": [T][B][A]}.
// usage: rl2_interop_case MODEL.safetensors CASE.json
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "rl2/core/rng.hpp"
#include "rl2/policy/gru.hpp"
#include "rl2/policy/softmax.hpp"
#include "rl2/train/run.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: rl2_interop_case MODEL.safetensors CASE.json\n";
    return 2;
  }
  try {
    const rl2::LoadedRun run = rl2::load_run(argv[1]);
    const rl2::InputLayout layout = run.cfg.input_layout();
    const rl2::GruShape shape{layout.size(), run.cfg.hidden, run.cfg.env.num_actions()};
    const int64_t T = 6, B = 3, I = layout.size(), A = shape.out;
    std::vector<float> x(static_cast<size_t>(T * B * I)), logits(static_cast<size_t>(T * B * A)), p(static_cast<size_t>(A));
    rl2::RandomStream rs(123, 0, 0, rl2::Purpose::kAction);
    std::vector<float> obs(static_cast<size_t>(layout.obs));
    for (int64_t t = 0; t < T; ++t)
      for (int64_t b = 0; b < B; ++b) {
        for (auto& o : obs) o = 0.0f;
        if (layout.obs > 0) obs[rl2::uniform_int(rs.next_u32(), static_cast<uint32_t>(layout.obs))] = 1.0f;
        const int32_t prev = t == 0 ? -1 : static_cast<int32_t>(rl2::uniform_int(rs.next_u32(), static_cast<uint32_t>(A)));
        rl2::encode_input(layout, obs.data(), prev, t == 0 ? 0.0f : rs.uniform(), t == 0 ? 0.0f : static_cast<float>(t % 2),
                          &x[(t * B + b) * I]);
      }
    rl2::GruCache<float> cache;
    rl2::gru_forward(shape, run.state.policy.data(), x.data(), T, B, cache, logits.data());
    nlohmann::json jx = nlohmann::json::array(), jp = nlohmann::json::array();
    for (int64_t t = 0; t < T; ++t) {
      nlohmann::json xt = nlohmann::json::array(), pt = nlohmann::json::array();
      for (int64_t b = 0; b < B; ++b) {
        xt.push_back(std::vector<float>(&x[(t * B + b) * I], &x[(t * B + b) * I] + I));
        rl2::softmax(&logits[(t * B + b) * A], static_cast<int32_t>(A), p.data());
        pt.push_back(p);
      }
      jx.push_back(xt);
      jp.push_back(pt);
    }
    std::ofstream(argv[2]) << nlohmann::json{{"x", jx}, {"probs", jp}}.dump() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "rl2_interop_case: " << e.what() << "\n";
    return 1;
  }
}
