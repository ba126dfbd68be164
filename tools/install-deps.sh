#!/usr/bin/env bash
# Installs the Debian 12 packages rl2-cuda builds against (the CUDA toolkit itself is assumed present;
# without nvcc the build is CPU-only). Skips apt entirely when everything is already installed.
set -euo pipefail
pkgs=(cmake ninja-build g++ python3 python3-numpy libcli11-dev nlohmann-json3-dev librandom123-dev libgtest-dev libopenblas-dev libpng-dev)
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
# The interop test needs numpy in whichever python3 is first on PATH (it may not be Debian's).
if ! python3 -c "import numpy" 2>/dev/null; then
  echo "install-deps: installing numpy for $(command -v python3)"
  python3 -m pip install --quiet numpy
fi
echo "install-deps: all build dependencies present"
