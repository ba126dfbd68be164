// The cuDNN error check (STYLE.md "Errors"): a failing cuDNN call throws rl2::Error with the file, the line,
// the expression, cuDNN's status string and cuDNN's own last error message. Used by every cuDNN wrapper
// (gru_cudnn.cpp, encoder_cudnn.cpp).
#pragma once

#include <cudnn.h>

#include <string>

#include "cuda_check.hpp"

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

namespace rl2 {

// Owners of cuDNN objects (cuda_check.hpp's Owned). make_dnn_owned creates one through `create`, a
// callable that calls cuDNN's create function (never its address: see cuda_check.hpp), and checks it.
inline void destroy_dnn(cudnnHandle_t h) { cudnnDestroy(h); }
inline void destroy_tensor_desc(cudnnTensorDescriptor_t d) { cudnnDestroyTensorDescriptor(d); }
inline void destroy_filter_desc(cudnnFilterDescriptor_t d) { cudnnDestroyFilterDescriptor(d); }
inline void destroy_conv_desc(cudnnConvolutionDescriptor_t d) { cudnnDestroyConvolutionDescriptor(d); }
inline void destroy_rnn_desc(cudnnRNNDescriptor_t d) { cudnnDestroyRNNDescriptor(d); }
inline void destroy_rnn_data_desc(cudnnRNNDataDescriptor_t d) { cudnnDestroyRNNDataDescriptor(d); }
inline void destroy_dropout_desc(cudnnDropoutDescriptor_t d) { cudnnDestroyDropoutDescriptor(d); }
using DnnOwner = Owned<cudnnHandle_t, destroy_dnn>;
using TensorDescOwner = Owned<cudnnTensorDescriptor_t, destroy_tensor_desc>;
using FilterDescOwner = Owned<cudnnFilterDescriptor_t, destroy_filter_desc>;
using ConvDescOwner = Owned<cudnnConvolutionDescriptor_t, destroy_conv_desc>;
using RnnDescOwner = Owned<cudnnRNNDescriptor_t, destroy_rnn_desc>;
using RnnDataDescOwner = Owned<cudnnRNNDataDescriptor_t, destroy_rnn_data_desc>;
using DropoutDescOwner = Owned<cudnnDropoutDescriptor_t, destroy_dropout_desc>;
template <class Own, class Create>
Own make_dnn_owned(Create create) {
  typename Own::pointer raw = nullptr;
  RL2_CUDNN_CHECK(create(&raw));
  return Own(raw);
}
inline DnnOwner make_dnn() {
  return make_dnn_owned<DnnOwner>([](cudnnHandle_t* h) { return cudnnCreate(h); });
}

}  // namespace rl2
