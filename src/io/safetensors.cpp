// Safetensors encode/decode and atomic file writes (DESIGN.md section 7; the format of
// huggingface/safetensors: u64 little-endian header length, JSON header, raw little-endian data).
// Validation follows the reference readers: header at most 100 MB and inside the file, a JSON object
// whose entries are {dtype, shape, data_offsets} or "__metadata__" (string -> string), no duplicate
// keys, shape x dtype size = data_offsets span, and the offsets, sorted, tile the data section exactly.
// Depends on no other rl2 source (the sanitizer test target builds it alone).
#include "rl2/io/safetensors.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "rl2/core/check.hpp"

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this code copies it as is");

namespace rl2 {

namespace {

using Json = nlohmann::json;

constexpr std::string_view kMetadataKey = "__metadata__";

struct DtypeInfo {
  std::string_view name;
  uint64_t bits;  // per element
};

// The dtypes of the safetensors spec; sub-byte types count in bits as the reference does.
constexpr std::array<DtypeInfo, 20> kDtypes = {{
    {"BOOL", 8},    {"U8", 8},       {"I8", 8},       {"F8_E5M2", 8}, {"F8_E4M3", 8},
    {"F8_E8M0", 8}, {"I16", 16},     {"U16", 16},     {"F16", 16},    {"BF16", 16},
    {"I32", 32},    {"U32", 32},     {"F32", 32},     {"F64", 64},    {"I64", 64},
    {"U64", 64},    {"C64", 64},     {"F4", 4},       {"F6_E2M3", 6}, {"F6_E3M2", 6},
}};

std::optional<uint64_t> dtype_bits(const std::string& dtype) {
  for (const DtypeInfo& d : kDtypes)
    if (d.name == dtype) return d.bits;
  return std::nullopt;
}

// A name fit for a one-line message: quoted, control and non-ASCII bytes escaped, long names cut.
std::string quote(std::string_view s) {
  constexpr size_t kMaxShown = 80;
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < kMaxShown; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x7f || c == '\\' || c == '\'') {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > kMaxShown) out += "...";
  return out + "'";
}

std::string shape_str(const std::vector<uint64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

// product of dims, or nullopt on overflow (a zero dimension makes it 0 whatever the others are).
std::optional<uint64_t> element_count(const std::vector<uint64_t>& shape) {
  if (std::find(shape.begin(), shape.end(), uint64_t{0}) != shape.end()) return 0;
  uint64_t n = 1;
  for (uint64_t d : shape)
    if (__builtin_mul_overflow(n, d, &n)) return std::nullopt;
  return n;
}

// One validated header entry.
struct Entry {
  std::string name;
  std::string dtype;
  std::vector<uint64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

// Parses the header, rejecting duplicate keys in any object (nlohmann would keep the last silently).
Json parse_header(std::string_view header, const std::string& what) {
  std::vector<std::set<std::string>> open_objects;
  std::optional<std::string> duplicate;
  bool duplicate_at_top = false;
  const Json::parser_callback_t track_keys = [&](int, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!duplicate && !open_objects.empty() &&
            !open_objects.back().insert(parsed.get<std::string>()).second) {
          duplicate = parsed.get<std::string>();
          duplicate_at_top = open_objects.size() == 1;
        }
        break;
      default:
        break;
    }
    return true;
  };
  Json j;
  try {
    j = Json::parse(header.begin(), header.end(), track_keys);
  } catch (const Json::parse_error& e) {
    throw InputError(what + ": header is not valid JSON (error at byte " + std::to_string(e.byte) + ")");
  } catch (const Json::out_of_range&) {
    throw InputError(what + ": header is not valid JSON (a number is out of range)");
  } catch (const Json::exception&) {
    throw InputError(what + ": header is not valid JSON");
  }
  if (duplicate) {
    if (duplicate_at_top)
      throw InputError(what + ": duplicate tensor name " + quote(*duplicate) + " in the header");
    throw InputError(what + ": duplicate key " + quote(*duplicate) + " in the header");
  }
  if (!j.is_object()) throw InputError(what + ": header is not a JSON object");
  if (header.front() != '{') throw InputError(what + ": header does not start with '{'");
  return j;
}

std::map<std::string, std::string> parse_metadata(const Json& m, const std::string& what) {
  if (!m.is_object()) throw InputError(what + ": __metadata__ is not an object of strings");
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : m.items()) {
    if (!value.is_string())
      throw InputError(what + ": __metadata__ value for " + quote(key) + " is not a string");
    out.emplace(key, value.get<std::string>());
  }
  return out;
}

