// Safetensors I/O (DESIGN.md section 7): round trips, a file written by the reference Python library,
// hand-made bad files each rejected with rl2::InputError naming the problem, atomic writes, and a
// seeded mutation fuzz (decode succeeds consistently or throws InputError, nothing else). Also built
// alone under ASan + UBSan as rl2_fuzz_sanitized, so it uses no rl2 source but safetensors.cpp.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "rl2/core/check.hpp"
#include "rl2/io/safetensors.hpp"

namespace rl2 {
namespace {

namespace fs = std::filesystem;

// 8-byte little-endian length + header text + raw data: a file exactly as given, valid or not.
std::string make_file(const std::string& header, const std::string& data = "") {
  std::string out;
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out += header;
  out += data;
  return out;
}

uint64_t header_length(const std::string& bytes) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  return n;
}

// Decoding `bytes` throws InputError whose message names the file and contains `phrase`.
void expect_rejected(const std::string& bytes, const std::string& phrase) {
  try {
    decode_safetensors(bytes, "bad.safetensors");
    ADD_FAILURE() << "accepted a file that should fail with '" << phrase << "'";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("bad.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find(phrase), std::string::npos) << "expected '" << phrase << "' in: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message is not one line: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw something other than InputError: " << e.what();
  }
}

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape, uint64_t begin,
                  uint64_t end) {
  std::string out = "\"";
  out += name;
  out += "\":{\"dtype\":\"";
  out += dtype;
  out += "\",\"shape\":";
  out += shape;
  out += ",\"data_offsets\":[";
  out += std::to_string(begin);
  out += ",";
  out += std::to_string(end);
  out += "]}";
  return out;
}

// A header object of the given "name": {...} entries.
std::string object(const std::vector<std::string>& entries) {
  std::string out = "{";
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i) out += ",";
    out += entries[i];
  }
  out += "}";
  return out;
}

std::vector<TensorF32> sample_tensors() {
  return {
      {"policy.gru.weight_ih_l0", {6, 3}, {}},
      {"scalar", {}, {42.5f}},
      {"empty", {0, 4}, {}},
      {"policy.head.bias", {2}, {-1.0f, 1e-30f}},
  };
}

std::vector<TensorF32> filled_sample() {
  std::vector<TensorF32> t = sample_tensors();
  for (int i = 0; i < 18; ++i) t[0].data.push_back(0.25f * static_cast<float>(i) - 2.0f);
  return t;
}

TEST(Safetensors, RoundTripKeepsOrderShapesDataAndMetadata) {
  const std::vector<TensorF32> in = filled_sample();
  const std::map<std::string, std::string> meta = {{"format", "rl2-cuda/1"}, {"config", "{\"hidden\": 256}"}};
  const std::string bytes = encode_safetensors(in, meta);
  const SafetensorsFile out = decode_safetensors(bytes, "mem");
  ASSERT_EQ(out.tensors.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(out.tensors[i].name, in[i].name);
    EXPECT_EQ(out.tensors[i].shape, in[i].shape);
    EXPECT_EQ(out.tensors[i].data, in[i].data);  // exact: the bytes are copied, no NaNs here
  }
  EXPECT_EQ(out.metadata, meta);
  ASSERT_NE(out.find("scalar"), nullptr);
  EXPECT_EQ(out.find("scalar")->data, std::vector<float>{42.5f});
  EXPECT_EQ(out.find("missing"), nullptr);
}

TEST(Safetensors, EncodedLayoutFollowsTheSpec) {
  const std::string bytes = encode_safetensors(filled_sample(), {{"format", "rl2-cuda/1"}});
  const uint64_t n = header_length(bytes);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes[8], '{');
  EXPECT_EQ(bytes.size(), 8 + n + (18 + 1 + 0 + 2) * sizeof(float));
  // Data of the first tensor starts right after the header, as little-endian float32.
  float first = 0;
  std::memcpy(&first, bytes.data() + 8 + n, sizeof first);
  EXPECT_EQ(first, -2.0f);
  const std::string header = bytes.substr(8, n);
  EXPECT_NE(header.find("\"data_offsets\":[72,76]"), std::string::npos) << header;
  // No metadata -> no __metadata__ entry; no tensors -> an empty object.
  EXPECT_EQ(encode_safetensors({}, {}), make_file("{}      "));
  EXPECT_TRUE(decode_safetensors(encode_safetensors({}, {}), "mem").tensors.empty());
}

