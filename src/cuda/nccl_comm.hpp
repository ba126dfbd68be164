// One rank's NCCL communicator for data-parallel training (docs/scaling.md): one MPI rank per GPU, each
// rank all-reducing its gradients and statistics in place on its own stream. Plain C++ (no nccl.h, no
// cuda_runtime.h), so trainer code compiles against it with g++; nccl_comm.cpp holds every NCCL call and is
// built only where CMake found NCCL (RL2_WITH_NCCL). No kernels: NCCL launches its own.
//
// Set-up, as NCCL prescribes: rank 0 calls nccl_make_id(), the caller broadcasts NcclId::bytes to every rank
// (MPI_Bcast of 128 chars), and each rank, with its CUDA device already current (cudaSetDevice), builds
// NcclComm(nranks, its rank, id). The constructor blocks until every rank has joined.
//
// Collectives are queued on the given cudaStream_t (passed as void*) and return before they run; every rank
// must issue the same collectives, in the same order, with the same counts. NCCL's sum order depends on the
// algorithm and the rank count (docs/scaling.md, "NCCL's order"): float results are bit-identical run to run
// for one configuration only.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

struct ncclComm;  // nccl.h: typedef struct ncclComm* ncclComm_t

namespace rl2 {

// ncclUniqueId as plain bytes (nccl_comm.cpp asserts the size is NCCL_UNIQUE_ID_BYTES).
struct NcclId {
  std::array<char, 128> bytes{};
};

// A fresh id (ncclGetUniqueId): called by rank 0 alone, once per communicator.
NcclId nccl_make_id();
// The NCCL loaded at run time, "2.28.9" (ncclGetVersion).
std::string nccl_version();

class NcclComm {
 public:
  // ncclCommInitRank on the current CUDA device. Throws rl2::InputError (one line) when nranks < 1 or rank is
  // outside [0, nranks), before any NCCL call; rl2::Error with NCCL's messages when NCCL fails.
  NcclComm(int nranks, int rank, const NcclId& id);
  // ncclCommDestroy (which waits for the communicator's queued work); ncclCommAbort instead while an
  // exception unwinds, so a rank that failed does not wait on peers that may never answer. Never throws.
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;
  NcclComm(NcclComm&& o) noexcept;
  NcclComm& operator=(NcclComm&& o) noexcept;

  int size() const { return size_; }
  int rank() const { return rank_; }

  // dev[0, n) = sum over ranks of every rank's dev[0, n), in place; dev: device memory, [n]. n < 0 is refused,
  // n == 0 queues nothing. stream: a cudaStream_t (nullptr: the legacy default stream).
  void all_reduce_sum(float* dev, int64_t n, void* stream);
  void all_reduce_sum(double* dev, int64_t n, void* stream);
  // dev[0, bytes) = root's dev[0, bytes) on every rank, in place; root in [0, size()).
  void broadcast(void* dev, size_t bytes, int root, void* stream);

 private:
  void release() noexcept;

  ncclComm* comm_ = nullptr;
  int size_ = 0, rank_ = 0;
  int uncaught_at_init_ = 0;  // std::uncaught_exceptions() when built: more at destruction means unwinding
};

}  // namespace rl2
