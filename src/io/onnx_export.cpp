// ONNX export of the policy step (include/rl2/io/onnx_export.hpp): a GraphProto of standard operators
// whose initializers are the policy's tensors, the GRU's gate rows reordered from r, z, n to z, r, h.
// Built with ONNX's generated protobuf classes (onnx_proto); depends on no other rl2 source.
#include "rl2/io/onnx_export.hpp"

#include <onnx/onnx_pb.h>

#include <bit>
#include <cstring>

#include "rl2/core/check.hpp"

static_assert(std::endian::native == std::endian::little, "ONNX raw_data is little-endian; this code copies floats as is");

namespace rl2 {
namespace {

using onnx::AttributeProto;
using onnx::GraphProto;
using onnx::NodeProto;
using onnx::TensorProto;

const TensorF32& find_tensor(const std::vector<TensorF32>& tensors, const std::string& name,
                             const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  for (const TensorF32& t : tensors)
    if (t.name == name) {
      RL2_CHECK(t.shape == shape && static_cast<int64_t>(t.data.size()) == count,
                "ONNX export: tensor " + name + " does not have the network's shape");
      return t;
    }
  throw Error("ONNX export: the policy has no tensor " + name);
}

void add_initializer(GraphProto& g, const std::string& name, const std::vector<int64_t>& dims, const float* data,
                     size_t count) {
  TensorProto* t = g.add_initializer();
  t->set_name(name);
  t->set_data_type(TensorProto::FLOAT);
  for (int64_t d : dims) t->add_dims(d);
  t->set_raw_data(std::string(reinterpret_cast<const char*>(data), count * sizeof(float)));
}

void add_int64_initializer(GraphProto& g, const std::string& name, const std::vector<int64_t>& values) {
  TensorProto* t = g.add_initializer();
  t->set_name(name);
  t->set_data_type(TensorProto::INT64);
  t->add_dims(static_cast<int64_t>(values.size()));
  t->set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(int64_t)));
}

NodeProto* add_node(GraphProto& g, const std::string& op, const std::vector<std::string>& inputs,
                    const std::vector<std::string>& outputs) {
  NodeProto* n = g.add_node();
  n->set_op_type(op);
  n->set_name(outputs.empty() ? op : op + "_" + outputs.back());
  for (const auto& i : inputs) n->add_input(i);
  for (const auto& o : outputs) n->add_output(o);
  return n;
}

void set_int(NodeProto* n, const std::string& name, int64_t v) {
  AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(AttributeProto::INT);
  a->set_i(v);
}

void set_ints(NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
  AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

// A float tensor [batch, dims...] as a graph input or output.
void add_value(google::protobuf::RepeatedPtrField<onnx::ValueInfoProto>* list, const std::string& name,
               const std::vector<int64_t>& dims, const std::string& doc) {
  onnx::ValueInfoProto* v = list->Add();
  v->set_name(name);
  v->set_doc_string(doc);
  onnx::TypeProto_Tensor* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(TensorProto::FLOAT);
  onnx::TensorShapeProto* s = t->mutable_shape();
  s->add_dim()->set_dim_param("batch");
  for (int64_t d : dims) s->add_dim()->set_dim_value(d);
}

// Gate blocks of H rows, ours r, z, n -> ONNX's z, r, h; `rows_per_gate` x `cols` floats each.
std::vector<float> zrh_from_rzn(const std::vector<float>& rzn, int64_t rows_per_gate, int64_t cols) {
  const size_t block = static_cast<size_t>(rows_per_gate * cols);
  std::vector<float> out(rzn.size());
  constexpr int kFrom[3] = {1, 0, 2};  // ONNX gate g takes our gate kFrom[g]
  for (int g = 0; g < 3; ++g)
    std::memcpy(out.data() + g * block, rzn.data() + kFrom[g] * block, block * sizeof(float));
  return out;
}

double parameter_floats(const NetShape& s) {
  const double H = s.gru.hidden, I = s.gru.input, A = s.gru.out;
  double n = 3 * H * I + 3 * H * H + 6 * H + A * H + A;
  if (s.encoder) {
    const EncoderShape& e = s.enc;
    const double F = e.filters, K = e.kernel;
    n += F * e.channels * K * K + F + F * F * K * K + F + double(e.image_fc) * double(e.flat()) + e.image_fc +
         double(e.extra_fc) * e.extra_in + e.extra_fc;
  }
  return n;
}

}  // namespace