TEST(Safetensors, ReadsAFileWrittenByTheReferenceLibrary) {
  // safetensors.numpy.save({"b": [[1.5, -2]], "a": 3.0, "z": zeros((0, 2))}, {"format": "rl2-cuda/1"})
  const std::string header =
      "{\"__metadata__\":{\"format\":\"rl2-cuda/1\"},\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[4,12]},\"z\":{\"dtype\":\"F32\",\"shape\":[0,2],"
      "\"data_offsets\":[12,12]}}   ";
  const std::string data("\x00\x00\x40\x40\x00\x00\xc0\x3f\x00\x00\x00\xc0", 12);
  const std::string bytes = make_file(header, data);
  ASSERT_EQ(bytes.size(), 228u);
  ASSERT_EQ(header_length(bytes), 0xd0u);
  const SafetensorsFile f = decode_safetensors(bytes, "ref.safetensors");
  ASSERT_EQ(f.tensors.size(), 3u);
  EXPECT_EQ(f.metadata.at("format"), "rl2-cuda/1");
  EXPECT_EQ(f.find("a")->shape, std::vector<int64_t>{});
  EXPECT_EQ(f.find("a")->data, std::vector<float>{3.0f});
  EXPECT_EQ(f.find("b")->shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(f.find("b")->data, (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(f.find("z")->shape, (std::vector<int64_t>{0, 2}));
  EXPECT_TRUE(f.find("z")->data.empty());
}

TEST(Safetensors, EncodeRejectsInconsistentTensors) {
  EXPECT_THROW(encode_safetensors({{"", {1}, {1.0f}}}, {}), Error);
  EXPECT_THROW(encode_safetensors({{"__metadata__", {1}, {1.0f}}}, {}), Error);
  EXPECT_THROW(encode_safetensors({{"a", {1}, {1.0f}}, {"a", {1}, {2.0f}}}, {}), Error);
  EXPECT_THROW(encode_safetensors({{"a", {2}, {1.0f}}}, {}), Error);
  EXPECT_THROW(encode_safetensors({{"a", {-1}, {}}}, {}), Error);
}

TEST(Safetensors, RejectsTruncatedFile) {
  expect_rejected("", "file too short");
  expect_rejected(std::string("\x08\x00\x00", 3), "file too short");
  const std::string good = encode_safetensors(filled_sample(), {});
  expect_rejected(good.substr(0, 7), "file too short");
  // Cut inside the data: the last tensor now reaches past the end.
  expect_rejected(good.substr(0, good.size() - 1), "past the end of the file");
  // Cut inside the header: the length no longer fits.
  expect_rejected(good.substr(0, 20), "exceeds the file size");
}

TEST(Safetensors, RejectsBadHeaderLength) {
  std::string huge = make_file("{}");
  const uint64_t n = kSafetensorsMaxHeader + 1;
  for (int i = 0; i < 8; ++i) huge[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  expect_rejected(huge, "header too large");
  std::string all_ones(8, '\xff');
  expect_rejected(all_ones + "{}", "header too large");
  std::string longer = make_file("{}");
  longer[0] = 3;
  expect_rejected(longer, "exceeds the file size");
}

TEST(Safetensors, RejectsHeaderThatIsNotAJsonObject) {
  expect_rejected(make_file(""), "header is not valid JSON");
  expect_rejected(make_file("{\"a\":"), "header is not valid JSON");
  expect_rejected(make_file("{} x"), "header is not valid JSON");
  expect_rejected(make_file("{\"\xff\":1}"), "header is not valid JSON");
  expect_rejected(make_file("{\"a\":1e400}"), "header is not valid JSON (a number is out of range)");
  expect_rejected(make_file("[1, 2]"), "header is not a JSON object");
  expect_rejected(make_file("\"text\""), "header is not a JSON object");
  expect_rejected(make_file(" {}"), "header does not start with '{'");
}

TEST(Safetensors, RejectsOverlappingOffsets) {
  const std::string header = object({entry("a", "F32", "[2]", 0, 8), entry("b", "F32", "[2]", 4, 12)});
  expect_rejected(make_file(header, std::string(12, '\0')), "overlaps");
  const std::string same = object({entry("a", "F32", "[2]", 0, 8), entry("b", "F32", "[2]", 0, 8)});
  expect_rejected(make_file(same, std::string(8, '\0')), "overlaps");
  // A zero-size tensor strictly inside another overlaps it too.
  const std::string inside = object({entry("a", "F32", "[2]", 0, 8), entry("e", "F32", "[0]", 4, 4)});
  expect_rejected(make_file(inside, std::string(8, '\0')), "overlaps");
}

TEST(Safetensors, RejectsOffsetsOutsideTheFile) {
  const std::string header = object({entry("a", "F32", "[2]", 0, 8), entry("b", "F32", "[2]", 8, 16)});
  expect_rejected(make_file(header, std::string(12, '\0')), "past the end of the file");
  expect_rejected(make_file(object({entry("a", "F32", "[0]", 100, 100)})), "past the end of the file");
  expect_rejected(make_file(object({entry("a", "F32", "[2]", 18446744073709551608ull, 0)}), std::string(8, '\0')),
                  "begin > end");
}

TEST(Safetensors, RejectsGapsInTheDataSection) {
  const std::string gap = object({entry("a", "F32", "[2]", 0, 8), entry("b", "F32", "[2]", 12, 20)});
  expect_rejected(make_file(gap, std::string(20, '\0')), "gap of 4 unused bytes before tensor 'b'");
  expect_rejected(make_file(object({entry("a", "F32", "[1]", 4, 8)}), std::string(8, '\0')), "gap of 4");
  expect_rejected(make_file(object({entry("a", "F32", "[1]", 0, 4)}), std::string(8, '\0')),
                  "unused bytes after the last tensor");
  expect_rejected(make_file("{}", "x"), "unused bytes after the last tensor");
}

TEST(Safetensors, RejectsShapeThatDoesNotMatchTheBytes) {
  expect_rejected(make_file(object({entry("a", "F32", "[2,3]", 0, 20)}), std::string(20, '\0')),
                  "needs 24 bytes but data_offsets [0, 20] span 20");
  expect_rejected(make_file(object({entry("a", "F32", "[]", 0, 0)})), "needs 4 bytes");
  // Huge shapes must not wrap around to a small byte count.
  expect_rejected(make_file(object({entry("a", "F32", "[4611686018427387904,4]", 0, 0)})), "too many elements");
  expect_rejected(make_file(object({entry("a", "F32", "[4611686018427387904]", 0, 0)})), "too many elements");
  expect_rejected(make_file(object({entry("a", "F32", "[9223372036854775808, 0]", 0, 0)})), "too large");
  expect_rejected(make_file(object({entry("a", "F4", "[3]", 0, 1)}), std::string(1, '\0')), "whole number of bytes");
}

TEST(Safetensors, RejectsDuplicateNames) {
  const std::string dup = object({entry("a", "F32", "[1]", 0, 4), entry("a", "F32", "[1]", 4, 8)});
  expect_rejected(make_file(dup, std::string(8, '\0')), "duplicate tensor name 'a'");
  // The same duplicate where the last copy alone would be a valid file.
  const std::string dup_valid = object({entry("a", "F32", "[1]", 0, 4), entry("a", "F32", "[2]", 0, 8)});
  expect_rejected(make_file(dup_valid, std::string(8, '\0')), "duplicate tensor name 'a'");
  expect_rejected(make_file("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}"), "duplicate key 'k'");
  expect_rejected(make_file("{\"__metadata__\":{},\"__metadata__\":{}}"), "duplicate tensor name '__metadata__'");
  const std::string dup_field = "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
  expect_rejected(make_file(dup_field, std::string(4, '\0')), "duplicate key 'dtype'");
}

TEST(Safetensors, RejectsUnknownDtype) {
  expect_rejected(make_file(object({entry("a", "F33", "[1]", 0, 4)}), std::string(4, '\0')), "unknown dtype 'F33'");
  expect_rejected(make_file("{\"a\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", std::string(4, '\0')),
                  "dtype is not a string");
}

TEST(Safetensors, RejectsNonF32DtypeAfterValidatingEveryEntry) {
  const std::string f16 = object({entry("a", "F32", "[1]", 0, 4), entry("h", "F16", "[3]", 4, 10)});
  expect_rejected(make_file(f16, std::string(10, '\0')), "tensor 'h' has dtype F16; only F32 tensors can be read");
  expect_rejected(make_file(object({entry("i", "I64", "[1]", 0, 8)}), std::string(8, '\0')), "has dtype I64");
  // A non-F32 entry with a wrong size is reported as the size problem, not as the dtype.
  const std::string bad_size = object({entry("a", "F32", "[1]", 0, 4), entry("h", "BF16", "[3]", 4, 12)});
  expect_rejected(make_file(bad_size, std::string(12, '\0')), "needs 6 bytes");
}

TEST(Safetensors, RejectsMetadataThatIsNotStrings) {
  expect_rejected(make_file("{\"__metadata__\":{\"format\":1}}"), "__metadata__ value for 'format' is not a string");
  expect_rejected(make_file("{\"__metadata__\":{\"a\":{\"b\":\"c\"}}}"), "is not a string");
  expect_rejected(make_file("{\"__metadata__\":[\"a\"]}"), "__metadata__ is not an object");
  expect_rejected(make_file("{\"__metadata__\":\"a\"}"), "__metadata__ is not an object");
  EXPECT_TRUE(decode_safetensors(make_file("{\"__metadata__\":{}}"), "ok").metadata.empty());
}

TEST(Safetensors, RejectsMalformedEntries) {
  const std::string d4(4, '\0');
  expect_rejected(make_file(object({entry("", "F32", "[1]", 0, 4)}), d4), "empty tensor name");
  expect_rejected(make_file("{\"a\":[1]}", d4), "entry is not an object");
  expect_rejected(make_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", d4), "missing field 'data_offsets'");
  expect_rejected(make_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":0}}", d4),
                  "unexpected field 'x'");
  expect_rejected(make_file(object({entry("a", "F32", "[-1]", 0, 4)}), d4), "shape is not an array of non-negative");
  expect_rejected(make_file(object({entry("a", "F32", "[1.0]", 0, 4)}), d4), "shape is not an array of non-negative");
  expect_rejected(make_file(object({entry("a", "F32", "1", 0, 4)}), d4), "shape is not an array");
  expect_rejected(make_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", d4),
                  "data_offsets is not [begin, end]");
  expect_rejected(make_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,-4]}}", d4),
                  "data_offsets is not [begin, end]");
  // Control characters in names are escaped, so the message stays on one line.
  expect_rejected(make_file(object({entry("a\\nb", "F33", "[1]", 0, 4)}), d4), "tensor 'a\\x0ab'");
}

// A fresh directory per test, removed afterwards (ctest may run tests in parallel).
class SafetensorsFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("rl2_safetensors_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(SafetensorsFiles, AtomicWriteOverwritesAndLeavesNoTempFile) {
  const std::string path = (dir_ / "model.safetensors").string();
  write_safetensors(path, filled_sample(), {{"format", "rl2-cuda/1"}});
  SafetensorsFile f = read_safetensors(path);
  EXPECT_EQ(f.tensors.size(), 4u);
  EXPECT_EQ(f.metadata.at("format"), "rl2-cuda/1");

  write_safetensors(path, {{"only", {1}, {7.0f}}}, {});
  f = read_safetensors(path);
  ASSERT_EQ(f.tensors.size(), 1u);
  EXPECT_EQ(f.tensors[0].data, std::vector<float>{7.0f});
  EXPECT_TRUE(f.metadata.empty());

  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"model.safetensors"});

  write_file_atomic(path, "raw");
  std::ifstream in(path, std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "raw");
}

