#!/usr/bin/env bash
# Short fixed CPU training runs whose numbers a refactor must not move (issue "one trainer"): bandit
# TRPO (the default job's settings, Fisher subsample), MDP PPO, MDP TRPO with the full Fisher product,
# and a 5x5 maze (PPO, finished-trial masks). Usage: tools/reference_runs.sh BINARY OUTDIR; then
# tools/compare_runs.py OUTDIR_BEFORE OUTDIR_AFTER says whether every metric (wall times aside) and
# every checkpoint tensor is byte-identical.
set -euo pipefail
bin=$1 out=$2
mkdir -p "$out"
run() {
  local name=$1; shift
  rm -rf "$out/$name"
  "$bin" train --out "$out/$name" --threads 2 "$@" >/dev/null 2>"$out/$name.log"
}
run bandit --env bandit --iterations 4 --steps-per-iter 4000
run mdp_ppo --env mdp --hidden 64 --algo ppo --iterations 3 --steps-per-iter 4000 --ppo-epochs 2 --ppo-minibatches 4
run mdp_trpo --env mdp --hidden 32 --iterations 3 --steps-per-iter 3000 --fvp-subsample 1
run maze --env maze --mazes 50 --hidden 32 --iterations 2 --steps-per-iter 3000
echo "reference runs in $out"
