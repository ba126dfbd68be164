// A non-blocking stream with cuBLAS (default FP32 math) and cuDNN on it, as the CUDA backend sets them
// (src/cuda/backend_cuda.cpp), from kernels/'s owners: the handles go first, then the stream, after its work.
// Copies run on the stream and are waited for (a plain cudaMemcpy would not order with a non-blocking
// stream). CUDA builds only.
#pragma once

#include <vector>

#include "cuda_check.hpp"
#include "cudnn_check.hpp"

namespace rl2::test {

struct GpuHandles {
  StreamOwner stream_owner = make_stream();
  BlasOwner blas_owner = make_blas();
  DnnOwner dnn_owner = make_dnn();
  cudaStream_t stream = stream_owner.get();
  cublasHandle_t blas = blas_owner.get();
  cudnnHandle_t dnn = dnn_owner.get();
  GpuHandles() {
    RL2_CUBLAS_CHECK(cublasSetStream(blas, stream));
    RL2_CUBLAS_CHECK(cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH));
    RL2_CUDNN_CHECK(cudnnSetStream(dnn, stream));
  }
  DeviceBuffer<float> upload(const std::vector<float>& h) const {
    DeviceBuffer<float> d(h.size());
    RL2_CUDA_CHECK(cudaMemcpyAsync(d.data(), h.data(), d.bytes(), cudaMemcpyHostToDevice, stream));
    RL2_CUDA_CHECK(cudaStreamSynchronize(stream));
    return d;
  }
  std::vector<float> download(const float* d, size_t n) const {
    std::vector<float> h(n);
    RL2_CUDA_CHECK(cudaMemcpyAsync(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost, stream));
    RL2_CUDA_CHECK(cudaStreamSynchronize(stream));
    return h;
  }
  std::vector<float> download(const DeviceBuffer<float>& d) const { return download(d.data(), d.size()); }
};

}  // namespace rl2::test