TEST_F(SafetensorsFiles, WriteIntoMissingDirectoryIsAnError) {
  EXPECT_THROW(write_file_atomic((dir_ / "no" / "such" / "x.safetensors").string(), "x"), Error);
}

TEST_F(SafetensorsFiles, ReadOfMissingOrInvalidFileIsInputError) {
  const std::string missing = (dir_ / "missing.safetensors").string();
  try {
    read_safetensors(missing);
    ADD_FAILURE() << "read a missing file";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("missing.safetensors"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_safetensors(dir_.string()), InputError);
  const std::string garbage = (dir_ / "garbage.safetensors").string();
  write_file_atomic(garbage, "not a safetensors file at all");
  try {
    read_safetensors(garbage);
    ADD_FAILURE() << "read a garbage file";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("garbage.safetensors: header too large"), std::string::npos) << e.what();
  }
}

// After a successful decode, the result must be self-consistent and cover the data section exactly.
void check_consistent(const SafetensorsFile& f, const std::string& bytes) {
  uint64_t total = 0;
  std::set<std::string> names;
  for (const TensorF32& t : f.tensors) {
    uint64_t n = 1;
    for (int64_t d : t.shape) {
      ASSERT_GE(d, 0);
      n *= static_cast<uint64_t>(d);
    }
    ASSERT_EQ(n, t.data.size()) << t.name;
    ASSERT_FALSE(t.name.empty());
    ASSERT_TRUE(names.insert(t.name).second) << t.name;
    total += t.data.size() * sizeof(float);
  }
  ASSERT_EQ(total, bytes.size() - 8 - header_length(bytes));
}

