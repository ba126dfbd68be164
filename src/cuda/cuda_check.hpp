// CUDA and cuBLAS error checks and RAII device memory (move-only), in the manner of tiny-cuda-nn's GPUMemory.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
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

}  // namespace rl2
