// Safetensors files (DESIGN.md section 7): an 8-byte little-endian header length N, N bytes of JSON
// header ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}},
// padded with spaces to a multiple of 8), then the raw little-endian tensor data. We write and read
// float32 tensors; the reader validates what the reference safetensors readers validate (header size,
// offsets contiguous and inside the file, shape x dtype = bytes, no duplicate names) and throws
// rl2::InputError with a one-line message naming the file and the problem.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace rl2 {

// One float32 tensor, row-major. shape may be empty (a scalar, 1 element) or contain zeros.
struct TensorF32 {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data;  // product(shape) elements
};

struct SafetensorsFile {
  std::vector<TensorF32> tensors;  // in the order of their data in the file
  std::map<std::string, std::string> metadata;

  // The tensor called `name`, or nullptr.
  const TensorF32* find(const std::string& name) const;
};

// Largest JSON header accepted (as the reference readers: 100 MB).
inline constexpr uint64_t kSafetensorsMaxHeader = 100'000'000;

// Serialises tensors (data in the given order, offsets contiguous) and metadata. Empty metadata writes
// no "__metadata__" entry. Throws rl2::Error for an empty, duplicate or reserved name, a negative
// dimension, or data whose size does not match the shape.
std::string encode_safetensors(const std::vector<TensorF32>& tensors,
                               const std::map<std::string, std::string>& metadata);

// Parses and validates a whole file held in `bytes`; `what` names it in error messages. Every entry is
// validated; then any tensor that is not F32 is rejected. Throws rl2::InputError.
SafetensorsFile decode_safetensors(std::string_view bytes, const std::string& what);

// Writes bytes to PATH.tmp-<pid>, flushes and fsyncs it, renames it over PATH and fsyncs the directory,
// so a crash leaves either the old PATH or the new one, never a partial file. Throws rl2::Error.
void write_file_atomic(const std::string& path, std::string_view bytes);

// encode_safetensors + write_file_atomic.
void write_safetensors(const std::string& path, const std::vector<TensorF32>& tensors,
                       const std::map<std::string, std::string>& metadata);

// Reads and decodes PATH; rl2::InputError when it is missing, unreadable or invalid.
SafetensorsFile read_safetensors(const std::string& path);

}  // namespace rl2
