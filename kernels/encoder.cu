// The maze encoder's kernels around cuDNN and cuBLAS (launchers and parallel layouts in encoder.cuh):
// bias + ReLU after each convolution and FC GEMM, the ReLU mask of a gradient, and the bias gradients as
// channel sums in double. Equations: encoder_ref.cpp's fill_channels/relu (forward), mask and the `db`
// sums of conv_backward/linear_backward (backward). tests/gpu_encoder_parity.cpp checks them, with
// cuDNN and cuBLAS, against encoder_forward_ref / encoder_backward_ref in double.
#include "cuda/cuda_check.hpp"
#include "launch.cuh"
#include "encoder.cuh"

namespace rl2 {
namespace {

using kern::blocks_for;
using kern::kThreads;

// One thread per element e of the [rows, channels·inner] block (row r, column j).
__global__ void bias_relu_kernel(const BiasReluArgs a) {
  const int64_t width = a.channels * a.inner;
  RL2_GRID_STRIDE(e, a.rows * width) {
    const int64_t r = e / width, j = e - r * width;
    const int64_t at = r * a.ld + j;
    const float v = a.a[at] + a.bias[j / a.inner];
    const float o = v < 0.0f ? 0.0f : v;
    a.a[at] = o;
    if (a.copy) a.copy[at] = o;
  }
}

__global__ void relu_mask_kernel(const ReluMaskArgs a) {
  RL2_GRID_STRIDE(i, a.n) a.out[i] = a.post[i] > 0.0f ? a.grad[i] : 0.0f;
}

// Block (s, c): rows [s·per, min(rows, (s + 1)·per)) of channel c, summed in double; a fixed tree in
// shared memory, so the partial does not depend on timing.
__global__ void channel_sums_stage1_kernel(const ChannelSumsArgs a, int64_t per) {
  __shared__ double sh[kThreads];
  const int32_t c = blockIdx.y;
  const int64_t r0 = blockIdx.x * per;
  const int64_t r1 = r0 + per < a.rows ? r0 + per : a.rows;
  const int64_t count = (r1 > r0 ? r1 - r0 : 0) * a.inner;
  double acc = 0.0;
  for (int64_t e = threadIdx.x; e < count; e += blockDim.x) {
    const int64_t r = r0 + e / a.inner, q = e % a.inner;
    acc += static_cast<double>(a.in[r * a.ld + c * a.inner + q]);
  }
  sh[threadIdx.x] = acc;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (static_cast<int>(threadIdx.x) < s) sh[threadIdx.x] += sh[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) a.partials[int64_t{c} * kChannelSumSlices + blockIdx.x] = sh[0];
}

// One thread per channel: its slices in order, added to out.
__global__ void channel_sums_stage2_kernel(const ChannelSumsArgs a, int slices) {
  const int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (c >= a.channels) return;
  double sum = 0.0;
  for (int s = 0; s < slices; ++s) sum += a.partials[c * kChannelSumSlices + s];
  a.out[c] = static_cast<float>(static_cast<double>(a.out[c]) + sum);
}

}  // namespace

void launch_bias_relu(const BiasReluArgs& a, cudaStream_t stream) {
  const int64_t n = a.rows * a.channels * a.inner;
  if (n <= 0) return;
  bias_relu_kernel<<<blocks_for(n), kThreads, 0, stream>>>(a);
  RL2_CUDA_CHECK(cudaGetLastError());
}

void launch_relu_mask(const ReluMaskArgs& a, cudaStream_t stream) {
  if (a.n <= 0) return;
  relu_mask_kernel<<<blocks_for(a.n), kThreads, 0, stream>>>(a);
  RL2_CUDA_CHECK(cudaGetLastError());
}

void launch_channel_sums(const ChannelSumsArgs& a, cudaStream_t stream) {
  if (a.rows <= 0 || a.channels <= 0) return;
  RL2_CHECK(a.channels <= 65535, "launch_channel_sums: more channels than a grid's y dimension holds");
  const int slices = static_cast<int>(a.rows < kChannelSumSlices ? a.rows : kChannelSumSlices);
  const int64_t per = (a.rows + slices - 1) / slices;
  channel_sums_stage1_kernel<<<dim3(static_cast<unsigned>(slices), static_cast<unsigned>(a.channels)), kThreads, 0,
                               stream>>>(a, per);
  RL2_CUDA_CHECK(cudaGetLastError());
  channel_sums_stage2_kernel<<<(a.channels + kThreads - 1) / kThreads, kThreads, 0, stream>>>(a, slices);
  RL2_CUDA_CHECK(cudaGetLastError());
}

}  // namespace rl2
