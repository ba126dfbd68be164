#!/usr/bin/env bash
# Installs the Debian 12 packages rl2-cuda builds against (the CUDA toolkit itself is assumed present;
# without nvcc the build is CPU-only). Skips apt entirely when everything is already installed.
set -euo pipefail
pkgs=(cmake ninja-build g++ python3 python3-numpy python3-pip libcli11-dev nlohmann-json3-dev librandom123-dev libgtest-dev libopenblas-dev libpng-dev
      libprotobuf-dev protobuf-compiler libonnx-dev libisal-dev openmpi-bin libopenmpi-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The interop tests need numpy, onnx, onnxruntime and tensorboard in whichever python3 is first on PATH (it
# may not be Debian's); each is installed from PyPI only when missing. Debian's own python3 refuses pip
# installs (PEP 668) and packages neither onnxruntime nor tensorboard, so there pip is told to go ahead.
for m in numpy onnx onnxruntime tensorboard; do
  if ! python3 -c "import $m" 2>/dev/null; then
    echo "install-deps: installing $m for $(command -v python3)"
    python3 -m pip install --quiet "$m" 2>/dev/null || python3 -m pip install --quiet --break-system-packages "$m"
  fi
done
echo "install-deps: all build dependencies present"
