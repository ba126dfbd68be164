// The single-process communicator, the launcher's rank from the environment, the ordered sums every
// backend shares, and world() (MPI's world is src/core/comm_mpi.cpp, built with RL2_WITH_MPI).
#include "rl2/core/comm.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <memory>

#include "rl2/core/check.hpp"
#include "rl2/core/chunks.hpp"

namespace rl2 {

#if defined(RL2_WITH_MPI)
Comm& mpi_world();  // comm_mpi.cpp
void mpi_finalize();
#endif

namespace {

class SingleComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string describe() const override { return "one process"; }
  std::vector<std::string> all_gather(const std::string& mine) override { return {mine}; }
  void send(int, const void*, size_t) override { RL2_CHECK(false, "one process has no other rank to send to"); }
  void recv(int, void*, size_t) override { RL2_CHECK(false, "one process has no other rank to receive from"); }
  void broadcast(void*, size_t, int root) override { RL2_CHECK(root == 0, "broadcast from a rank that is not there"); }
  void all_reduce_sum(double*, int64_t) override {}
  [[noreturn]] void abort(int code) override { std::_Exit(code); }
};

// The first of the variables that hold a non-negative integer.
int env_int(std::initializer_list<const char*> names, int fallback) {
  for (const char* n : names) {
    const char* v = std::getenv(n);
    if (v == nullptr || *v == '\0') continue;
    char* end = nullptr;
    const long x = std::strtol(v, &end, 10);
    if (end != v && *end == '\0' && x >= 0 && x < (1L << 30)) return static_cast<int>(x);
  }
  return fallback;
}

}  // namespace

Comm& single_process() {
  static SingleComm one;
  return one;
}

LaunchedRank launched_rank() {
  // Open MPI, PMIx (Open MPI 5, srun --mpi=pmix), MPICH/Hydra and srun --mpi=pmi2. Not Slurm's own
  // SLURM_NTASKS: an sbatch script that runs one process sees it too.
  LaunchedRank r;
  r.size = env_int({"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}, 1);
  r.rank = env_int({"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"}, 0);
  if (r.size < 1 || r.rank >= r.size) r = LaunchedRank{};
  return r;
}

Comm& world() {
  const LaunchedRank l = launched_rank();
#if defined(RL2_WITH_MPI)
  if (l.size > 1 || std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr ||
      std::getenv("PMI_SIZE") != nullptr)
    return mpi_world();
  (void)l;
#else
  // Every process finds this alike: a collective error, which rank 0 alone reports.
  if (l.size > 1)
    throw CollectiveError("an MPI launcher started " + std::to_string(l.size) +
                              " processes, but this rl2-cuda was built without MPI (install libopenmpi-dev and "
                              "rebuild; cmake then says \"MPI ON\"), so each would train alone",
                          2);
#endif
  return single_process();
}

void finalize_world() {
#if defined(RL2_WITH_MPI)
  mpi_finalize();
#endif
}

std::vector<double> all_gather_concat(Comm& comm, const std::vector<double>& mine) {
  if (comm.size() == 1) return mine;
  std::vector<double> all;
  for (const std::string& s :
       comm.all_gather(std::string(reinterpret_cast<const char*>(mine.data()), mine.size() * sizeof(double)))) {
    const size_t k = all.size();
    all.resize(k + s.size() / sizeof(double));
    std::memcpy(all.data() + k, s.data(), s.size());
  }
  return all;
}

double ordered_sum(Comm& comm, const std::vector<double>& parts) {
  return sum_in_order(all_gather_concat(comm, parts));
}

double all_max(Comm& comm, double mine) {
  double m = -std::numeric_limits<double>::infinity();
  for (double x : all_gather_concat(comm, {mine})) {
    if (std::isnan(x)) return x;
    m = std::max(m, x);
  }
  return comm.size() == 1 ? mine : m;
}

void agree(Comm& comm, const std::string& failure, int code) {
  if (comm.size() == 1) {
    if (!failure.empty()) throw CollectiveError(failure, code);
    return;
  }
  const std::vector<std::string> all = comm.all_gather(failure.empty() ? "" : std::to_string(code) + " " + failure);
  for (size_t r = 0; r < all.size(); ++r) {
    if (all[r].empty()) continue;
    const size_t sp = all[r].find(' ');
    throw CollectiveError("rank " + std::to_string(r) + ": " + all[r].substr(sp + 1), std::stoi(all[r].substr(0, sp)));
  }
}

}  // namespace rl2
