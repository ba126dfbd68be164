// cuDNN's GRU for training (DESIGN.md sections 3 and 4; docs/cuda_training.md): a small RAII wrapper over
// the cuDNN 9 RNN API (cudnnRNNForward, cudnnRNNBackwardData_v8, cudnnRNNBackwardWeights_v8) for one
// single-layer, unidirectional GRU of input size I and hidden size H over whole trials:
//   CUDNN_GRU, CUDNN_RNN_DOUBLE_BIAS, CUDNN_LINEAR_INPUT, FP32 data and math, no tensor cores,
//   time-major packed data (CUDNN_RNN_DATA_LAYOUT_SEQ_MAJOR_PACKED) with every sequence length = T,
//   initial hidden state h_0 = 0.
// cuDNN's GRU is torch.nn.GRU's (= gru.hpp's) function: the reset gate multiplies R_n h + b_Rn.
//
// Parameters: our flat canonical layout (gru.hpp: weight_ih [3H, I], weight_hh [3H, H], bias_ih [3H],
// bias_hh [3H], rows r, z, n) is mapped onto cuDNN's opaque weight space ONLY through
// cudnnGetRNNWeightParams: for linLayerID 0, 1, 2 (input GEMM of the reset, update and new gates) and
// 3, 4, 5 (recurrent GEMM of the same gates) cuDNN reports each matrix's and bias's address and shape
// ({1, rows = H, cols} with strides). From those reports the constructor builds, once, the weight-space
// index of every canonical element; pack() scatters canonical -> weight space and unpack() gathers
// weight space (or its gradient) -> canonical, so the round trip is an exact copy.
//
// Activations: y [T, B, H] (every step's hidden state, the head's input), dy [T, B, H] (its gradient,
// written by the caller before backward()), dx [T, B, I] (cuDNN's input gradient: the maze's encoder
// back-propagates it; bandit and MDP networks ignore it), the cuDNN
// workspace and reserve space, all sized for up to max_batch trials. One instance serves several networks
// of the same (I, H) (the policy and the baseline), each with its own weight space: a forward and the
// backward that uses it must follow each other without another forward in between (the reserve space
// holds the forward's intermediates).
//
// Plain C++ (no kernels here; pack/unpack launch kernels/step_ops.cu's Scatter and Gather). All work is queued on `stream`.
#pragma once

#include <cudnn.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cuda_check.hpp"
#include "cudnn_check.hpp"

namespace rl2 {

// Bytes of cuDNN's workspace and reserve space for one training forward/backward of `batch` trials.
struct CudnnTempBytes {
  size_t work = 0;
  size_t reserve = 0;
};

// How cuDNN reported one linear layer (for diagnostics and tests): linLayerID, the matrix's dims and
// strides (nbDims 3: {1, rows, cols}), the bias's dims, and their offsets in floats from the weight space's start.
struct CudnnLinLayer {
  int32_t id = 0;
  int32_t m_dims[3] = {0, 0, 0}, m_strides[3] = {0, 0, 0};
  int32_t b_dims[3] = {0, 0, 0}, b_strides[3] = {0, 0, 0};
  int64_t m_offset = -1, b_offset = -1;
};

class CudnnGru {
 public:
  // Creates the descriptors, queries the weight space and builds the canonical -> weight-space index,
  // then allocates the weight-space gradient, activations, workspace and reserve for max_batch trials of
  // `steps` steps. Throws rl2::Error when cuDNN reports a layout this mapping does not expect.
  CudnnGru(cudnnHandle_t handle, cudaStream_t stream, int32_t input, int32_t hidden, int64_t steps, int64_t max_batch);
  ~CudnnGru();
  CudnnGru(const CudnnGru&) = delete;
  CudnnGru& operator=(const CudnnGru&) = delete;

  // Workspace and reserve bytes cuDNN asks for at this shape (creates and destroys its own descriptors;
  // needs a usable GPU for the handle). For the memory estimate made before anything is allocated.
  static CudnnTempBytes temp_bytes(cudnnHandle_t handle, int32_t input, int32_t hidden, int64_t steps, int64_t batch);

  int32_t input() const { return I_; }
  int32_t hidden() const { return H_; }
  int64_t steps() const { return T_; }
  int64_t max_batch() const { return max_batch_; }
  // Floats of the GRU part of the canonical layout: 3H·I + 3H·H + 6H (= gru_layout().head_w).
  int64_t canonical_floats() const { return static_cast<int64_t>(index_host_.size()); }
  int64_t weight_space_floats() const { return static_cast<int64_t>(ws_bytes_ / sizeof(float)); }
  // index_host()[k]: the weight-space offset (floats) of canonical element k.
  const std::vector<int64_t>& index_host() const { return index_host_; }
  const std::vector<CudnnLinLayer>& lin_layers() const { return lin_layers_; }
  CudnnTempBytes temp_bytes() const { return temp_; }

  // weight_space [weight_space_floats] <- canonical [canonical_floats] (scatter; padding, if any, stays 0
  // when the weight space was zeroed once).
  void pack(const float* canonical, float* weight_space) const;
  // canonical [canonical_floats] <- weight_space (or a weight-space gradient) (gather).
  void unpack(const float* weight_space, float* canonical) const;

  // y() [T, B, H] = GRU(x [T, B, I]) with h_0 = 0 (training mode: fills the reserve space).
  void forward(const float* weight_space, const float* x, int64_t batch);
  // dweight_space() = d/dW of sum(dy() · y) at the last forward (same weight space, x and batch), and
  // dx() = d/dx of the same: cudnnRNNBackwardData_v8 (dx) then cudnnRNNBackwardWeights_v8 (ADD mode into a
  // zeroed gradient).
  void backward(const float* weight_space, const float* x, int64_t batch);

  float* y() const { return y_.data(); }
  float* dy() const { return dy_.data(); }
  float* dweight_space() const { return dws_.data(); }
  // [T, B, I] d/dx of sum(dy() · y) at the last backward(): the input gradient BackwardData computes.
  float* dx() const { return dx_.data(); }

 public:
  // The RNN's descriptors: x [T, B, I], y [T, B, H], h [1, B, H] (cudnn_check.hpp's owners).
  struct Descriptors {
    DropoutDescOwner dropout;
    RnnDescOwner rnn;
    RnnDataDescOwner x, y;
    TensorDescOwner h;
  };

 private:
  void set_batch(int64_t batch);  // data and hidden-state descriptors for `batch` trials
  void allocate();                // index, activations, temp space (after the descriptors exist)

  cudnnHandle_t handle_;
  cudaStream_t stream_;
  int32_t I_, H_;
  int64_t T_, max_batch_, batch_ = -1;
  Descriptors d_;
  size_t ws_bytes_ = 0;
  CudnnTempBytes temp_;
  std::vector<int64_t> index_host_;
  std::vector<CudnnLinLayer> lin_layers_;
  DeviceBuffer<int64_t> index_;        // [canonical_floats] device copy of index_host_
  DeviceBuffer<float> dws_;            // [weight_space_floats] gradient
  DeviceBuffer<float> y_, dy_, dx_;    // [T, max_batch, H], [T, max_batch, H], [T, max_batch, I]
  DeviceBuffer<float> h_zero_;         // [max_batch, H] zeros: hx and dhy
  DeviceBuffer<float> h_scratch_;      // [max_batch, H] hy and dhx (written, never read)
  DeviceBuffer<int32_t> seq_lengths_;  // [max_batch] all T (devSeqLengths)
  DeviceBuffer<unsigned char> work_, reserve_;
};

}  // namespace rl2
