// MPI_COMM_WORLD as a Comm (comm.hpp), for builds with MPI (RL2_WITH_MPI; Debian: libopenmpi-dev).
// Initialised on first use with MPI_THREAD_FUNNELED (only the main thread calls MPI; OpenMP threads never
// do). Errors return (MPI_ERRORS_RETURN) and become rl2::Error with MPI's message, so the CLI reports them
// in one line before it ends the job.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdlib>

#include "rl2/core/check.hpp"
#include "rl2/core/comm.hpp"

namespace rl2 {
namespace {

void mpi_check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw Error(std::string("MPI ") + what + " failed: " + std::string(msg, static_cast<size_t>(len)));
}

// MPI counts are ints: large messages go in pieces of at most 1 GiB.
constexpr size_t kPiece = size_t{1} << 30;

class MpiComm final : public Comm {
 public:
  MpiComm() {
    int provided = 0;
    int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    RL2_REQUIRE(rc == MPI_SUCCESS, "MPI could not start (MPI_Init_thread returned " + std::to_string(rc) + ")");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(v, &len);
    library_ = std::string(v, static_cast<size_t>(len));
    library_ = library_.substr(0, library_.find_first_of(",\n"));
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string describe() const override { return library_ + ", " + std::to_string(size_) + " ranks"; }

  std::vector<std::string> all_gather(const std::string& mine) override {
    const long long n = static_cast<long long>(mine.size());
    std::vector<long long> sizes(static_cast<size_t>(size_));
    mpi_check(MPI_Allgather(&n, 1, MPI_LONG_LONG, sizes.data(), 1, MPI_LONG_LONG, MPI_COMM_WORLD), "Allgather");
    std::vector<int> counts(sizes.size()), displs(sizes.size());
    long long total = 0;
    for (size_t r = 0; r < sizes.size(); ++r) {
      RL2_CHECK(total + sizes[r] <= INT_MAX, "all_gather: more than 2 GiB in all");
      counts[r] = static_cast<int>(sizes[r]);
      displs[r] = static_cast<int>(total);
      total += sizes[r];
    }
    std::string buf(static_cast<size_t>(total), '\0');
    mpi_check(MPI_Allgatherv(mine.data(), static_cast<int>(n), MPI_CHAR, buf.data(), counts.data(), displs.data(),
                             MPI_CHAR, MPI_COMM_WORLD),
              "Allgatherv");
    std::vector<std::string> out;
    for (size_t r = 0; r < sizes.size(); ++r) out.push_back(buf.substr(static_cast<size_t>(displs[r]), counts[r]));
    return out;
  }
  void send(int to, const void* p, size_t bytes) override {
    for (size_t o = 0; o < bytes; o += kPiece) {
      const int n = static_cast<int>(std::min(kPiece, bytes - o));
      mpi_check(MPI_Send(static_cast<const char*>(p) + o, n, MPI_BYTE, to, 0, MPI_COMM_WORLD), "Send");
    }
  }
  void recv(int from, void* p, size_t bytes) override {
    for (size_t o = 0; o < bytes; o += kPiece) {
      const int n = static_cast<int>(std::min(kPiece, bytes - o));
      mpi_check(MPI_Recv(static_cast<char*>(p) + o, n, MPI_BYTE, from, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE), "Recv");
    }
  }
  void broadcast(void* p, size_t bytes, int root) override {
    for (size_t o = 0; o < bytes; o += kPiece) {
      const int n = static_cast<int>(std::min(kPiece, bytes - o));
      mpi_check(MPI_Bcast(static_cast<char*>(p) + o, n, MPI_BYTE, root, MPI_COMM_WORLD), "Bcast");
    }
  }
  void all_reduce_sum(double* p, int64_t n) override {
    for (int64_t o = 0; o < n; o += INT_MAX / 2) {
      const int k = static_cast<int>(std::min<int64_t>(INT_MAX / 2, n - o));
      mpi_check(MPI_Allreduce(MPI_IN_PLACE, p + o, k, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "Allreduce");
    }
  }
  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  int rank_ = 0, size_ = 1;
  std::string library_;
};

MpiComm* g_world = nullptr;

}  // namespace

Comm& mpi_world() {
  if (g_world == nullptr) {
    g_world = new MpiComm();  // lives until mpi_finalize
    // A launcher whose processes MPI did not join (an MPI library other than the launcher's, srun without
    // --mpi) leaves each process a world of its own, which would train alone: every process sees it.
    const LaunchedRank l = launched_rank();
    if (l.size > 1 && g_world->size() != l.size)
      throw CollectiveError("MPI did not start: the launcher started " + std::to_string(l.size) +
                                " processes but MPI joined " + std::to_string(g_world->size()) +
                                " (is mpirun from the same MPI as this build's " + g_world->describe() + "?)",
                            2);
  }
  return *g_world;
}

void mpi_finalize() {
  int init = 0, done = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&done);
  if (init && !done) MPI_Finalize();
}

}  // namespace rl2
