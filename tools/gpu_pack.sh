#!/usr/bin/env bash
# Builds what a lent GPU runs (sm_90, static cudart, static GoogleTest) in build-gpu/ and packs gpu-carry/
# (git-ignored; the device tool carries it): rl2-cuda, rl2_gpu_tests and, where the build found NCCL,
# gpu_nccl_test (the only binary that lists libnccl.so.2: the image gives NCCL), and in gpu-carry/lib the shared
# libraries they need beyond the device image's glibc, libstdc++, libgcc_s, driver, cuBLAS, cuDNN and NCCL:
# OpenBLAS (once), libgfortran, libquadmath, libgomp, libpng, libz, libprotobuf, libonnx_proto, libisal. Never
# libstdc++: Debian 12's needs GLIBC_2.36. tests/carry_check.py packs and then checks the rule (every library
# found, GLIBC <= 2.34, GLIBCXX <= 3.4.29, 60 MiB at most); a breach stops here, not on the GPU. See docs/gpu.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# No MPI: the device image has no libmpi, and a lent machine has one GPU (one rank).
cmake -S . -B build-gpu -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=Release \
  -DRL2_ENABLE_MPI=OFF > /dev/null
binaries=(build-gpu/rl2-cuda build-gpu/tests/rl2_gpu_tests)
targets=(rl2-cuda rl2_gpu_tests)
if grep -q '^gpu_nccl_test:' <<< "$(cmake --build build-gpu --target help)"; then
  binaries+=(build-gpu/tests/gpu_nccl_test)
  targets+=(gpu_nccl_test)
else
  echo "gpu_pack: build-gpu found no NCCL: packing without gpu_nccl_test"
fi
cmake --build build-gpu --target "${targets[@]}"
grep -q '^#define RL2_CUDA_VERSION "[0-9]' build-gpu/generated/rl2_build_config.hpp ||
  { echo "gpu_pack: build-gpu has no CUDA backend (no nvcc?): nothing worth carrying" >&2; exit 1; }
rm -rf gpu-carry
python3 tests/carry_check.py pack gpu-carry "${binaries[@]}"
python3 tests/carry_check.py check gpu-carry
du -sh gpu-carry
echo "gpu_pack: carry it with the device tool: run(command='bash tools/gpu_session.sh', carry=['gpu-carry'], timeout_s=390)"
