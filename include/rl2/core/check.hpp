// Errors: rl2::Error carries a message plus where it was raised; rl2::InputError is a user mistake
// (bad flag, impossible size, bad file) whose message alone is what the CLI prints. Library code
// throws, never exits; only tools/ turns errors into messages and exit codes.
#pragma once

#include <stdexcept>
#include <string>

namespace rl2 {

class Error : public std::runtime_error {
 public:
  Error(const std::string& msg, const char* file, int line, const char* expr)
      : std::runtime_error(msg), where_(std::string(file) + ":" + std::to_string(line) + ": " + expr) {}
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
  // "file:line: expression" of the failed check; empty for errors raised without a check macro.
  const std::string& where() const { return where_; }

 private:
  std::string where_;
};

// A problem with what the user asked for; the message is complete and fit to print as is.
class InputError : public Error {
 public:
  explicit InputError(const std::string& msg) : Error(msg) {}
};

}  // namespace rl2

// Internal invariant: throws rl2::Error with file, line and the failing expression.
#define RL2_CHECK(cond, msg)                                        \
  do {                                                              \
    if (!(cond)) throw ::rl2::Error((msg), __FILE__, __LINE__, #cond); \
  } while (0)

// Validation of user input: throws rl2::InputError with a one-line message.
#define RL2_REQUIRE(cond, msg)                        \
  do {                                                \
    if (!(cond)) throw ::rl2::InputError((msg));      \
  } while (0)
