// ONNX export of the RL² policy's one-step function (DESIGN.md section 7, docs/interop.md), built with
// ONNX's own generated protobuf classes (Debian's libonnx-dev: onnx_proto), opset kOnnxOpset:
//   bandit, MDP:  x [batch, I], h [batch, H]                               -> probs, logits [batch, A], h_next [batch, H]
//   maze:         image [batch, C, H_img, W_img], extra [batch, A + 2], h   -> the same
// where x and extra are the policy input of policy.hpp (extra = onehot(prev a), prev r, prev d) and image
// the maze's CHW view in [-1, 1]. The graph is
//   maze encoder:  Conv -> Relu -> Conv -> Relu -> Flatten -> Gemm -> Relu ; Gemm -> Relu (extra) ; Concat
//   GRU (one step, linear_before_reset = 1) -> Squeeze = h_next -> Gemm = logits -> Softmax = probs
// ONNX's GRU orders gate rows z, r, h (our and torch's r, z, n) and keeps both biases in one B
// [1, 6H] = [Wb_z Wb_r Wb_h Rb_z Rb_r Rb_h]; with linear_before_reset = 1 its
//   h~ = tanh(W_h x + Wb_h + r * (R_h h + Rb_h))
// is exactly gru.hpp's n, so the export only reorders rows. Initializers keep the torch names of the
// safetensors export where the tensor is unchanged (head.weight, encoder.conv1.weight, ...) and are
// called gru.W, gru.R, gru.B for the reordered GRU tensors.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "rl2/io/safetensors.hpp"
#include "rl2/policy/network.hpp"

namespace rl2 {

inline constexpr int64_t kOnnxOpset = 14;     // GRU-14, Relu-14, Softmax-13, Gemm-13, Conv-11
inline constexpr int64_t kOnnxIrVersion = 7;  // ONNX 1.9, the first release with opset 14
// Protobuf cannot serialize a message of 2 GiB or more; this exporter writes no external data files.
inline constexpr int64_t kOnnxMaxBytes = (int64_t{1} << 31) - 1;

// Throws rl2::InputError, in one line, when the exporter cannot write this network: sizes below 1, an
// encoder image too small for its two convolutions, or weights that would not fit kOnnxMaxBytes.
void check_onnx_exportable(const NetShape& shape);

// The serialized ModelProto of the policy step. tensors: the network's torch-named tensors, each name
// `prefix` + gru.weight_ih_l0 [3H, I], gru.weight_hh_l0 [3H, H], gru.bias_ih_l0 [3H], gru.bias_hh_l0
// [3H], head.weight [A, H], head.bias [A], and with an encoder encoder.conv1.weight [F, C, K, K] ...
// encoder.extra_fc.bias (run.hpp's network_tensors); others are ignored. metadata goes to the model's
// metadata_props. Throws rl2::InputError (check_onnx_exportable) or rl2::Error (a missing tensor).
std::string encode_onnx_policy(const NetShape& shape, const std::vector<TensorF32>& tensors, const std::string& prefix,
                               const std::map<std::string, std::string>& metadata);

}  // namespace rl2
