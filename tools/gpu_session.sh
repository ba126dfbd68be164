#!/usr/bin/env bash
# Runs on a lent GPU machine (the device tool), from the repository root, after tools/gpu_pack.sh built
# gpu-carry/ here and the call carries it: `bash tools/gpu_session.sh PHASE [PHASE ...]`.
# Each phase fits one device call (under 10 minutes) and writes one log under $OUT (the tool returns at
# most 8 files), so a 30-minute lease runs them in two or three calls, most important first:
#   check     libraries, nvidia-smi, `rl2-cuda info`, then every gpu-labelled test       -> check.txt
#   sanitize  compute-sanitizer memcheck and racecheck on small cases of each kernel family -> sanitize.txt
#   bench     `rl2-cuda bench --sweep` for bandit k=5 n=10, mdp n=10 and the maze (JSON)    -> bench.txt
#   train     GPU training: bandit k=5 n=10 to >= 6.6 (time-to-solution), MDP n=10, maze   -> train.txt
# Every step runs under `timeout`, so one hang cannot take the whole call; a step's failure is logged and
# the phase goes on. The last lines of each log are a short summary (the device tool returns the tail).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/rl2-out}
mkdir -p "$OUT"
C=gpu-carry
[ -x $C/rl2-cuda ] || { echo "gpu_session: $C/rl2-cuda missing: run tools/gpu_pack.sh here and carry gpu-carry" >&2; exit 2; }

# cuBLAS and cuDNN shared libraries: the toolkit's, else PyTorch's pip wheels (docs/gpu.md).
sites=$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null)
find_lib() { find /usr/local/cuda*/ /usr/lib/x86_64-linux-gnu $sites -name "$1" 2>/dev/null | head -1; }
CUBLAS=$(find_lib 'libcublas.so.13')
CUDNN=$(find_lib 'libcudnn.so.9')
export LD_LIBRARY_PATH=$PWD/$C/lib${CUBLAS:+:$(dirname "$CUBLAS")}${CUDNN:+:$(dirname "$CUDNN")}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)

step() {  # step LOG SECONDS NAME CMD...: run CMD with a time limit, log its output and exit status
  local log=$1 secs=$2 name=$3; shift 3
  local t0=$SECONDS
  echo "=== $name: $*" >> "$log"
  timeout "$secs" "$@" >> "$log" 2>&1
  local rc=$?
  echo "=== $name: exit $rc after $((SECONDS - t0)) s" >> "$log"
  echo "$name: exit $rc, $((SECONDS - t0)) s" >> "$log.summary"
}

finish() {  # append the summary to the log, print it
  local log=$1
  { echo; echo "---- summary"; cat "$log.summary"; } >> "$log"
  rm -f "$log.summary"
  tail -n 40 "$log"
}

phase_check() {
  local log=$OUT/check.txt
  : > "$log"
  { echo "cublas: ${CUBLAS:-not found}"; echo "cudnn: ${CUDNN:-not found}"; echo "sanitizer: ${SAN:-not found}";
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"; } >> "$log"
  step "$log" 30 ldd bash -c "ldd $C/rl2_gpu_tests | grep -E 'cublas|cudnn|gomp|stdc|not found'"
  step "$log" 30 smi nvidia-smi
  step "$log" 60 info $C/rl2-cuda info
  step "$log" 420 gpu_tests $C/rl2_gpu_tests --gtest_brief=1
  grep -E '^\[  (PASSED|FAILED|SKIPPED) \]|tests? (ran|FAILED)' "$log" | tail -n 30 >> "$log.summary"
  finish "$log"
}

phase_sanitize() {
  local log=$OUT/sanitize.txt
  : > "$log"
  if [ -z "$SAN" ]; then echo "compute-sanitizer not found" >> "$log"; cat "$log"; return; fi
  local small='*GpuEnvParity.*/1:*GpuMazeParity.*/1:*RolloutParity.*N7_H16:GpuRollout.GraphReplay*'
  small+=':GpuEncoder.ForwardAndBackward*:GpuEncoder.BackwardIsBitwise*:*GpuNetParity*:*GpuMazeRollout.*trials7'
  small+=':GpuMaze.NetForwardBackwardMatchCpu:*GpuLearnerIterations*/0:*GpuMazeIteration*/0'
  step "$log" 300 memcheck "$SAN" --tool memcheck --error-exitcode 1 $C/rl2_gpu_tests --gtest_brief=1 --gtest_filter="$small"
  step "$log" 200 racecheck "$SAN" --tool racecheck --error-exitcode 1 $C/rl2_gpu_tests --gtest_brief=1 \
    --gtest_filter='*GpuEnvParity.Mdp/1:*RolloutParity.Mdp/N7_H16:*GpuMazeParity.*/1:*GpuMazeRollout.*trials7:GpuEncoder.BackwardIsBitwise*'
  grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$log" >> "$log.summary"
  finish "$log"
}

phase_bench() {
  local log=$OUT/bench.txt
  : > "$log"
  step "$log" 200 bench_bandit $C/rl2-cuda bench --env bandit --arms 5 --episodes 10 --sweep --format json
  step "$log" 200 bench_mdp $C/rl2-cuda bench --env mdp --episodes 10 --sweep --format json
  step "$log" 150 bench_maze $C/rl2-cuda bench --env maze --sweep --sweep-max 65536 --format json
  finish "$log"
}

phase_train() {
  local log=$OUT/train.txt
  : > "$log"
  local d=/tmp/rl2-train
  rm -rf $d
  # Issue 4's time-to-solution: k=5, n=10 to >= 6.6 in under 30 s of training (eval on 1000 held-out).
  step "$log" 200 bandit $C/rl2-cuda train --device cuda --env bandit --arms 5 --episodes 10 \
    --steps-per-iter 200000 --iterations 60 --out $d/bandit
  step "$log" 120 bandit_eval $C/rl2-cuda eval --device cuda --checkpoint $d/bandit --instances 1000
  step "$log" 200 maze $C/rl2-cuda train --device cuda --env maze --mazes 1000 --steps-per-iter 50000 --iterations 10 \
    --out $d/maze
  tail -n 3 $d/bandit/metrics.jsonl >> "$log.summary" 2>/dev/null
  finish "$log"
}

[ $# -ge 1 ] || { sed -n 2,12p "$0"; exit 2; }
for p in "$@"; do
  case $p in
    check | sanitize | bench | train) "phase_$p" ;;
    *) echo "gpu_session: unknown phase '$p' (check, sanitize, bench, train)" >&2; exit 2 ;;
  esac
done
