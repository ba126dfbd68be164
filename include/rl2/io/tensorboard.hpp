// TensorBoard event files (DESIGN.md section 7, docs/interop.md): the bytes only; the run directory's
// event log (which file, when it is rewritten) is src/train/tensorboard_log.cpp.
// An event file is a sequence of TFRecords, each
//   u64 length (little-endian) | u32 masked_crc32c(length bytes) | payload | u32 masked_crc32c(payload)
// with masked_crc32c(b) = rotr(crc32c(b), 15) + 0xa282ead8 (CRC-32C, Castagnoli polynomial, computed by
// ISA-L's crc32_iscsi). Each payload is a serialized Event (proto/tensorboard_event.proto, a subset of
// TensorBoard's event.proto and summary.proto with their field numbers, compiled by protoc at build
// time): first {wall_time, file_version = "brain.Event:2"}, then {wall_time, step, summary of scalars}.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rl2 {

// One scalar of one step: a curve's tag and its value (TensorBoard keeps scalars as float32).
struct Scalar {
  std::string tag;
  float value = 0.0f;
};

// One decoded event: file_version is set for the file's first event, scalars for the others.
struct EventRecord {
  double wall_time = 0.0;
  int64_t step = 0;
  std::string file_version;
  std::vector<Scalar> scalars;
};

inline constexpr const char* kEventFileVersion = "brain.Event:2";

// CRC-32C of bytes (crc32c("123456789") = 0xe3069283), and TFRecord's masked form.
uint32_t crc32c(std::string_view bytes);
uint32_t masked_crc32c(std::string_view bytes);

// payload framed as one TFRecord.
std::string tfrecord(std::string_view payload);

// The framed record of an event file's first event: {wall_time, file_version = kEventFileVersion}.
std::string file_version_record(double wall_time);
// The framed record of one step's scalars: {wall_time, step, summary {value {tag, simple_value}...}}.
std::string scalars_record(double wall_time, int64_t step, const std::vector<Scalar>& scalars);

// Decodes the records of an event file's bytes, checking both CRCs of each. An incomplete last record
// (a writer stopped mid-append) ends the list without error; a CRC mismatch or a payload that is not an
// Event throws rl2::InputError naming `what`.
std::vector<EventRecord> decode_event_records(std::string_view bytes, const std::string& what);

}  // namespace rl2