// Edits that keep the header mostly JSON, so mutations reach the deeper checks.
std::string mutate_header(std::string h, std::mt19937_64& rng) {
  static const std::vector<std::string> kTokens = {
      ",", "\"", "{", "}", "[", "]", ":", "0", "9", "-1", "1e3", "1.5", "null", "true", "\"F16\"", "\"F32\"",
      "\"__metadata__\":{\"k\":1},", "\"a\":{},", "18446744073709551615", "\"shape\":[],", "\\u0000"};
  auto pos = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % (n + 1)); };
  switch (rng() % 5) {
    case 0: {  // change a digit
      std::vector<size_t> digits;
      for (size_t i = 0; i < h.size(); ++i)
        if (h[i] >= '0' && h[i] <= '9') digits.push_back(i);
      if (!digits.empty()) h[digits[rng() % digits.size()]] = static_cast<char>('0' + rng() % 10);
      break;
    }
    case 1:
      h.insert(pos(h.size()), kTokens[rng() % kTokens.size()]);
      break;
    case 2: {  // delete a span
      const size_t at = pos(h.size());
      h.erase(at, rng() % 12);
      break;
    }
    case 3: {  // duplicate a span (often a whole key: value)
      const size_t at = pos(h.size());
      const std::string span = h.substr(at, rng() % 80);
      h.insert(pos(h.size()), span);
      break;
    }
    default: {  // swap a dtype
      static const std::vector<std::string> kDtypes = {"F16", "BF16", "F64", "I8", "U8", "BOOL", "F4", "X"};
      const size_t at = h.find("F32", pos(h.size()) / 2);
      if (at != std::string::npos) h.replace(at, 3, kDtypes[rng() % kDtypes.size()]);
      break;
    }
  }
  return h;
}

