// The maze policy's conv encoder (include/rl2/policy/encoder.hpp) on the device, for the CUDA learner and
// rollout: the same function and the same flat parameter layout (encoder_layout) as the CPU encoder, so a
// checkpoint trained on either backend runs on the other.
//   conv1, conv2   cudnnConvolutionForward (NCHW, cross-correlation as torch, FP32 data and math:
//                  CUDNN_FMA_MATH, no TF32), bias and ReLU by step ops (kernels/step_ops.cu); backward:
//                  cudnnConvolutionBackwardFilter (beta = 1: accumulates) for both weights,
//                  cudnnConvolutionBackwardData for conv2 only (the image's gradient is never needed), bias
//                  gradients as fixed-order double sums. Deterministic algorithms only (forward
//                  IMPLICIT_PRECOMP_GEMM, else IMPLICIT_GEMM, else GEMM; backward filter and data ALGO_1,
//                  else a deterministic FFT/Winograd one), chosen once at construction, so runs are
//                  reproducible bit for bit.
//   image_fc,      cuBLAS SGEMMs over all M rows on the flattened conv2 output and on the extra inputs
//   extra_fc       (the handle's math mode is left as the caller set it; the CUDA backend's: FP32, no TF32).
// Per-step input rows x [M, shape.in()] = [image (C·H·W, CHW), extra (shape.extra_in)], exactly what
// encode_input writes (the image is read in place through a strided cuDNN tensor descriptor, or copied
// to a packed buffer per chunk should cuDNN reject that descriptor); output y [M, shape.out()] =
// [relu(image_fc), relu(extra_fc)], the GRU's input. relu'(0) = 0, as the CPU's.
// The convolutions run in chunks of at most 32768 rows (fewer when a chunk's tensor would pass 2^31 - 1
// elements, cuDNN's limit); the activations of all max_rows rows are kept for backward.
// Plain C++ (compiles with g++). All work is queued on `stream`: for each call the handles are bound to it
// (and cuBLAS to host scalars), and their previous stream and pointer mode are put back after.
#pragma once

#include <cublas_v2.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <unordered_map>

#include "cuda_check.hpp"
#include "cudnn_check.hpp"
#include "rl2/policy/encoder.hpp"

namespace rl2 {

class CudnnEncoder {
 public:
  // Creates the descriptors, chooses the algorithms, allocates activations and workspace for up to
  // max_rows rows. Throws rl2::Error on a cuDNN failure.
  CudnnEncoder(cudnnHandle_t dnn, cublasHandle_t blas, cudaStream_t stream, const EncoderShape& shape,
               int64_t max_rows);
  ~CudnnEncoder();
  CudnnEncoder(const CudnnEncoder&) = delete;
  CudnnEncoder& operator=(const CudnnEncoder&) = delete;

  // Device bytes an encoder of max_rows rows allocates, for the memory check made before anything is
  // allocated; touches no CUDA API. A formula: 4 bytes × (max_rows · (F·H1·W1 + 2·flat + 2·out) + chunk ·
  // F·H1·W1) (f1, f2, y, their gradients dz and d2, and d1 of one chunk, chunk = min(max_rows, 32768)) +
  // the bias-sum scratch + a 64 MiB allowance for cuDNN's workspace (an estimate, not a bound: implicit
  // GEMMs are expected to need little or none, but the constructor allocates what cuDNN asks; the
  // packed-image fallback, chunk · C·H·W floats, is not counted).
  static double bytes(const EncoderShape& shape, int64_t max_rows);

  const EncoderShape& shape() const { return shape_; }
  int64_t max_rows() const { return max_rows_; }

  // y [M, out] = encoder(params [encoder_layout(shape).total], x [M, in]); M <= max_rows. Keeps the
  // activations for backward.
  void forward(const float* params, const float* x, int64_t M, float* y);
  // d_params [total] += d/dparams sum(d_y · y) at the last forward, which must have been this encoder's
  // with the same params, x and M. d_y: [M, out].
  void backward(const float* params, const float* x, int64_t M, const float* d_y, float* d_params);

 private:
  // Sets the cuDNN tensor descriptors' batch size to n rows (a no-op when they already describe n).
  void set_rows(int64_t n);
  // The image rows [r0, r0 + n) of x as conv1's input: x itself (strided descriptor), or a packed copy
  // in image_ when cuDNN rejected the strided descriptor at construction.
  const float* image_rows(const float* x, int64_t r0, int64_t n);
  // cuDNN's workspace need of the chosen algorithms at the descriptors' current rows.
  size_t workspace_bytes() const;

  cudnnHandle_t dnn_;
  cublasHandle_t blas_;
  cudaStream_t stream_;
  EncoderShape shape_;
  int64_t max_rows_ = 0;
  int64_t chunk_rows_ = 0;                            // rows per cuDNN call (chunk_rows() in encoder_cudnn.cpp)
  int64_t desc_rows_ = -1;                            // the rows the tensor descriptors describe now
  // cuDNN's workspace need per row count, asked once each: full and partial chunks alternate all iteration.
  std::unordered_map<int64_t, size_t> workspace_by_rows_;
  int64_t last_rows_ = -1;                            // M of the last forward (backward must match it)
  bool packed_image_ = false;                         // conv1 reads a packed copy of the image instead of x in place
  struct {  // the descriptors' owners (cudnn_check.hpp); the members below are their handles
    TensorDescOwner image, f1, f2;
    FilterDescOwner w1, w2;
    ConvDescOwner conv;
  } owners_;
  cudnnTensorDescriptor_t image_desc_ = nullptr;      // [n, C, H, W], strides {in, H·W, W, 1} (or packed)
  cudnnTensorDescriptor_t f1_desc_ = nullptr;         // [n, F, H1, W1] packed
  cudnnTensorDescriptor_t f2_desc_ = nullptr;         // [n, F, H2, W2] packed (= f2 [n, flat], CHW)
  cudnnFilterDescriptor_t w1_desc_ = nullptr;         // [F, C, K, K]
  cudnnFilterDescriptor_t w2_desc_ = nullptr;         // [F, F, K, K]
  cudnnConvolutionDescriptor_t conv_desc_ = nullptr;  // no padding, stride S, cross-correlation, FP32 FMA
  cudnnConvolutionFwdAlgo_t fwd1_{}, fwd2_{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter1_{}, bwd_filter2_{};
  cudnnConvolutionBwdDataAlgo_t bwd_data2_{};
  DeviceBuffer<float> f1_;            // [max_rows, F, H1, W1] conv1 output after ReLU
  DeviceBuffer<float> f2_;            // [max_rows, flat] conv2 output after ReLU
  DeviceBuffer<float> y_;             // [max_rows, out] the output (its ReLU mask for backward)
  DeviceBuffer<float> dz_;            // [max_rows, out] ReLU-masked d_y
  DeviceBuffer<float> d2_;            // [max_rows, flat] gradient at f2, then at conv2's pre-activation
  DeviceBuffer<float> d1_;            // [chunk, F, H1, W1] gradient at f1, then at conv1's pre-activation
  DeviceBuffer<float> image_;         // [chunk, C·H·W] the packed image (only when packed_image_)
  DeviceBuffer<double> partials_;     // [max(F, image_fc, extra_fc), kReduceBlocks] bias-sum scratch
  DeviceBuffer<unsigned char> work_;  // cuDNN workspace, the largest any chosen algorithm asks for
};

}  // namespace rl2
