// rl2-cuda entry point: parses the command line (src/commands/cli.cpp) and turns errors into one-line
// messages and exit codes. No other file calls exit().
#include "commands/cli.hpp"

int main(int argc, char** argv) { return rl2::run_cli(argc, argv); }
