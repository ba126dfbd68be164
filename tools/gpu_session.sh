#!/usr/bin/env bash
# The lent GPU's session (docs/gpu.md): run on the device machine from the repository root, with gpu-carry/
# carried (tools/gpu_pack.sh packs it here). One device call, run with timeout_s 390, ends within 6 minutes:
#   bash tools/gpu_session.sh                  the session: the steps below, 330 s of limits in all
#   bash tools/gpu_session.sh rerun FAMILY [S [FILTER]]  a family (or FILTER's tests) again with
#                                              CUDA_LAUNCH_BLOCKING=1, under S seconds (240)
#   bash tools/gpu_session.sh --dry-run        print the steps and their limits; run nothing
#   bash tools/gpu_session.sh --list-filters   the gtest filters and kernel names (tests/gpu_session_check.py)
# Steps, in order, each under its own limit and all under one deadline:
#   1. libraries (stop at once, naming a missing one; only gpu_nccl_test is skipped instead), nvidia-smi,
#      `rl2-cuda info` (runtime cuDNN/cuBLAS)
#   2. the gpu test families, one process each, not brief, line-buffered, gtest XML kept; the network family
#      runs gpu_nccl_test (one-rank NCCL) after rl2_gpu_tests
#   3. compute-sanitizer: memcheck on our own kernels (the smallest case of each family), then racecheck and
#      synccheck on the kernels with shared memory (step_ops.cu's reductions, the rollout's heads)
#   4. with the time left: bandit bench, a short bandit training and its held-out evaluation, a maze bench
# Logs and gtest XML go into $OUT/gpu_session.tar.gz (repacked after every step, so a call cut short still
# returns what ran) beside $OUT/summary.txt; the summary is printed last.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

readonly BUDGET=330      # seconds of step limits in all; the call ends within BUDGET + a few seconds
readonly CARRY=gpu-carry
readonly FAMILIES=(environments rollout network learner encoder maze)
declare -A FILTER=(
  [environments]='*GpuEnv*:*GpuMazeParity*'
  [rollout]='*GpuRollout*'
  [network]='*GpuNetParity*:*GpuBackendParity*'
  [learner]='*GpuLearner*'
  [encoder]='*GpuEncoder*'
  [maze]='*GpuMaze*-*GpuMazeParity*'
)
# Test binaries of their own that a family runs whole after rl2_gpu_tests, where the carry has them (a build
# without NCCL has no gpu_nccl_test) and their libraries were found.
declare -A ALSO=([network]=gpu_nccl_test)
# Our kernels are all in namespace rl2: their mangled names start with _ZN3rl2; cuDNN's and cuBLAS's do not,
# so the sanitizers instrument only ours.
readonly OUR_KERNELS=_ZN3rl2
# The smallest case of each family (7 trials, partial blocks; the smallest shapes) for memcheck.
readonly MEMCHECK_FILTER='*/GpuEnvParity.*/1:*/GpuMazeParity.*/1:*/GpuRolloutParity.*/N7_H16:GpuRollout.GraphReplay*:'\
'*/GpuNetParity.*/I7_H33_O1_T1_N1:GpuLearner.SurrogateAndGradientMatchCpu:*/GpuLearnerIterations.*/0:'\
'GpuEncoder.ForwardAndBackward*:*/GpuMazeRollout.*/size5_n2_H89_trials7:*/GpuMazeIteration.*/0'
# Kernels with __shared__ memory, and cases that launch each of them.
readonly SHARED_KERNELS=(reduce_stage1_kernel reduce_stage2_kernel)
readonly SHARED_FILTER='GpuLearner.SurrogateAndGradientMatchCpu:*/GpuNetParity.*/I7_H16_O5_T10_N13:'\
'*/GpuRolloutParity.Bandit/N7_H16:GpuEncoder.ForwardAndBackward*'

