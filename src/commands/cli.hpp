// The rl2-cuda command tree (DESIGN.md section 1).
#pragma once

namespace rl2 {
// Parses argv, runs the command, prints errors as one line on stderr; returns the process exit code.
int run_cli(int argc, char** argv);
}  // namespace rl2
