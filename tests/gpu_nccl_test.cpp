// NcclComm (src/cuda/nccl_comm.hpp) at world size 1, no MPI launcher: one process makes the id, builds the
// one-rank communicator on device 0 and runs the collectives the data-parallel trainer will use, in place on a
// non-blocking stream. A sum over one rank is the identity, so every result must equal its input bit for bit:
// 4097 floats and 1031 doubles (sizes that fill no power-of-two chunk) drawn as bit patterns over the whole
// finite range (-0, denormals, 1e±38 and 1e±308), where a reduction that touched the values, a float/double
// mix-up or a partial copy would show; and a 1001-byte broadcast from root 0. The refusals (world size below 1,
// rank outside the world, negative counts, a root outside the world) throw before NCCL sees them.
// GpuNcclHost needs no GPU (the loaded NCCL's version and the rank checks); GpuNccl skips with the reason when no
// GPU is usable (label `gpu`). Built only where CMake found NCCL (RL2_WITH_NCCL).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <iostream>
#include <limits>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "cuda/nccl_comm.hpp"
#include "cuda_check.hpp"
#include "gpu_test_util.hpp"
#include "rl2/core/check.hpp"

namespace rl2 {
namespace {

// splitmix64: a fixed stream of bit patterns.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Finite values of every magnitude: random bits with an all-ones exponent (infinity, NaN) turned into zeros.
std::vector<float> float_patterns(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) {
    uint32_t b = static_cast<uint32_t>(mix(i));
    if ((b & 0x7f800000u) == 0x7f800000u) b &= ~0x00800000u;
    std::memcpy(&v[i], &b, sizeof b);
  }
  v[0] = -0.0f;
  v[1] = std::numeric_limits<float>::denorm_min();
  return v;
}

std::vector<double> double_patterns(size_t n) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) {
    uint64_t b = mix(i + 1000003);
    if ((b & 0x7ff0000000000000ull) == 0x7ff0000000000000ull) b &= ~0x0010000000000000ull;
    std::memcpy(&v[i], &b, sizeof b);
  }
  v[0] = -0.0;
  v[1] = std::numeric_limits<double>::denorm_min();
  return v;
}

// The collective `run` applies to a device copy of `host` on `stream`; returns the device's values afterwards.
template <class T, class Run>
std::vector<T> through_device(const std::vector<T>& host, cudaStream_t stream, Run run) {
  DeviceBuffer<T> dev(host.size());
  RL2_CUDA_CHECK(cudaMemcpy(dev.data(), host.data(), dev.bytes(), cudaMemcpyHostToDevice));
  run(dev.data());
  RL2_CUDA_CHECK(cudaStreamSynchronize(stream));
  RL2_CUDA_CHECK(cudaGetLastError());
  std::vector<T> out(host.size());
  RL2_CUDA_CHECK(cudaMemcpy(out.data(), dev.data(), dev.bytes(), cudaMemcpyDeviceToHost));
  return out;
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

TEST(GpuNcclHost, LoadedVersionHasTheBuildsMajor) {
  const std::string loaded = nccl_version();
  const std::string built = RL2_NCCL_BUILT_VERSION;
  std::cout << "NCCL loaded " << loaded << ", built against " << built << "\n";
  EXPECT_TRUE(std::regex_match(loaded, std::regex(R"(\d+\.\d+\.\d+)"))) << loaded;
  EXPECT_EQ(loaded.substr(0, loaded.find('.')), built.substr(0, built.find('.')));
}

TEST(GpuNcclHost, RefusesWorldsAndRanksThatCannotBe) {
  const NcclId id;  // never reaches NCCL: the checks come first
  const std::pair<int, int> cases[] = {{0, 0}, {-1, 0}, {1, 1}, {1, -1}, {4, 4}, {4, -2}};  // (nranks, rank)
  for (auto [nranks, rank] : cases) {
    try {
      NcclComm comm(nranks, rank, id);
      ADD_FAILURE() << "NcclComm(" << nranks << ", " << rank << ") was accepted";
    } catch (const InputError& e) {
      const std::string what = e.what();
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
      EXPECT_NE(what.find(std::to_string(nranks < 1 ? nranks : rank)), std::string::npos) << what;
    }
  }
}

class GpuNccl : public test::CudnnTest {};

TEST_F(GpuNccl, OneRankCommunicatorMovesAndRefusesBadCalls) {
  NcclComm comm(1, 0, nccl_make_id());
  EXPECT_EQ(comm.size(), 1);
  EXPECT_EQ(comm.rank(), 0);
  NcclComm moved(std::move(comm));
  EXPECT_EQ(moved.size(), 1);
  EXPECT_EQ(moved.rank(), 0);
  EXPECT_EQ(comm.size(), 0);  // the moved-from state: empty
  comm = std::move(moved);
  EXPECT_EQ(comm.size(), 1);

  StreamOwner stream = make_stream();
  DeviceBuffer<float> f(4);
  DeviceBuffer<double> d(4);
  EXPECT_THROW(comm.all_reduce_sum(f.data(), -1, stream.get()), Error);
  EXPECT_THROW(comm.all_reduce_sum(d.data(), -1, stream.get()), Error);
  EXPECT_THROW(comm.broadcast(f.data(), f.bytes(), 1, stream.get()), Error);
  EXPECT_THROW(comm.broadcast(f.data(), f.bytes(), -1, stream.get()), Error);
  EXPECT_THROW(moved.all_reduce_sum(f.data(), 4, stream.get()), Error);  // moved from: refused
  comm.all_reduce_sum(static_cast<float*>(nullptr), 0, stream.get());  // nothing queued
  comm.broadcast(nullptr, 0, 0, stream.get());
  RL2_CUDA_CHECK(cudaStreamSynchronize(stream.get()));
}

TEST_F(GpuNccl, OneRankCollectivesLeaveDataBitForBit) {
  NcclComm comm(1, 0, nccl_make_id());
  StreamOwner stream = make_stream();
  cudaStream_t s = stream.get();

  const std::vector<float> f = float_patterns(4097);
  EXPECT_TRUE(same_bits(f, through_device(f, s, [&](float* p) { comm.all_reduce_sum(p, 4097, s); })))
      << "float all-reduce over one rank changed its input";

  const std::vector<double> d = double_patterns(1031);
  EXPECT_TRUE(same_bits(d, through_device(d, s, [&](double* p) { comm.all_reduce_sum(p, 1031, s); })))
      << "double all-reduce over one rank changed its input";

  std::vector<uint8_t> bytes(1001);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(mix(i) >> 56);
  EXPECT_TRUE(same_bits(bytes, through_device(bytes, s, [&](uint8_t* p) { comm.broadcast(p, 1001, 0, s); })))
      << "broadcast from root 0 over one rank changed its bytes";
}

}  // namespace
}  // namespace rl2
