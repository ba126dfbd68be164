// The cuDNN error check (STYLE.md "Errors"): a failing cuDNN call throws rl2::Error with the file, the line,
// the expression, cuDNN's status string and cuDNN's own last error message. Used by every cuDNN wrapper
// (gru_cudnn.cpp, encoder_cudnn.cpp).
#pragma once

#include <cudnn.h>

#include <string>

#include "rl2/core/check.hpp"

// cuDNN calls return a cudnnStatus_t; the status string and cuDNN's own last error message go into the message.
#define RL2_CUDNN_CHECK(expr)                                                                   \
  do {                                                                                          \
    const cudnnStatus_t rl2_dnn_ = (expr);                                                      \
    if (rl2_dnn_ != CUDNN_STATUS_SUCCESS) {                                                     \
      char rl2_dnn_msg_[512] = {0};                                                             \
      cudnnGetLastErrorString(rl2_dnn_msg_, sizeof rl2_dnn_msg_);                               \
      throw ::rl2::Error(std::string(cudnnGetErrorString(rl2_dnn_)) + ": " + rl2_dnn_msg_,      \
                         __FILE__, __LINE__, #expr);                                            \
    }                                                                                           \
  } while (0)
