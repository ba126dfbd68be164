// The NCCL error check (STYLE.md "Errors"): a failing NCCL call throws rl2::Error with the file, the line, the
// expression, NCCL's result code and string, and NCCL's own last error message. Used by src/cuda/nccl_comm.cpp.
#pragma once

#include <nccl.h>

#include <string>

#include "rl2/core/check.hpp"

// NCCL calls return an ncclResult_t. ncclGetLastError's text may be empty, or come from an earlier
// asynchronous failure; it is the detail that ncclGetErrorString ("invalid usage (run with NCCL_DEBUG=WARN
// for details)") lacks.
#define RL2_NCCL_CHECK(expr)                                                                          \
  do {                                                                                                \
    const ncclResult_t rl2_nccl_ = (expr);                                                            \
    if (rl2_nccl_ != ncclSuccess) {                                                                   \
      const char* rl2_nccl_last_ = ncclGetLastError(nullptr);                                         \
      std::string rl2_nccl_msg_ = "NCCL error " + std::to_string(static_cast<int>(rl2_nccl_)) + ": " + \
                                  ncclGetErrorString(rl2_nccl_);                                      \
      if (rl2_nccl_last_ && *rl2_nccl_last_) rl2_nccl_msg_ += std::string(": ") + rl2_nccl_last_;    \
      throw ::rl2::Error(rl2_nccl_msg_, __FILE__, __LINE__, #expr);                                   \
    }                                                                                                 \
  } while (0)
