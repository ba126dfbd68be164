// rl2-cuda entry point: parses the command line (src/commands/cli.cpp) and turns errors into one-line
// messages and exit codes. No other file calls exit().
#include "commands/cli.hpp"
#include "rl2/core/comm.hpp"

int main(int argc, char** argv) {
  const int status = rl2::run_cli(argc, argv);
  rl2::finalize_world();  // MPI, when the command started it
  return status;
}
