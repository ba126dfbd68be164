// CUDA and cuBLAS error checks, and owners (RAII) of device memory (move-only, in the manner of tiny-cuda-nn's
// GPUMemory), streams, cuBLAS handles and executable graphs: the lowest layer of the CUDA backend.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <memory>
#include <type_traits>
#include <string>
#include <utility>

#include "rl2/core/check.hpp"

#define RL2_CUDA_CHECK(expr)                                                                          \
  do {                                                                                                \
    const cudaError_t rl2_err_ = (expr);                                                              \
    if (rl2_err_ != cudaSuccess)                                                                      \
      throw ::rl2::Error(std::string(cudaGetErrorName(rl2_err_)) + ": " + cudaGetErrorString(rl2_err_), \
                         __FILE__, __LINE__, #expr);                                                  \
  } while (0)

// cuBLAS calls return a cublasStatus_t; the status name and its description go into the message.
#define RL2_CUBLAS_CHECK(expr)                                                                              \
  do {                                                                                                      \
    const cublasStatus_t rl2_st_ = (expr);                                                                  \
    if (rl2_st_ != CUBLAS_STATUS_SUCCESS)                                                                   \
      throw ::rl2::Error(std::string(cublasGetStatusName(rl2_st_)) + ": " + cublasGetStatusString(rl2_st_), \
                         __FILE__, __LINE__, #expr);                                                        \
  } while (0)

namespace rl2 {

template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count) : count_(count) {
    if (count_ > 0) RL2_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&ptr_), count_ * sizeof(T)));
  }
  ~DeviceBuffer() {
    if (ptr_) cudaFree(ptr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), count_(std::exchange(o.count_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      if (ptr_) cudaFree(ptr_);
      ptr_ = std::exchange(o.ptr_, nullptr);
      count_ = std::exchange(o.count_, 0);
    }
    return *this;
  }
  T* data() const { return ptr_; }
  size_t size() const { return count_; }
  size_t bytes() const { return count_ * sizeof(T); }

 private:
  T* ptr_ = nullptr;
  size_t count_ = 0;
};

// Owners of CUDA objects, each destroyed by the library's own destroy call (a stream first waits for its
// work). The library functions are only ever called, never taken by address, so the dynamic linker still
// binds them lazily (`rl2-cuda info` names a wrong cuBLAS or cuDNN instead of failing to load).
template <auto Destroy>
struct DestroyWith {
  template <class P>
  void operator()(P p) const {
    Destroy(p);
  }
};
template <class Handle, auto Destroy>
using Owned = std::unique_ptr<std::remove_pointer_t<Handle>, DestroyWith<Destroy>>;
inline void destroy_stream(cudaStream_t s) {
  cudaStreamSynchronize(s);
  cudaStreamDestroy(s);
}
inline void destroy_blas(cublasHandle_t h) { cublasDestroy(h); }
inline void destroy_graph_exec(cudaGraphExec_t g) { cudaGraphExecDestroy(g); }
using StreamOwner = Owned<cudaStream_t, destroy_stream>;
using BlasOwner = Owned<cublasHandle_t, destroy_blas>;
using GraphExecOwner = Owned<cudaGraphExec_t, destroy_graph_exec>;

inline StreamOwner make_stream() {  // non-blocking
  cudaStream_t s = nullptr;
  RL2_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return StreamOwner(s);
}
inline BlasOwner make_blas() {
  cublasHandle_t h = nullptr;
  RL2_CUBLAS_CHECK(cublasCreate(&h));
  return BlasOwner(h);
}

}  // namespace rl2
