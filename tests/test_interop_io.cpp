// Interop encoders (docs/interop.md): CRC-32C against the RFC 3720 test vectors, TFRecord framing and
// TensorBoard event records round-tripped through our decoder (torn tails, corrupted CRCs), the metrics
// line -> scalars rule, and the ONNX exporter's refusals (shapes it cannot write, missing tensors). The
// ONNX model itself is checked by onnx.checker and onnxruntime in tests/interop/onnx_check.py, and the
// event files by tensorboard's own readers in tests/interop/tensorboard_check.py.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "rl2/core/check.hpp"
#include "rl2/io/onnx_export.hpp"
#include "rl2/io/tensorboard.hpp"
#include "rl2/train/learner.hpp"
#include "rl2/train/tensorboard_log.hpp"

namespace rl2 {
namespace {

TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(crc32c(""), 0u);
  EXPECT_EQ(crc32c("123456789"), 0xe3069283u);
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8a9136aau);     // RFC 3720 B.4
  EXPECT_EQ(crc32c(std::string(32, '\xff')), 0x62a8ab43u);
  std::string inc;
  for (int i = 0; i < 32; ++i) inc.push_back(static_cast<char>(i));
  EXPECT_EQ(crc32c(inc), 0x46dd794eu);
  const uint32_t c = crc32c("123456789");
  EXPECT_EQ(masked_crc32c("123456789"), ((c >> 15) | (c << 17)) + 0xa282ead8u);
}

TEST(TensorBoardEvents, RoundTripAndTornTail) {
  const std::string bytes = file_version_record(1000.5) + scalars_record(1001.25, 1, {{"mean_return", 6.5f}, {"kl", 0.0f}}) +
                            scalars_record(1002.0, 2, {{"seconds/rollout", -1.5f}});
  const std::vector<EventRecord> r = decode_event_records(bytes, "events");
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].file_version, kEventFileVersion);
  EXPECT_EQ(r[0].wall_time, 1000.5);
  EXPECT_EQ(r[1].step, 1);
  EXPECT_EQ(r[1].wall_time, 1001.25);
  ASSERT_EQ(r[1].scalars.size(), 2u);
  EXPECT_EQ(r[1].scalars[0].tag, "mean_return");
  EXPECT_EQ(r[1].scalars[0].value, 6.5f);
  EXPECT_EQ(r[1].scalars[1].tag, "kl");  // a zero is written too (simple_value is in a oneof)
  EXPECT_EQ(r[1].scalars[1].value, 0.0f);
  EXPECT_EQ(r[2].scalars[0].tag, "seconds/rollout");
  // A writer stopped mid-append: every whole record still reads, the torn one is dropped.
  for (size_t cut = 1; cut < 20; ++cut)
    EXPECT_EQ(decode_event_records(bytes.substr(0, bytes.size() - cut), "events").size(), 2u) << cut;
  // A flipped payload byte fails the data CRC; a flipped length byte the length CRC.
  std::string bad = bytes;
  bad[bad.size() - 6] ^= 1;
  EXPECT_THROW(decode_event_records(bad, "events"), InputError);
  bad = bytes;
  bad[0] ^= 1;
  EXPECT_THROW(decode_event_records(bad, "events"), InputError);
}

TEST(TensorBoardEvents, MetricsLineScalars) {
  const auto line = nlohmann::json::parse(
      R"({"iteration": 3, "kl": 0.01, "status": "accepted", "baseline_loss": null, "env_steps": 120,
          "seconds": {"rollout": 0.5, "cg": 0.25}})");
  const std::vector<Scalar> s = metrics_scalars(line);
  std::vector<std::string> tags;
  for (const Scalar& x : s) tags.push_back(x.tag);
  EXPECT_EQ(tags, (std::vector<std::string>{"env_steps", "kl", "seconds/cg", "seconds/rollout"}));
  EXPECT_EQ(s[0].value, 120.0f);
  EXPECT_EQ(s[1].value, 0.01f);
}

NetShape gru_only(int32_t input, int32_t hidden, int32_t actions) {
  NetShape s;
  s.gru = GruShape{input, hidden, actions};
  return s;
}

TEST(OnnxExport, RefusesShapesItCannotWrite) {
  EXPECT_NO_THROW(check_onnx_exportable(gru_only(9, 256, 3)));
  // A 4096-unit GRU over 60 002 inputs (a 60 000-armed bandit) is 3.9 GB of weights: over protobuf's 2 GiB.
  try {
    check_onnx_exportable(gru_only(60002, 4096, 60000));
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("2 GiB"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
  TrainConfig maze;
  maze.env.kind = EnvKind::kMaze;
  NetShape s = maze.policy_shape();
  EXPECT_NO_THROW(check_onnx_exportable(s));
  s.enc.kernel = 13;  // 30x40 -> 9x14 after the first convolution: too small for a second 13x13 one
  EXPECT_THROW(check_onnx_exportable(s), InputError);
}

TEST(OnnxExport, MissingTensorIsAnError) {
  const NetShape s = gru_only(4, 2, 2);
  std::vector<TensorF32> t = {{"policy.gru.weight_ih_l0", {6, 4}, std::vector<float>(24)}};
  EXPECT_THROW(encode_onnx_policy(s, t, "policy.", {}), Error);
  t = {{"policy.gru.weight_ih_l0", {6, 5}, std::vector<float>(30)}};  // the wrong shape
  EXPECT_THROW(encode_onnx_policy(s, t, "policy.", {}), Error);
}

}  // namespace
}  // namespace rl2