# name, limit (s), what. Step 4's limits grow by the time earlier steps left unused.
STEPS=(
  "libs 5 the carried binaries' libraries: every one found (else stop here)"
  "smi 10 nvidia-smi"
  "info 15 rl2-cuda info: build, device, cuBLAS and cuDNN loaded at run time"
  "environments 15 gpu tests: environments"
  "rollout 25 gpu tests: rollout"
  "network 20 gpu tests: network, the backend's step ops and reductions; gpu_nccl_test (one-rank NCCL, ~1 s)"
  "learner 30 gpu tests: learner"
  "encoder 15 gpu tests: encoder"
  "maze 30 gpu tests: maze"
  "memcheck 50 compute-sanitizer memcheck, our kernels, smallest case of each family"
  "racecheck 30 compute-sanitizer racecheck, shared-memory kernels"
  "synccheck 20 compute-sanitizer synccheck, shared-memory kernels"
  "bench_bandit 20 bench --env bandit --trials 65536 --train-iterations 1 (+ time left)"
  "train_bandit 15 train --device cuda, bandit k=5 n=10 (+ time left)"
  "eval_bandit 10 eval --device cuda on 1000 held-out bandits (+ time left)"
  "bench_maze 20 bench --device cuda --env maze: render, rollout with the encoder, 3 iterations (+ time left)"
)
readonly ELASTIC_FROM=bench_bandit

usage() { sed -n 2,16p "$0"; }

dry_run() {
  local total=0 line name limit what
  printf '%-14s %6s  %s\n' step limit what
  for line in "${STEPS[@]}"; do
    read -r name limit what <<< "$line"
    printf '%-14s %5ss  %s\n' "$name" "$limit" "$what"
    total=$((total + limit))
  done
  echo "total: ${total} s of step limits (at most ${BUDGET}); run with timeout_s 390"
  ((total <= BUDGET))
}

list_filters() {
  local f k
  for f in "${FAMILIES[@]}"; do printf 'family\t%s\t%s\n' "$f" "${FILTER[$f]}"; done
  for f in "${!ALSO[@]}"; do printf 'also\t%s\t%s\n' "$f" "${ALSO[$f]}"; done
  printf 'sanitize\tmemcheck\t%s\n' "$MEMCHECK_FILTER"
  printf 'sanitize\tracecheck\t%s\n' "$SHARED_FILTER"
  printf 'sanitize\tsynccheck\t%s\n' "$SHARED_FILTER"
  printf 'kernel\tours\t%s\n' "$OUR_KERNELS"
  for k in "${SHARED_KERNELS[@]}"; do printf 'kernel\tshared\t%s\n' "$k"; done
}

case ${1:-} in
  --dry-run) dry_run; exit ;;
  --list-filters) list_filters; exit 0 ;;
  -h | --help) usage; exit 0 ;;
  "" | rerun) ;;
  *) echo "gpu_session: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
esac

# ---- the session ------------------------------------------------------------------------------------------
OUT=${OUT:-/tmp/rl2-out}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/rl2-session.XXXXXX)
trap 'rm -rf "$WORK"' EXIT  # all of it is in the archive
LOGS=$WORK/logs
XML=$WORK/xml
RUNS=$WORK/runs
mkdir -p "$LOGS" "$XML" "$RUNS"
SUMMARY=$OUT/summary.txt
ARCHIVE=$OUT/gpu_session.tar.gz
START=$SECONDS
DEADLINE=$((START + BUDGET))
export GTEST_COLOR=no
BUF=()
command -v stdbuf > /dev/null && BUF=(stdbuf -oL -eL)

pack() { tar -czf "$ARCHIVE.tmp" -C "$WORK" logs xml 2> /dev/null && mv "$ARCHIVE.tmp" "$ARCHIVE"; }

