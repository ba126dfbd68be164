// TensorBoard event records: TFRecord framing with masked CRC-32C (ISA-L) around Event messages built
// with protobuf's classes generated from proto/tensorboard_event.proto. Depends on no other rl2 source.
#include "rl2/io/tensorboard.hpp"

#include <isa-l/crc.h>

#include <algorithm>
#include <bit>
#include <climits>
#include <cstring>

#include "proto/tensorboard_event.pb.h"
#include "rl2/core/check.hpp"

static_assert(std::endian::native == std::endian::little, "TFRecord lengths and CRCs are little-endian");

namespace rl2 {
namespace {

constexpr uint32_t kMaskDelta = 0xa282ead8u;

void put_u32(std::string& out, uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }
void put_u64(std::string& out, uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }

template <class T>
T get_le(std::string_view bytes, size_t at) {
  T v;
  std::memcpy(&v, bytes.data() + at, sizeof v);
  return v;
}

std::string serialize(const tensorboard::Event& e) {
  std::string payload;
  RL2_CHECK(e.SerializeToString(&payload), "protobuf could not serialize a TensorBoard event");
  return tfrecord(payload);
}

}  // namespace

uint32_t crc32c(std::string_view bytes) {
  // ISA-L's crc32_iscsi neither pre- nor post-inverts, and takes an int length: chain it in pieces.
  uint32_t crc = 0xffffffffu;
  auto* p = reinterpret_cast<unsigned char*>(const_cast<char*>(bytes.data()));
  for (size_t left = bytes.size(); left > 0;) {
    const size_t n = std::min<size_t>(left, INT_MAX);
    crc = crc32_iscsi(p, static_cast<int>(n), crc);
    p += n;
    left -= n;
  }
  return ~crc;
}

uint32_t masked_crc32c(std::string_view bytes) {
  const uint32_t crc = crc32c(bytes);
  return ((crc >> 15) | (crc << 17)) + kMaskDelta;
}

std::string tfrecord(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 16);
  put_u64(out, payload.size());
  put_u32(out, masked_crc32c(std::string_view(out.data(), 8)));
  out.append(payload);
  put_u32(out, masked_crc32c(payload));
  return out;
}

std::string file_version_record(double wall_time) {
  tensorboard::Event e;
  e.set_wall_time(wall_time);
  e.set_file_version(kEventFileVersion);
  return serialize(e);
}

std::string scalars_record(double wall_time, int64_t step, const std::vector<Scalar>& scalars) {
  tensorboard::Event e;
  e.set_wall_time(wall_time);
  e.set_step(step);
  tensorboard::Summary* summary = e.mutable_summary();
  for (const Scalar& s : scalars) {
    tensorboard::Summary::Value* v = summary->add_value();
    v->set_tag(s.tag);
    v->set_simple_value(s.value);
  }
  return serialize(e);
}

std::vector<EventRecord> decode_event_records(std::string_view bytes, const std::string& what) {
  std::vector<EventRecord> records;
  size_t at = 0;
  while (bytes.size() - at >= 12) {
    const uint64_t n = get_le<uint64_t>(bytes, at);
    RL2_REQUIRE(get_le<uint32_t>(bytes, at + 8) == masked_crc32c(bytes.substr(at, 8)),
                what + ": record at byte " + std::to_string(at) + " fails its length CRC");
    if (n > bytes.size() - at - 12 || bytes.size() - at - 12 - n < 4) break;  // torn last record
    const std::string_view payload = bytes.substr(at + 12, n);
    RL2_REQUIRE(get_le<uint32_t>(bytes, at + 12 + n) == masked_crc32c(payload),
                what + ": record at byte " + std::to_string(at) + " fails its data CRC");
    tensorboard::Event e;
    RL2_REQUIRE(e.ParseFromArray(payload.data(), static_cast<int>(payload.size())),
                what + ": record at byte " + std::to_string(at) + " is not a TensorBoard event");
    EventRecord r;
    r.wall_time = e.wall_time();
    r.step = e.step();
    if (e.has_file_version()) r.file_version = e.file_version();
    if (e.has_summary())
      for (const auto& v : e.summary().value())
        if (v.value_case() == tensorboard::Summary::Value::kSimpleValue) r.scalars.push_back(Scalar{v.tag(), v.simple_value()});
    records.push_back(std::move(r));
    at += 12 + n + 4;
  }
  return records;
}

}  // namespace rl2
