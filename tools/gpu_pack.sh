#!/usr/bin/env bash
# Builds the binaries a lent GPU machine runs (sm_90, static cudart, static GoogleTest) into build-gpu/
# and copies them, with the shared libraries they need beyond glibc, into gpu-carry/ (git-ignored),
# which the device tool carries over. See docs/gpu.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-gpu -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-gpu
rm -rf gpu-carry && mkdir -p gpu-carry/lib
cp build-gpu/rl2-cuda build-gpu/tests/rl2_tests build-gpu/tests/rl2_gpu_tests tests/cli_test.py gpu-carry/
# libgomp and libstdc++ from this Debian 12 build machine, in case the device image's are older.
for lib in libgomp.so.1 libstdc++.so.6; do
  cp -L "$(g++ -print-file-name=$lib)" gpu-carry/lib/ 2>/dev/null || true
done
ls -la gpu-carry gpu-carry/lib