void check_onnx_exportable(const NetShape& s) {
  RL2_REQUIRE(s.gru.input >= 1 && s.gru.hidden >= 1 && s.gru.out >= 1,
              "ONNX export supports GRU policies with at least one input, hidden unit and action");
  if (s.encoder) {
    const EncoderShape& e = s.enc;
    RL2_REQUIRE(e.channels >= 1 && e.filters >= 1 && e.kernel >= 1 && e.stride >= 1 && e.image_fc >= 1 &&
                    e.extra_in >= 1 && e.extra_fc >= 1 && e.h2() >= 1 && e.w2() >= 1 && e.height >= e.kernel &&
                    e.width >= e.kernel && e.h1() >= e.kernel && e.w1() >= e.kernel && e.out() == s.gru.input,
                "ONNX export supports the maze encoder of two unpadded convolutions on an image large enough "
                "for both, feeding the GRU; this policy's encoder is not one");
  }
  const double bytes = 4.0 * parameter_floats(s) + (1 << 20);  // weights plus a generous MiB for the graph
  RL2_REQUIRE(bytes <= static_cast<double>(kOnnxMaxBytes),
              "the policy's weights take " + std::to_string(static_cast<int64_t>(bytes / (1 << 20))) +
                  " MiB, more than the 2 GiB one ONNX file can hold (protobuf's limit; this exporter writes no "
                  "external data); export it as safetensors instead");
}