# The CUDA 13 libraries the image gives: the toolkit's, else PyTorch's pip wheels (site-packages/nvidia/*/lib;
# NCCL in nvidia/nccl/lib), else the system's. Both cuBLAS libraries come from one folder.
site_dirs() {
  python3 - 2> /dev/null << 'EOF'
import site
dirs = list(site.getsitepackages()) + [site.getusersitepackages()]
try:
    import nvidia
    dirs += [p.rsplit("/nvidia", 1)[0] for p in nvidia.__path__]
except Exception:
    pass
print(" ".join(sorted(set(dirs))))
EOF
}
SITES=$(site_dirs)
find_lib() {  # first folder holding $1: the toolkit's, PyTorch's CUDA 13 wheels, the system's
  local d s f
  for d in /usr/local/cuda*/lib64 /usr/local/cuda*/targets/x86_64-linux/lib /usr/local/cuda*/lib; do
    [ -e "$d/$1" ] && { echo "$d"; return; }
  done
  for s in $SITES; do
    f=$(find "$s/nvidia" -name "$1" 2> /dev/null | head -1)
    [ -n "$f" ] && { dirname "$f"; return; }
  done
  for d in /usr/lib/x86_64-linux-gnu /usr/lib64 /lib/x86_64-linux-gnu; do
    [ -e "$d/$1" ] && { echo "$d"; return; }
  done
}
CUBLAS_DIR=$(find_lib libcublas.so.13)
CUDNN_DIR=$(find_lib libcudnn.so.9)
NVRTC_DIR=$(find_lib libnvrtc.so.13)  # cuDNN's runtime-compiled engines load it, if there
NCCL_DIR=$(find_lib libnccl.so.2)     # gpu_nccl_test only
libpath=$PWD/$CARRY/lib
for d in "$CUBLAS_DIR" "$CUDNN_DIR" "$NVRTC_DIR" "$NCCL_DIR"; do
  [ -n "$d" ] && [[ ":$libpath:" != *":$d:"* ]] && libpath+=:$d
done
# Only our binaries (and the sanitizer, which hands its environment to them) see the carried libraries: the
# image's own programs (python3, tar, nvidia-smi) keep the image's libz and libgomp.
RL2_LDP=$libpath${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
RL2ENV=(env "LD_LIBRARY_PATH=$RL2_LDP")
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer \
  /usr/local/cuda*/compute-sanitizer/compute-sanitizer 2> /dev/null | head -1)
if [ -z "$SAN" ]; then
  for s in $SITES; do SAN=$(find "$s/nvidia" -name compute-sanitizer -type f 2> /dev/null | head -1); [ -n "$SAN" ] && break; done
fi
SMI=$(command -v nvidia-smi || ls /usr/local/nvidia/bin/nvidia-smi 2> /dev/null | head -1)

declare -A RESULT  # step -> one line for the summary
limit_of() {  # the step's limit from STEPS, cut to the deadline; step 4's grows by the time left over
  local want=$1 line name limit what rest=0 found=0 elastic=0 mine=0 mine_elastic=0 remaining=0
  for line in "${STEPS[@]}"; do
    read -r name limit what <<< "$line"
    [ "$name" = "$ELASTIC_FROM" ] && elastic=1
    if ((found)); then
      rest=$((rest + limit))
      ((elastic)) && remaining=$((remaining + 1))
    fi
    if [ "$name" = "$want" ]; then
      found=1
      mine=$limit
      mine_elastic=$elastic
    fi
  done
  local left=$((DEADLINE - SECONDS)) lim=$mine
  if ((mine_elastic)); then  # share what the steps before left unused with the elastic steps still to come
    local spare=$((left - rest - mine))
    ((spare > 0)) && lim=$((mine + spare / (remaining + 1)))
  fi
  ((lim > left)) && lim=$left
  echo "$lim"
}

run_step() {  # run_step NAME CMD...: run CMD under the step's limit; log to logs/NAME.log; sets RC
  local name=$1; shift
  local lim t0=$SECONDS
  lim=$(limit_of "$name")
  if ((lim < 3)); then
    RC=125
    STEP_S=0
    RESULT[$name]="skipped: no time left"
    printf '[%3d s] %-13s skipped (no time left)\n' $((SECONDS - START)) "$name"
    return
  fi
  echo "=== $name (limit $lim s): $*" > "$LOGS/$name.log"
  timeout -k 5 "$lim" "${BUF[@]}" "$@" >> "$LOGS/$name.log" 2>&1
  RC=$?
  STEP_S=$((SECONDS - t0))
  echo "=== $name: exit $RC after $STEP_S s" >> "$LOGS/$name.log"
  local state=ok
  ((RC == 124 || RC == 137)) && state="TIMEOUT ($lim s)"
  ((RC != 0 && RC != 124 && RC != 137)) && state="exit $RC"
  printf '[%3d s] %-13s %s, %d s\n' $((SECONDS - START)) "$name" "$state" "$STEP_S"
  pack
}

