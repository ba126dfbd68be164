// What the gpu-labelled tests of the cuDNN-based CUDA code share (the CUDA backend of the trainer, the conv
// encoder, the maze): why they cannot run here, and fixtures that skip with that reason. Copies between
// std::vectors and a backend's Buffers: objective_test_util.hpp.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "rl2/core/device.hpp"

namespace rl2::test {

// "" when a usable GPU is present and the build has the CUDA backend; else the reason, printed with the skip.
inline std::string cudnn_skip_reason() {
#if !defined(RL2_WITH_CUDA)
  return "built without the CUDA backend (no nvcc or no cuDNN at build time)";
#else
  return cuda_probe().usable ? std::string() : "no GPU: " + cuda_probe().reason;
#endif
}

class CudnnTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const std::string why = cudnn_skip_reason(); !why.empty()) GTEST_SKIP() << why;
  }
};

template <class Param>
class CudnnTestWithParam : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    if (const std::string why = cudnn_skip_reason(); !why.empty()) GTEST_SKIP() << why;
  }
};

}  // namespace rl2::test
