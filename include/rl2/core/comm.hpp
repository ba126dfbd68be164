// The processes of one training job (docs/scaling.md): a communicator over R ranks. One process is the
// single-rank communicator; `mpirun -np R rl2-cuda ...` (or srun, or any MPI launcher) makes every process
// a rank of MPI_COMM_WORLD when the build has MPI (RL2_WITH_MPI). Only what training needs: gathering
// small byte strings, point-to-point messages for the ordered sums (train/shard.hpp), a broadcast, and a
// plain sum (whose order is the library's: used only where bit-identity across rank counts is not promised).
// Every call is collective over all ranks except send/recv, and blocks until it is done.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "rl2/core/check.hpp"

namespace rl2 {

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string describe() const = 0;  // "one process", "Open MPI v4.1.4, 3 ranks"
  // Every rank's string, in rank order, on every rank.
  virtual std::vector<std::string> all_gather(const std::string& mine) = 0;
  virtual void send(int to, const void* p, size_t bytes) = 0;
  virtual void recv(int from, void* p, size_t bytes) = 0;
  virtual void broadcast(void* p, size_t bytes, int root) = 0;
  virtual void all_reduce_sum(double* p, int64_t n) = 0;
  // Ends every rank at once with `code` (a rank's own failure, which the others cannot know of).
  [[noreturn]] virtual void abort(int code) = 0;
};

// The communicator of one process alone.
Comm& single_process();

// This process's world: MPI_COMM_WORLD (MPI initialised on the first call) when an MPI launcher started it
// and the build has MPI; single_process() otherwise. InputError when a launcher started several processes
// and the build has no MPI, or MPI cannot start.
Comm& world();
// Ends MPI when world() started it (the CLI's exit path); nothing otherwise.
void finalize_world();

// What the environment says an MPI launcher (mpirun, mpiexec, srun) started: this process's rank and the
// number of processes; {0, 1} without one. Read without MPI, so errors before MPI starts print once.
struct LaunchedRank {
  int rank = 0;
  int size = 1;
};
LaunchedRank launched_rank();

// Every rank's doubles, concatenated in rank order, on every rank.
std::vector<double> all_gather_concat(Comm& comm, const std::vector<double>& mine);
// Σ of every rank's `parts`, in rank order and each rank's parts in order, starting from 0.0: the same
// double on every rank, and exactly one process's sum of the same parts in order.
double ordered_sum(Comm& comm, const std::vector<double>& parts);
// The largest of every rank's value; NaN when any is NaN (as Backend::max).
double all_max(Comm& comm, double mine);

// An error every rank raised at the same point with the same message (an agreement, e.g. different
// configurations across ranks): rank 0 alone reports it, and every rank exits with its code normally.
// Any other error during a run of several ranks is one rank's own, and ends the job (Comm::abort).
class CollectiveError : public Error {
 public:
  CollectiveError(const std::string& msg, int code) : Error(msg), code_(code) {}
  int code() const { return code_; }  // the exit status: 2 for bad input, 1 otherwise

 private:
  int code_;
};

// Collective: every rank says whether it failed (its message and exit code, or an empty message); when any
// did, every rank throws CollectiveError with the lowest failing rank's message (prefixed with its rank when
// R > 1) and code.
void agree(Comm& comm, const std::string& failure, int code);

}  // namespace rl2