std::string encode_onnx_policy(const NetShape& s, const std::vector<TensorF32>& tensors, const std::string& prefix,
                               const std::map<std::string, std::string>& metadata) {
  check_onnx_exportable(s);
  const int64_t H = s.gru.hidden, I = s.gru.input, A = s.gru.out;
  auto tensor = [&](const std::string& name, const std::vector<int64_t>& shape) -> const TensorF32& {
    return find_tensor(tensors, prefix + name, shape);
  };

  onnx::ModelProto model;
  model.set_ir_version(kOnnxIrVersion);
  model.set_producer_name("rl2-cuda");
  model.set_domain("rl2-cuda");
  model.set_model_version(1);
  onnx::OperatorSetIdProto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  model.set_doc_string(
      "One step of an RL2 policy (rl2-cuda, docs/interop.md): inputs are the step's policy input and h, the GRU "
      "state after the previous step (zeros at a trial's start); outputs are the action probabilities, their "
      "logits and h_next, to feed back as h at the next step of the same trial.");
  for (const auto& [key, value] : metadata) {
    onnx::StringStringEntryProto* p = model.add_metadata_props();
    p->set_key(key);
    p->set_value(value);
  }

  GraphProto& g = *model.mutable_graph();
  g.set_name("rl2_policy_step");
  std::string gru_x = "x";
  if (s.encoder) {
    const EncoderShape& e = s.enc;
    const int64_t F = e.filters, K = e.kernel, C = e.channels;
    add_value(g.mutable_input(), "image", {C, e.height, e.width},
              "the maze's first-person view, CHW, values in [-1, 1] (rows from the top)");
    add_value(g.mutable_input(), "extra", {e.extra_in}, "[onehot(previous action), previous reward, previous done]");
    for (const auto& [name, shape] : std::vector<std::pair<std::string, std::vector<int64_t>>>{
             {"encoder.conv1.weight", {F, C, K, K}},
             {"encoder.conv1.bias", {F}},
             {"encoder.conv2.weight", {F, F, K, K}},
             {"encoder.conv2.bias", {F}},
             {"encoder.image_fc.weight", {e.image_fc, e.flat()}},
             {"encoder.image_fc.bias", {e.image_fc}},
             {"encoder.extra_fc.weight", {e.extra_fc, e.extra_in}},
             {"encoder.extra_fc.bias", {e.extra_fc}}}) {
      const TensorF32& t = tensor(name, shape);
      add_initializer(g, name, shape, t.data.data(), t.data.size());
    }
    struct ConvLayer {
      std::string name, in, out;
    };
    for (const ConvLayer& c : {ConvLayer{"conv1", "image", "f1"}, ConvLayer{"conv2", "f1", "f2"}}) {
      NodeProto* n = add_node(g, "Conv", {c.in, "encoder." + c.name + ".weight", "encoder." + c.name + ".bias"}, {c.name});
      set_ints(n, "kernel_shape", {K, K});
      set_ints(n, "strides", {e.stride, e.stride});
      set_ints(n, "pads", {0, 0, 0, 0});
      set_ints(n, "dilations", {1, 1});
      set_int(n, "group", 1);
      add_node(g, "Relu", {c.name}, {c.out});
    }
    set_int(add_node(g, "Flatten", {"f2"}, {"f2_flat"}), "axis", 1);  // [batch, F*H2*W2], (f, i, j) as torch
    set_int(add_node(g, "Gemm", {"f2_flat", "encoder.image_fc.weight", "encoder.image_fc.bias"}, {"image_fc"}), "transB", 1);
    add_node(g, "Relu", {"image_fc"}, {"y_image"});
    set_int(add_node(g, "Gemm", {"extra", "encoder.extra_fc.weight", "encoder.extra_fc.bias"}, {"extra_fc"}), "transB", 1);
    add_node(g, "Relu", {"extra_fc"}, {"y_extra"});
    set_int(add_node(g, "Concat", {"y_image", "y_extra"}, {"y"}), "axis", 1);  // [batch, image_fc + extra_fc]
    gru_x = "y";
  } else {
    add_value(g.mutable_input(), "x", {I}, "the policy input [obs, onehot(previous action), previous reward, previous done]");
  }
  add_value(g.mutable_input(), "h", {H}, "the GRU state after the previous step; zeros at the start of a trial");

  const TensorF32& w_ih = tensor("gru.weight_ih_l0", {3 * H, I});
  const TensorF32& w_hh = tensor("gru.weight_hh_l0", {3 * H, H});
  const TensorF32& b_ih = tensor("gru.bias_ih_l0", {3 * H});
  const TensorF32& b_hh = tensor("gru.bias_hh_l0", {3 * H});
  const TensorF32& head_w = tensor("head.weight", {A, H});
  const TensorF32& head_b = tensor("head.bias", {A});
  const std::vector<float> W = zrh_from_rzn(w_ih.data, H, I), R = zrh_from_rzn(w_hh.data, H, H);
  std::vector<float> B = zrh_from_rzn(b_ih.data, H, 1);
  const std::vector<float> rb = zrh_from_rzn(b_hh.data, H, 1);
  B.insert(B.end(), rb.begin(), rb.end());
  add_initializer(g, "gru.W", {1, 3 * H, I}, W.data(), W.size());
  add_initializer(g, "gru.R", {1, 3 * H, H}, R.data(), R.size());
  add_initializer(g, "gru.B", {1, 6 * H}, B.data(), B.size());
  add_initializer(g, "head.weight", {A, H}, head_w.data.data(), head_w.data.size());
  add_initializer(g, "head.bias", {A}, head_b.data.data(), head_b.data.size());
  add_int64_initializer(g, "axis0", {0});

  add_node(g, "Unsqueeze", {gru_x, "axis0"}, {"gru_x"});  // [1, batch, I]: one time step
  add_node(g, "Unsqueeze", {"h", "axis0"}, {"gru_h"});    // [1, batch, H]: one direction
  NodeProto* gru = add_node(g, "GRU", {"gru_x", "gru.W", "gru.R", "gru.B", "", "gru_h"}, {"", "gru_h_next"});
  set_int(gru, "hidden_size", H);
  set_int(gru, "linear_before_reset", 1);
  add_node(g, "Squeeze", {"gru_h_next", "axis0"}, {"h_next"});
  set_int(add_node(g, "Gemm", {"h_next", "head.weight", "head.bias"}, {"logits"}), "transB", 1);
  set_int(add_node(g, "Softmax", {"logits"}, {"probs"}), "axis", 1);

  add_value(g.mutable_output(), "probs", {A}, "action probabilities: softmax(logits)");
  add_value(g.mutable_output(), "logits", {A}, "the policy head's outputs");
  add_value(g.mutable_output(), "h_next", {H}, "the GRU state after this step: the next step's h");

  RL2_CHECK(model.ByteSizeLong() <= static_cast<size_t>(kOnnxMaxBytes), "ONNX export: the model outgrew its size estimate");
  std::string bytes;
  RL2_CHECK(model.SerializeToString(&bytes), "ONNX export: protobuf could not serialize the model");
  return bytes;
}

}  // namespace rl2