Entry parse_entry(const std::string& name, const Json& e, uint64_t data_size, const std::string& what) {
  const std::string where = what + ": tensor " + quote(name);
  if (name.empty()) throw InputError(what + ": empty tensor name in the header");
  if (!e.is_object()) throw InputError(where + ": entry is not an object");
  for (const auto& [key, value] : e.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      throw InputError(where + ": unexpected field " + quote(key));
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!e.contains(key)) throw InputError(where + ": missing field '" + key + "'");

  Entry out;
  out.name = name;
  const Json& dtype = e.at("dtype");
  if (!dtype.is_string()) throw InputError(where + ": dtype is not a string");
  out.dtype = dtype.get<std::string>();
  const std::optional<uint64_t> bits = dtype_bits(out.dtype);
  if (!bits) throw InputError(where + ": unknown dtype " + quote(out.dtype));

  const Json& shape = e.at("shape");
  if (!shape.is_array()) throw InputError(where + ": shape is not an array of non-negative integers");
  for (const Json& d : shape) {
    if (!d.is_number_unsigned())
      throw InputError(where + ": shape is not an array of non-negative integers");
    const uint64_t v = d.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      throw InputError(where + ": shape dimension " + std::to_string(v) + " is too large");
    out.shape.push_back(v);
  }

  const Json& offsets = e.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned())
    throw InputError(where + ": data_offsets is not [begin, end] with non-negative integers");
  out.begin = offsets[0].get<uint64_t>();
  out.end = offsets[1].get<uint64_t>();
  const std::string span = "data_offsets [" + std::to_string(out.begin) + ", " + std::to_string(out.end) + "]";
  if (out.begin > out.end) throw InputError(where + ": " + span + " has begin > end");
  if (out.end > data_size)
    throw InputError(where + ": " + span + " point past the end of the file (data section is " +
                     std::to_string(data_size) + " bytes)");

  const std::optional<uint64_t> count = element_count(out.shape);
  uint64_t total_bits = 0;
  if (!count || __builtin_mul_overflow(*count, *bits, &total_bits))
    throw InputError(where + ": shape " + shape_str(out.shape) + " has too many elements");
  if (total_bits % 8 != 0)
    throw InputError(where + ": shape " + shape_str(out.shape) + " of dtype " + out.dtype +
                     " does not fill a whole number of bytes");
  const uint64_t nbytes = total_bits / 8;
  if (nbytes != out.end - out.begin)
    throw InputError(where + ": shape " + shape_str(out.shape) + " of dtype " + out.dtype + " needs " +
                     std::to_string(nbytes) + " bytes but " + span + " span " +
                     std::to_string(out.end - out.begin));
  return out;
}

// Sorted by offset, the tensors must tile [0, data_size) exactly.
void check_tiling(std::vector<Entry>& entries, uint64_t data_size, const std::string& what) {
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expected = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    if (e.begin < expected)
      throw InputError(what + ": tensor " + quote(e.name) + " (data_offsets [" + std::to_string(e.begin) +
                       ", " + std::to_string(e.end) + "]) overlaps tensor " + quote(previous->name));
    if (e.begin > expected)
      throw InputError(what + ": gap of " + std::to_string(e.begin - expected) +
                       " unused bytes before tensor " + quote(e.name));
    expected = e.end;
    previous = &e;
  }
  if (expected != data_size)
    throw InputError(what + ": gap of " + std::to_string(data_size - expected) +
                     " unused bytes after the last tensor");
}

uint64_t checked_count(const std::vector<int64_t>& shape, const std::string& name) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    RL2_CHECK(d >= 0, "tensor '" + name + "' has a negative dimension");
    RL2_CHECK(!__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n),
              "tensor '" + name + "' has too many elements");
  }
  return n;
}

std::string io_error(const std::string& action, const std::string& path, int err) {
  return "cannot " + action + " '" + path + "': " + std::strerror(err);
}

}  // namespace