std::string mutate_bytes(std::string b, std::mt19937_64& rng) {
  switch (rng() % 4) {
    case 0:  // flip a byte
      if (!b.empty()) b[rng() % b.size()] ^= static_cast<char>(1 + rng() % 255);
      break;
    case 1:  // truncate
      b.resize(rng() % (b.size() + 1));
      break;
    case 2: {  // insert random bytes
      std::string ins(1 + rng() % 8, '\0');
      for (char& c : ins) c = static_cast<char>(rng() & 0xff);
      b.insert(rng() % (b.size() + 1), ins);
      break;
    }
    default: {  // rewrite the header length
      if (b.size() < 8) break;
      uint64_t n = header_length(b);
      switch (rng() % 4) {
        case 0: n += rng() % 33 - 16; break;
        case 1: n = rng(); break;
        case 2: n = rng() % 0x100000000ull; break;
        default: n = b.size() - 8 - rng() % 16; break;
      }
      for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((n >> (8 * i)) & 0xff);
      break;
    }
  }
  return b;
}

TEST(SafetensorsFuzz, RandomMutationsAreAcceptedConsistentlyOrRejectedWithInputError) {
  const std::string base = encode_safetensors(filled_sample(), {{"format", "rl2-cuda/1"}, {"env", "bandit"}});
  const std::string base_header = base.substr(8, header_length(base));
  const std::string base_data = base.substr(8 + base_header.size());
  std::mt19937_64 rng(20240531);
  int accepted = 0;
  int rejected = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string header = base_header;
    const int header_edits = static_cast<int>(rng() % 3);
    for (int k = 0; k < header_edits; ++k) header = mutate_header(header, rng);
    std::string bytes = make_file(header, base_data);
    const int byte_edits = static_cast<int>(rng() % 3);
    for (int k = 0; k < byte_edits; ++k) bytes = mutate_bytes(bytes, rng);
    try {
      const SafetensorsFile f = decode_safetensors(bytes, "fuzz");
      ++accepted;
      check_consistent(f, bytes);
      if (::testing::Test::HasFatalFailure()) FAIL() << "inconsistent result at iteration " << iter;
    } catch (const InputError& e) {
      ++rejected;
      ASSERT_EQ(std::string(e.what()).rfind("fuzz: ", 0), 0u) << e.what();
      ASSERT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    } catch (const std::exception& e) {
      FAIL() << "iteration " << iter << " threw something other than InputError: " << e.what();
    }
  }
  // Both outcomes must be exercised for the test to mean anything.
  EXPECT_GT(accepted, 400);
  EXPECT_GT(rejected, 4000);
}

}  // namespace
}  // namespace rl2
