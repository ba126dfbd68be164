// Launchers of the maze encoder's small kernels (kernels/encoder.cu) around cuDNN's convolutions and
// cuBLAS's FC GEMMs (src/cuda/encoder_cudnn.cpp). CPU references: the loops of src/cpu/encoder_ref.cpp
// (fill_channels + relu, mask, the bias sums inside conv_backward / linear_backward).
//   bias + ReLU      one thread per element, grid-stride
//   ReLU mask        one thread per element, grid-stride
//   channel sums     two stages: a grid of (slices x channels) blocks of 256 threads, each block summing
//                    its slice of rows of one channel in double through a fixed shared-memory tree; then
//                    one thread per channel adding its slices in order. The launch shape depends only on
//                    the sizes, so every sum is reproducible run to run.
// Activations are row-major [rows, channels, inner] with a row stride `ld` (inner = H·W for a conv
// layer's CHW maps, 1 for an FC layer's units).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace rl2 {

// a[r·ld + c·inner + q] = relu(a[...] + bias[c]) for r < rows, c < channels, q < inner; relu keeps NaN (as
// the CPU's `v < 0 ? 0 : v`). copy, when not null, gets the same values at the same indices.
struct BiasReluArgs {
  int64_t rows;
  int32_t channels;
  int64_t inner, ld;
  const float* bias;  // [channels]
  float* a;
  float* copy;  // nullable
};
void launch_bias_relu(const BiasReluArgs& a, cudaStream_t stream);

// out[i] = post[i] > 0 ? grad[i] : 0 for i < n (relu'(0) = 0 on the post-activation value); out may be grad.
struct ReluMaskArgs {
  int64_t n;
  const float* post;
  const float* grad;
  float* out;
};
void launch_relu_mask(const ReluMaskArgs& a, cudaStream_t stream);

// out[c] = float(double(out[c]) + sum_{r, q} double(in[r·ld + c·inner + q])): a bias gradient, ACCUMULATED.
constexpr int kChannelSumSlices = 64;  // the most row slices per channel (partials: channels x slices doubles)
struct ChannelSumsArgs {
  int64_t rows;
  int32_t channels;  // at most 65535 (the grid's y dimension)
  int64_t inner, ld;
  const float* in;
  double* partials;  // [channels, kChannelSumSlices] scratch
  float* out;        // [channels]
};
void launch_channel_sums(const ChannelSumsArgs& a, cudaStream_t stream);

}  // namespace rl2
