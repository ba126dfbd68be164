// NcclComm (nccl_comm.hpp): the NCCL calls, each checked by RL2_NCCL_CHECK (kernels/nccl_check.hpp). Semantics
// relied on, from NCCL's API reference (Communicator Creation and Management Functions; Collective
// Communication Functions; In-place Operations):
//   ncclGetUniqueId     called once, by one rank; the id reaches the others by the caller's means (MPI).
//   ncclCommInitRank    (comm*, nranks, id, rank): the CUDA device must be current; blocks until all ranks join.
//   ncclAllReduce       (send, recv, count, type, op, comm, stream): send == recv is in place.
//   ncclBroadcast       (send, recv, count, type, root, comm, stream): send == recv is in place; send is read on
//                       root only.
//   ncclCommDestroy     frees the communicator after its queued work; with peers that never finish it can wait.
//   ncclCommAbort       raises the abort flag first (work still running on the device quits), then frees.
//   ncclGetVersion      NCCL_VERSION_CODE of the loaded library: X*1000 + Y*100 + Z up to 2.8, X*10000 + Y*100
//                       + Z from 2.9 (nccl.h's NCCL_VERSION macro).
// Counts are size_t in NCCL; ours arrive as int64_t and are refused when negative.
#include "cuda/nccl_comm.hpp"

#include <cuda_runtime.h>

#include <cstring>
#include <exception>
#include <string>
#include <utility>

#include "nccl_check.hpp"
#include "rl2/core/check.hpp"

namespace rl2 {

static_assert(sizeof(NcclId::bytes) == NCCL_UNIQUE_ID_BYTES, "NcclId must hold an ncclUniqueId exactly");
static_assert(sizeof(ncclUniqueId) == NCCL_UNIQUE_ID_BYTES, "ncclUniqueId is NCCL_UNIQUE_ID_BYTES of chars");

NcclId nccl_make_id() {
  ncclUniqueId id;
  RL2_NCCL_CHECK(ncclGetUniqueId(&id));
  NcclId out;
  std::memcpy(out.bytes.data(), id.internal, NCCL_UNIQUE_ID_BYTES);
  return out;
}

std::string nccl_version() {
  int code = 0;
  RL2_NCCL_CHECK(ncclGetVersion(&code));
  const int major = code >= 10000 ? code / 10000 : code / 1000;
  const int minor = code >= 10000 ? code / 100 % 100 : code / 100 % 10;
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(code % 100);
}

NcclComm::NcclComm(int nranks, int rank, const NcclId& id) {
  RL2_REQUIRE(nranks >= 1, "NCCL: the world needs at least 1 rank, got " + std::to_string(nranks));
  RL2_REQUIRE(rank >= 0 && rank < nranks, "NCCL: rank " + std::to_string(rank) + " is outside the world of " +
                                              std::to_string(nranks) + " (ranks 0.." + std::to_string(nranks - 1) +
                                              ")");
  ncclUniqueId uid;
  std::memcpy(uid.internal, id.bytes.data(), NCCL_UNIQUE_ID_BYTES);
  ncclComm_t comm = nullptr;
  RL2_NCCL_CHECK(ncclCommInitRank(&comm, nranks, uid, rank));
  comm_ = comm;
  size_ = nranks;
  rank_ = rank;
  uncaught_at_init_ = std::uncaught_exceptions();
}

void NcclComm::release() noexcept {
  if (!comm_) return;
  if (std::uncaught_exceptions() > uncaught_at_init_)
    ncclCommAbort(comm_);
  else
    ncclCommDestroy(comm_);
  comm_ = nullptr;
}

NcclComm::~NcclComm() { release(); }

NcclComm::NcclComm(NcclComm&& o) noexcept
    : comm_(std::exchange(o.comm_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      rank_(std::exchange(o.rank_, 0)),
      uncaught_at_init_(o.uncaught_at_init_) {}

NcclComm& NcclComm::operator=(NcclComm&& o) noexcept {
  if (this != &o) {
    release();
    comm_ = std::exchange(o.comm_, nullptr);
    size_ = std::exchange(o.size_, 0);
    rank_ = std::exchange(o.rank_, 0);
    uncaught_at_init_ = o.uncaught_at_init_;
  }
  return *this;
}

namespace {

void all_reduce_sum_in_place(ncclComm* comm, void* dev, int64_t n, ncclDataType_t type, void* stream) {
  RL2_CHECK(comm != nullptr, "NcclComm used after it was moved from");
  RL2_CHECK(n >= 0, "all_reduce_sum: negative element count " + std::to_string(n));
  if (n == 0) return;
  RL2_CHECK(dev != nullptr, "all_reduce_sum: null device pointer");
  RL2_NCCL_CHECK(ncclAllReduce(dev, dev, static_cast<size_t>(n), type, ncclSum, comm,
                               static_cast<cudaStream_t>(stream)));
}

}  // namespace

void NcclComm::all_reduce_sum(float* dev, int64_t n, void* stream) {
  all_reduce_sum_in_place(comm_, dev, n, ncclFloat, stream);
}

void NcclComm::all_reduce_sum(double* dev, int64_t n, void* stream) {
  all_reduce_sum_in_place(comm_, dev, n, ncclDouble, stream);
}

void NcclComm::broadcast(void* dev, size_t bytes, int root, void* stream) {
  RL2_CHECK(comm_ != nullptr, "NcclComm used after it was moved from");
  RL2_CHECK(root >= 0 && root < size_,
            "broadcast: root " + std::to_string(root) + " is outside ranks 0.." + std::to_string(size_ - 1));
  if (bytes == 0) return;
  RL2_CHECK(dev != nullptr, "broadcast: null device pointer");
  RL2_NCCL_CHECK(ncclBroadcast(dev, dev, bytes, ncclChar, root, comm_, static_cast<cudaStream_t>(stream)));
}

}  // namespace rl2
