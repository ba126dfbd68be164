// Host/device portability: one macro so the same headers compile under g++ and nvcc.
// Environment math is written once as RL2_HD functions over plain structs (STYLE.md, the twin pattern).
#pragma once

#if defined(__CUDACC__)
#define RL2_HD __host__ __device__
#define RL2_HD_INLINE __host__ __device__ __forceinline__
#else
#define RL2_HD
#define RL2_HD_INLINE inline
#endif