# gtest's verdict from a log: counts, failures, and the test that was running when it stopped.
gtest_line() {
  local log=$1 rc=$2 secs=$3
  local ok failed skipped total running verdict
  ok=$(grep -c '^\[       OK \]' "$log")
  failed=$(grep -E '^\[  FAILED  \] .*\([0-9]+ ms\)$' "$log" | sed -E 's/^\[  FAILED  \] ([^ ,]+).*/\1/')
  skipped=$(grep -cE '^\[  SKIPPED \] .*\([0-9]+ ms\)$' "$log")
  total=$(grep -oE '^\[==========\] [0-9]+ tests? from [0-9]+ test suites? ran' "$log" | grep -oE '[0-9]+' | head -1)
  running=$(awk '/^\[ RUN      \]/ {t = $4} /^\[       OK \]|^\[  FAILED  \]|^\[  SKIPPED \]/ {sub(/,$/, "", $4); if ($4 == t) t = ""}
                 /^=== binary / {if (t != "" && stop == "") stop = t; t = ""}
                 END {print (stop != "" ? stop : t)}' "$log")
  local nfail=0
  [ -n "$failed" ] && nfail=$(wc -l <<< "$failed")
  if ((rc == 124 || rc == 137)); then verdict=TIMEOUT
  elif ((rc == 125)); then verdict=SKIPPED
  elif ((rc == 0)) && [ -n "$total" ] && ((ok == 0 && skipped > 0)); then verdict="ALL SKIPPED"
  elif ((rc == 0)) && [ -n "$total" ]; then verdict=PASS
  elif ((rc == 0)); then verdict="NO TESTS"
  elif ((nfail > 0)) && [ -n "$total" ]; then verdict=FAIL
  else verdict="CRASH (exit $rc)"
  fi
  local line
  line=$(printf '%-11s %3s passed, %s failed, %s skipped, %s s' "$verdict" "$ok" "$nfail" "$skipped" "$secs")
  [ -n "$running" ] && [ "$verdict" != PASS ] && line+=", stopped in $running"
  [ -n "$failed" ] && line+=$'\n'"            failed: $(head -5 <<< "$failed" | tr '\n' ' ')"
  [[ $verdict == PASS || $verdict == "ALL SKIPPED" ]] && ((skipped > 0)) &&
    line+=" (skip: $(grep -m1 -oE 'no GPU.*|built without.*' "$log"))"
  echo "$line"
}

outcome() {  # outcome NAME: "exit RC, S s", and the error line of a failed step
  local err=""
  ((RC != 0)) && err=$(grep -m1 -E 'error|Error|what\(\)' "$LOGS/$1.log" | cut -c1-160)
  echo "exit $RC, $STEP_S s${err:+: $err}"
}

# A family's process: rl2_gpu_tests with the family's filter, then each binary of ALSO whole (gtest XML each,
# an "=== binary NAME exit RC" line after each); exits with the first failing status. One limit, one log.
readonly FAMILY_SH='xml=$1 f=$2 filter=$3; shift 3; "$1" --gtest_filter="$filter" --gtest_output="xml:$xml/$f.xml"; '\
'rc=$?; echo "=== binary ${1##*/} exit $rc"; shift; for b; do "$b" --gtest_output="xml:$xml/${f}_${b##*/}.xml"; '\
's=$?; echo "=== binary ${b##*/} exit $s"; ((rc)) || rc=$s; done; exit $rc'
declare -A ALSO_MISSING  # binary of ALSO -> the library ldd could not find (check_libs): not run

family_step() {  # family_step NAME [EXTRA_ENV...]
  local f=$1 b also=() skipped=""
  for b in ${ALSO[$f]:-}; do
    if [ ! -x "$CARRY/$b" ]; then skipped+=" (no $b in the carry)"
    elif [ -n "${ALSO_MISSING[$b]:-}" ]; then skipped+=" ($b not run: ${ALSO_MISSING[$b]})"
    else also+=("$CARRY/$b")
    fi
  done
  run_step "$f" "${RL2ENV[@]}" "${@:2}" bash -c "$FAMILY_SH" family "$XML" "$f" "${FILTER[$f]}" "$CARRY/rl2_gpu_tests" \
    "${also[@]}"
  RESULT[$f]=$(gtest_line "$LOGS/$f.log" "$RC" "$STEP_S")$skipped
}

sanitizer_step() {  # sanitizer_step TOOL GTEST_FILTER KERNEL_FILTER_ARGS...
  local tool=$1 filter=$2; shift 2
  if [ -z "$SAN" ]; then RESULT[$tool]="skipped: compute-sanitizer not found"; return; fi
  if [ -n "$SAN_REFUSED" ]; then RESULT[$tool]="skipped: $SAN_REFUSED"; return; fi
  run_step "$tool" "${RL2ENV[@]}" "$SAN" --tool "$tool" "$@" --destroy-on-device-error kernel --print-limit 20 --error-exitcode 99 \
    "$CARRY/rl2_gpu_tests" --gtest_filter="$filter" --gtest_output="xml:$XML/$tool.xml"
  local counts
  counts=$(grep -hE '(ERROR|RACECHECK) SUMMARY' "$LOGS/$tool.log" | sed 's/^========= //' | tr '\n' ' ')
  [ -z "$counts" ] && counts=$(grep -m1 -E '^========= Error' "$LOGS/$tool.log" | sed 's/^========= //')
  RESULT[$tool]="${counts:-no sanitizer summary} | tests: $(gtest_line "$LOGS/$tool.log" "$RC" "$STEP_S" | head -1)"
  ((RC == 99)) && RESULT[$tool]="ERRORS: ${RESULT[$tool]}"
  # Under gVisor the sanitizer refuses the device (docs/gpu.md): say so once and skip the other tools.
  SAN_REFUSED=$(grep -m1 -oE 'Device not supported.*|Unable to find injection library.*' "$LOGS/$tool.log")
  [ -n "$SAN_REFUSED" ] && RESULT[$tool]="refused: $SAN_REFUSED"
}
SAN_REFUSED=

check_libs() {  # ldd of each carried binary with the session's LD_LIBRARY_PATH; nothing may be missing
  local log=$LOGS/libs.log b out line problems=()
  {
    echo "LD_LIBRARY_PATH=$RL2_LDP"
    echo "cuBLAS: ${CUBLAS_DIR:-none}; cuDNN: ${CUDNN_DIR:-none}; nvrtc: ${NVRTC_DIR:-none}; NCCL: ${NCCL_DIR:-none}"
    echo "compute-sanitizer: ${SAN:-none}; nvidia-smi: ${SMI:-none}"
    ldd --version | head -1
  } > "$log"
  if ls "$CARRY"/lib/libstdc++* > /dev/null 2>&1; then
    problems+=("gpu-carry/lib holds a libstdc++ (it may need a newer glibc than the image's): repack")
  fi
  for b in rl2-cuda rl2_gpu_tests; do
    if [ ! -x "$CARRY/$b" ]; then
      problems+=("$CARRY/$b is missing: run tools/gpu_pack.sh and carry gpu-carry")
      continue
    fi
    out=$(LD_LIBRARY_PATH=$RL2_LDP timeout 3 ldd "$CARRY/$b" 2>&1)
    printf -- '--- ldd %s\n%s\n' "$b" "$out" >> "$log"
    while IFS= read -r line; do
      problems+=("$b: $(sed -E 's/^[[:space:]]+//; s/ \(0x[0-9a-f]+\)$//' <<< "$line")")
    done < <(grep -E 'not found' <<< "$out")
  done
  # The binaries of ALSO are optional: a library they lack (NCCL for gpu_nccl_test) skips them, not the session.
  for b in $(printf '%s\n' "${ALSO[@]}" | sort -u); do
    [ -x "$CARRY/$b" ] || continue
    out=$(LD_LIBRARY_PATH=$RL2_LDP timeout 3 ldd "$CARRY/$b" 2>&1)
    printf -- '--- ldd %s\n%s\n' "$b" "$out" >> "$log"
    line=$(grep -m1 'not found' <<< "$out" | sed -E 's/^[[:space:]]+//; s/ \(0x[0-9a-f]+\)$//')
    if [ -n "$line" ]; then
      ALSO_MISSING[$b]=$line
      echo "warning: $b will not run: $line" >> "$log"
    fi
  done
  for lib in libcudnn_adv.so.9 libcudnn_cnn.so.9; do
    [ -n "$CUDNN_DIR" ] && [ ! -e "$CUDNN_DIR/$lib" ] && echo "warning: no $lib beside libcudnn.so.9" >> "$log"
  done
  if ((${#problems[@]})); then
    printf 'MISSING: %s\n' "${problems[@]}" >> "$log"
    RESULT[libs]=$(printf 'MISSING: %s\n' "${problems[@]:0:4}")
    return 1
  fi
  RESULT[libs]="ok: cuBLAS from ${CUBLAS_DIR:-?}, cuDNN from ${CUDNN_DIR:-?}, NCCL from ${NCCL_DIR:-none}"
  for b in "${!ALSO_MISSING[@]}"; do RESULT[libs]+="; $b will not run: ${ALSO_MISSING[$b]}"; done
}

throughput() {  # throughput lines from the JSON of the bench, train and eval steps
  python3 - "$LOGS" "$RUNS" 2> /dev/null << 'EOF'
import json, os, sys
logs, runs = sys.argv[1], sys.argv[2]
def last_json(name):
    try:
        lines = [l for l in open(os.path.join(logs, name + ".log")) if l.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except Exception:
        return None
def best(rows, key, **match):
    vals = [r[key] for r in rows or [] if key in r and all(r.get(k) == v for k, v in match.items())]
    return "%.3g" % max(vals) if vals else "-"
for name in ("bench_bandit", "bench_maze"):
    j = last_json(name)
    if not j:
        print("  %-12s no result" % name)
        continue
    env = j.get("results", [])
    roll = (j.get("rollout") or {}).get("results", [])
    train = (j.get("training") or {}).get("results", [])
    line = "  %-12s env-steps/s cuda %s cpu %s | rollout steps/s fp32 %s tf32 %s | train env-steps/s cuda %s cpu %s" % (
        name, best(env, "env_steps_per_s", device="cuda"), best(env, "env_steps_per_s", device="cpu"),
        best(roll, "rollout_steps_per_s", math="fp32"), best(roll, "rollout_steps_per_s", math="tf32"),
        best(train, "train_env_steps_per_s", device="cuda"), best(train, "train_env_steps_per_s", device="cpu"))
    if name == "bench_maze":
        line += " | render frames/s cuda %s" % best(env, "render_frames_per_s", device="cuda")
    print(line)
iters = 0
try:
    iters = sum(1 for _ in open(os.path.join(runs, "bandit", "metrics.jsonl")))
except Exception:
    pass
e = last_json("eval_bandit")
if e and "mean" in e:
    print("  bandit k=5 n=10: %d iterations on the GPU, held-out %s instances: %.3f +- %.3f (paper RL2 6.7)"
          % (iters, e.get("instances", "?"), e["mean"], e.get("stderr", float("nan"))))
else:
    print("  bandit k=5 n=10: %d iterations on the GPU, no evaluation" % iters)
EOF
}

write_summary() {
  local name line what
  {
    echo "==== gpu_session summary ($(date -u +%FT%TZ), $((SECONDS - START)) s of $((DEADLINE - START)); $MODE)"
    grep -E 'Driver Version|NVIDIA [A-Z][0-9]' "$LOGS/smi.log" 2> /dev/null | head -2 | tr -s ' ' | cut -c1-110
    for line in "${STEPS[@]}"; do
      read -r name _ what <<< "$line"
      [ -n "${RESULT[$name]:-}" ] && printf '%-13s %s\n' "$name" "${RESULT[$name]//$'\n'/$'\n'              }"
    done
    [ "$MODE" = session ] && [ -n "${RESULT[bench_bandit]:-}" ] && { echo "throughput:"; throughput; }
    echo "files: $ARCHIVE (logs/, xml/), $SUMMARY"
  } > "$SUMMARY"
  pack
  cat "$SUMMARY"
}

MODE=session
if [ "${1:-}" = rerun ]; then
  fam=${2:-}
  [ -n "$fam" ] && [ -n "${FILTER[$fam]:-}" ] || { echo "gpu_session: rerun FAMILY: one of ${FAMILIES[*]}" >&2; exit 2; }
  MODE="rerun $fam, CUDA_LAUNCH_BLOCKING=1"
  lim=${3:-240}
  [[ $lim =~ ^[0-9]+$ ]] && ((lim <= BUDGET)) || { echo "gpu_session: rerun limit: seconds, at most $BUDGET" >&2; exit 2; }
  [ -n "${4:-}" ] && FILTER[$fam]=$4 && ALSO[$fam]=""  # a narrowed rerun runs rl2_gpu_tests only
  DEADLINE=$((START + lim + 5))
  ARCHIVE=$OUT/gpu_rerun_$fam.tar.gz
  SUMMARY=$OUT/summary_rerun_$fam.txt
  STEPS=("libs 5 libraries" "$fam $lim gpu tests: $fam, CUDA_LAUNCH_BLOCKING=1")
  check_libs || { write_summary; exit 3; }
  family_step "$fam" CUDA_LAUNCH_BLOCKING=1
  write_summary
  exit 0
fi

echo "gpu_session: $((BUDGET)) s of steps; logs in $ARCHIVE, summary in $SUMMARY"
if ! check_libs; then
  printf '[%3d s] %-13s %s\n' $((SECONDS - START)) libs "${RESULT[libs]//$'\n'/$'\n'                      }"
  write_summary
  exit 3
fi
printf '[%3d s] %-13s ok\n' $((SECONDS - START)) libs
pack

if [ -n "$SMI" ]; then
  run_step smi "$SMI"
else
  RC=127
  echo "nvidia-smi not found" > "$LOGS/smi.log"
  printf '[%3d s] %-13s not found\n' $((SECONDS - START)) smi
fi
RESULT[smi]=$( ((RC == 0)) && echo ok || echo "exit $RC: $(tail -1 "$LOGS/smi.log")")
run_step info "${RL2ENV[@]}" "$CARRY/rl2-cuda" info
RESULT[info]="exit $RC: $(grep -E 'cuBLAS:|cuDNN:|GPU:|error' "$LOGS/info.log" | sed -E 's/^ +//' | tr -s ' ' | tr '\n' ';')"

for f in "${FAMILIES[@]}"; do family_step "$f"; done

kernel_args=()
for k in "${SHARED_KERNELS[@]}"; do kernel_args+=(--kernel-name "kns=$k"); done
sanitizer_step memcheck "$MEMCHECK_FILTER" --kernel-name "kns=$OUR_KERNELS"
sanitizer_step racecheck "$SHARED_FILTER" "${kernel_args[@]}" --racecheck-report all
sanitizer_step synccheck "$SHARED_FILTER" "${kernel_args[@]}"

run_step bench_bandit "${RL2ENV[@]}" "$CARRY/rl2-cuda" bench --env bandit --trials 65536 --train-iterations 1 --cpu-budget 1 \
  --format json
RESULT[bench_bandit]=$(outcome bench_bandit)
run_step train_bandit "${RL2ENV[@]}" "$CARRY/rl2-cuda" train --device cuda --env bandit --arms 5 --episodes 10 \
  --steps-per-iter 100000 --iterations 40 --checkpoint-every 1 --out "$RUNS/bandit" --format json
RESULT[train_bandit]="$(outcome train_bandit)$( ((RC == 124 || RC == 143)) && echo ' (stopped by its limit; checkpoint kept)')"
if [ -e "$RUNS/bandit/checkpoint.safetensors" ]; then
  run_step eval_bandit "${RL2ENV[@]}" "$CARRY/rl2-cuda" eval --device cuda --checkpoint "$RUNS/bandit" --instances 1000 --format json
  RESULT[eval_bandit]=$(outcome eval_bandit)
else
  RESULT[eval_bandit]="skipped: no checkpoint"
fi
run_step bench_maze "${RL2ENV[@]}" "$CARRY/rl2-cuda" bench --device cuda --env maze --size 5 --trials 1024 --train-iterations 2 \
  --format json
RESULT[bench_maze]=$(outcome bench_maze)
write_summary
