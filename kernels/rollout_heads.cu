// The rollout's head kernel (rollout_heads.cuh). Built like every rl2_cuda kernel with -fmad=false and IEEE
// division; the heads match the CPU's to float rounding (tests/gpu_rollout_parity.cpp).
#include "cuda_check.hpp"
#include "launch.cuh"
#include "rl2/core/rng.hpp"
#include "rl2/policy/softmax.hpp"
#include "rollout_heads.cuh"

namespace rl2 {
namespace {

constexpr int kHeadWarps = 4;  // trials per block

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Dot product of a [H] weight row with a [H] hidden state, summed over the warp (every lane gets it).
__device__ __forceinline__ float warp_dot(const float* w, const float* h, int32_t H, int lane) {
  float s = 0.0f;
  for (int32_t j = lane; j < H; j += 32) s += w[j] * h[j];
  return warp_sum(s);
}

// Shared memory: per warp, logits [A] then probabilities [A].
__global__ void rollout_heads_kernel(const HeadArgs a) {
  extern __shared__ float smem[];
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int32_t A = a.actions, H = a.hidden;
  float* logits = smem + warp * 2 * A;
  float* p = logits + A;
  const RunIds run = *a.run;
  // i is the same for every lane of a warp, so the loop and its shuffles stay warp-uniform.
  for (int64_t i = blockIdx.x * int64_t{kHeadWarps} + warp; i < a.trials; i += int64_t{gridDim.x} * kHeadWarps) {
    const float* hp = a.h + i * H;                  // policy h'
    const float* hb = a.h + (a.trials + i) * H;     // baseline h'
    for (int32_t o = 0; o < A; ++o) {
      const float s = warp_dot(a.policy_w + int64_t{o} * H, hp, H, lane);
      if (lane == 0) logits[o] = s + a.policy_b[o];
    }
    const float v = warp_dot(a.value_w, hb, H, lane);
    __syncwarp();
    if (lane == 0) {
      const float lse = softmax(logits, A, p);
      const float u = u01(philox_bits(run.seed, run.first_trial + static_cast<uint64_t>(i), static_cast<uint32_t>(a.t),
                                      Purpose::kAction, 0)
                              .v[0]);
      const int32_t act = sample_categorical(p, A, u);
      a.actions_out[i] = act;
      a.logp[i] = logits[act] - lse;
      a.values[i] = v + a.value_b[0];
    }
    __syncwarp();
    for (int32_t o = lane; o < A; o += 32) a.probs[i * A + o] = p[o];
    __syncwarp();  // the next trial's logits overwrite these
  }
}

}  // namespace

void launch_rollout_heads(const HeadArgs& args, cudaStream_t stream) {
  RL2_CHECK(args.actions >= 1 && args.actions <= kRolloutMaxActions, "head kernel: action count out of range");
  const size_t smem = sizeof(float) * 2 * static_cast<size_t>(args.actions) * kHeadWarps;
  rollout_heads_kernel<<<kern::blocks_for(args.trials, kHeadWarps), kHeadWarps * 32, smem, stream>>>(args);
  RL2_CUDA_CHECK(cudaGetLastError());
}

}  // namespace rl2
