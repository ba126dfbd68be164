// The CUDA backend of the trainer (include/rl2/train/backend.hpp; docs/cuda_training.md): device memory on
// one non-blocking stream, the step ops and reductions of kernels/step_ops.cuh, networks on cuDNN's GRU
// (CudnnGru), cuBLAS's head GEMMs and the maze's cuDNN encoder (CudnnEncoder), and the fused rollout
// (CudaRollout). Everything else of training is the trainer's (src/train/trainer.cpp), shared with the CPU.
// This header is plain C++ (compiles with g++).
#pragma once

#include <memory>

#include "cuda/gru_cudnn.hpp"
#include "rl2/train/backend.hpp"
#include "rl2/train/learner.hpp"

namespace rl2 {

// Device bytes training `cfg` on the GPU needs: fixed (parameters, vectors, library handles) plus per trial
// (rollout, batch arrays, activations, cuDNN workspace and reserve, estimated linearly from `temp` measured
// at `temp_batch` trials; the maze: its inputs, mask, the encoder's activations and output).
struct CudaLearnerBytes {
  double fixed = 0.0;
  double per_trial = 0.0;
};
CudaLearnerBytes cuda_learner_bytes(const TrainConfig& cfg, const CudnnTempBytes& temp, int64_t temp_batch);
// InputError, one line, when no GPU is usable, when cuDNN's tensors would pass 2^31 elements, or when training
// would not fit in the GPU memory free now: what it needs, what is free, how many steps per iteration fit.
void check_cuda_learner_fits(const TrainConfig& cfg);

}  // namespace rl2
