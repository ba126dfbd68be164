#!/usr/bin/env python3
"""Same seed, same bytes on any number of CPU threads (DESIGN.md section 11, docs/design.md).

Trains short bandit, MDP and maze runs at 1, 2 and 3 threads (the bandit also at 8: more threads than
cores) and compares, byte for byte: metrics.jsonl without its wall-time fields, the checkpoint's and the
export's tensors and metadata (but the elapsed wall time), the eval JSON and the baselines JSON (without
their provenance, which records the thread count on purpose). A run checkpointed at 1 thread and resumed
at 2 must equal the unbroken run. Each case is sized to give several trial chunks and encoder row groups
(core/chunks.hpp), so a thread count that changed a partition would change the bytes (the previous
per-thread slabs fail the bandit, MDP and maze cases).

Usage: determinism_test.py PATH/TO/rl2-cuda"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest

BIN = None
TIME_FIELDS = ("seconds", "wall_time", "env_steps_per_s")

# 500 trials of 10 steps: 16 chunks, the last of 20 trials.
BANDIT = ["--env", "bandit", "--arms", "5", "--episodes", "10", "--hidden", "64", "--steps-per-iter", "5000"]
# 150 trials of 10 x 10 steps: 8 chunks of 20 trials, the last of 10.
MDP = ["--env", "mdp", "--episodes", "10", "--hidden", "64", "--steps-per-iter", "15000"]
# 12 trials of 2 x 90 steps (trials end early at the targets): chunks of 11 and 1 trials, 9 encoder row
# groups of 256 steps. PPO here, TRPO above, so both updates are covered.
MAZE = ["--env", "maze", "--size", "5", "--episodes", "2", "--horizon", "90", "--mazes", "20", "--hidden", "16",
        "--steps-per-iter", "2160", "--algo", "ppo", "--ppo-minibatches", "2", "--ppo-epochs", "2"]


def run(*args):
    p = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise AssertionError(f"rl2-cuda {' '.join(args)}: exit {p.returncode}\n{p.stderr}")
    return p


def metrics(run_dir):
    """metrics.jsonl without its wall-time fields, one canonical JSON line per iteration."""
    lines = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            j = json.loads(line)
            for k in TIME_FIELDS:
                j.pop(k, None)
            lines.append(json.dumps(j, sort_keys=True))
    return lines


def safetensors(path):
    """(header with the elapsed wall time removed, raw tensor bytes)."""
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    meta = header.get("__metadata__", {})
    if "trainer_state" in meta:
        state = json.loads(meta["trainer_state"])
        state.pop("elapsed_seconds", None)
        meta["trainer_state"] = json.dumps(state, sort_keys=True)
    return json.dumps(header, sort_keys=True), blob[8 + n:]


def without(j, keys):
    if isinstance(j, dict):
        return {k: without(v, keys) for k, v in j.items() if k not in keys}
    if isinstance(j, list):
        return [without(v, keys) for v in j]
    return j


def result_json(stdout):
    """The provenance (it records the thread count on purpose), the run directory's path and wall times
    dropped, at every level."""
    return json.dumps(without(json.loads(stdout), {"provenance", "checkpoint", "seconds"}), sort_keys=True)


class SameBytesOnAnyThreadCount(unittest.TestCase):
    def train(self, tmp, name, flags, threads, iterations, resume=False):
        out = os.path.join(tmp, name)
        if resume:
            run("train", "--resume", out, "--iterations", str(iterations), "--threads", str(threads))
        else:
            run("train", *flags, "--iterations", str(iterations), "--seed", "7", "--threads", str(threads),
                "--out", out)
        return out

    def assert_same_run(self, a, b, what):
        self.assertEqual(metrics(a), metrics(b), f"{what}: metrics.jsonl differ")
        for f in ("checkpoint.safetensors", "policy.safetensors"):
            ha, da = safetensors(os.path.join(a, f))
            hb, db = safetensors(os.path.join(b, f))
            self.assertEqual(ha, hb, f"{what}: {f} headers differ")
            self.assertTrue(da == db, f"{what}: {f} tensor bytes differ")

    def check_env(self, flags, counts, iterations, eval_flags):
        with tempfile.TemporaryDirectory() as tmp:
            runs = {t: self.train(tmp, f"t{t}", flags, t, iterations) for t in counts}
            self.assertEqual(len(metrics(runs[counts[0]])), iterations)
            evals = {}
            for t in counts:
                self.assert_same_run(runs[counts[0]], runs[t], f"{flags[1]} at {t} threads vs {counts[0]}")
                evals[t] = result_json(run("eval", "--checkpoint", runs[t], *eval_flags, "--format", "json",
                                           "--threads", str(t)).stdout)
                self.assertEqual(evals[t], evals[counts[0]], f"{flags[1]} eval at {t} threads")
            # Checkpointed at 1 thread, resumed at 2: the same bytes as the unbroken run.
            half = self.train(tmp, "half", flags, 1, iterations - 1)
            self.train(tmp, "half", flags, 2, iterations, resume=True)
            self.assert_same_run(runs[counts[0]], half, f"{flags[1]} resumed at 2 threads")

    def test_bandit(self):
        self.check_env(BANDIT, [1, 2, 3, 8], 3, ["--instances", "300"])

    def test_mdp(self):
        self.check_env(MDP, [1, 2, 3], 3, ["--instances", "100"])

    def test_maze(self):
        self.check_env(MAZE, [1, 2, 3], 2, ["--instances", "20"])

    def test_baselines(self):
        for flags in (["--env", "bandit", "--arms", "5", "--episodes", "10", "--policy", "all", "--instances", "200"],
                      ["--env", "mdp", "--episodes", "5", "--policy", "all", "--instances", "60"]):
            outs = {t: result_json(run("baselines", *flags, "--format", "json", "--threads", str(t)).stdout)
                    for t in (1, 2, 3)}
            self.assertEqual(outs[1], outs[2], f"{flags[1]} baselines at 2 threads")
            self.assertEqual(outs[1], outs[3], f"{flags[1]} baselines at 3 threads")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: determinism_test.py PATH/TO/rl2-cuda")
    BIN = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