const TensorF32* SafetensorsFile::find(const std::string& name) const {
  for (const TensorF32& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

std::string encode_safetensors(const std::vector<TensorF32>& tensors,
                               const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[std::string(kMetadataKey)] = metadata;
  uint64_t offset = 0;
  for (const TensorF32& t : tensors) {
    RL2_CHECK(!t.name.empty(), "tensor name is empty");
    RL2_CHECK(t.name != kMetadataKey, "tensor name '__metadata__' is reserved");
    RL2_CHECK(!header.contains(t.name), "duplicate tensor name '" + t.name + "'");
    RL2_CHECK(checked_count(t.shape, t.name) == t.data.size(),
              "tensor '" + t.name + "': data size does not match its shape");
    const uint64_t nbytes = t.data.size() * sizeof(float);
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string json;
  try {
    json = header.dump();
  } catch (const nlohmann::ordered_json::type_error&) {
    throw Error("safetensors: a tensor name or metadata string is not valid UTF-8");
  }
  json.append((8 - json.size() % 8) % 8, ' ');

  std::string out;
  out.reserve(8 + json.size() + offset);
  const uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out += json;
  for (const TensorF32& t : tensors)
    if (!t.data.empty()) out.append(reinterpret_cast<const char*>(t.data.data()), t.data.size() * sizeof(float));
  return out;
}

SafetensorsFile decode_safetensors(std::string_view bytes, const std::string& what) {
  if (bytes.size() < 8)
    throw InputError(what + ": file too short (" + std::to_string(bytes.size()) +
                     " bytes; a safetensors file starts with an 8-byte header length)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  if (n > kSafetensorsMaxHeader)
    throw InputError(what + ": header too large (" + std::to_string(n) + " bytes; the limit is " +
                     std::to_string(kSafetensorsMaxHeader) + ")");
  if (n > bytes.size() - 8)
    throw InputError(what + ": header length " + std::to_string(n) + " exceeds the file size (" +
                     std::to_string(bytes.size()) + " bytes)");
  const std::string_view header = bytes.substr(8, n);
  const std::string_view data = bytes.substr(8 + n);

  const Json j = parse_header(header, what);
  SafetensorsFile file;
  std::vector<Entry> entries;
  for (const auto& [key, value] : j.items()) {
    if (key == kMetadataKey)
      file.metadata = parse_metadata(value, what);
    else
      entries.push_back(parse_entry(key, value, data.size(), what));
  }
  check_tiling(entries, data.size(), what);
  for (const Entry& e : entries)
    if (e.dtype != "F32")
      throw InputError(what + ": tensor " + quote(e.name) + " has dtype " + e.dtype +
                       "; only F32 tensors can be read (rl2-cuda files are float32)");

  file.tensors.reserve(entries.size());
  for (const Entry& e : entries) {
    TensorF32 t;
    t.name = e.name;
    t.shape.assign(e.shape.begin(), e.shape.end());
    t.data.resize((e.end - e.begin) / sizeof(float));
    if (!t.data.empty()) std::memcpy(t.data.data(), data.data() + e.begin, e.end - e.begin);
    file.tensors.push_back(std::move(t));
  }
  return file;
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error(io_error("create", tmp, errno));
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size() && std::fflush(f) == 0 &&
            ::fsync(::fileno(f)) == 0;
  int err = errno;
  if (std::fclose(f) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    std::remove(tmp.c_str());
    throw Error(io_error("write", tmp, err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    std::remove(tmp.c_str());
    throw Error(io_error("rename " + tmp + " to", path, err));
  }
  // The rename is durable only once the directory entry is.
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) throw Error(io_error("open directory", dir, errno));
  // EINVAL: this filesystem cannot sync directories, so there is nothing more to wait for.
  const bool synced = ::fsync(dfd) == 0 || errno == EINVAL;
  err = errno;
  ::close(dfd);
  if (!synced) throw Error(io_error("fsync directory", dir, err));
}

void write_safetensors(const std::string& path, const std::vector<TensorF32>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, encode_safetensors(tensors, metadata));
}

SafetensorsFile read_safetensors(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError(io_error("open", path, errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw InputError("cannot read '" + path + "': not a regular file");
  }
  std::string bytes;
  bytes.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    const ssize_t got = ::read(fd, buf, sizeof buf);
    if (got == 0) break;
    if (got < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      throw InputError(io_error("read", path, err));
    }
    bytes.append(buf, static_cast<size_t>(got));
  }
  ::close(fd);
  return decode_safetensors(bytes, path);
}

}  // namespace rl2
