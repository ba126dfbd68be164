#!/usr/bin/env python3
"""End-to-end tests of the rl2-cuda command line: flags, one-line errors with exit code 2, JSON output,
config files and determinism. Usage: cli_test.py PATH/TO/rl2-cuda"""
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

BIN = None


def run(*args, check_rc=None):
    p = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=300)
    if check_rc is not None and p.returncode != check_rc:
        raise AssertionError(f"rl2-cuda {' '.join(args)}: exit {p.returncode}, want {check_rc}\n"
                             f"stdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def gpu_usable():
    return json.loads(run("info", "--format", "json", check_rc=0).stdout)["cuda"]["usable"]


class Errors(unittest.TestCase):
    def assert_one_line_error(self, args, needle):
        p = run(*args)
        self.assertEqual(p.returncode, 2, f"{args}: {p.stderr}")
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, f"{args}: want one line, got {lines}")
        self.assertIn("error", lines[0])
        self.assertIn(needle, lines[0], f"{args}: {lines[0]}")
        self.assertEqual(p.stdout, "", f"{args}: nothing on stdout for an error")

    def test_bad_values(self):
        self.assert_one_line_error(["baselines", "--env", "cartpole"], "unknown --env")
        self.assert_one_line_error(["baselines", "--policy", "oracle"], "unknown --policy")
        self.assert_one_line_error(["baselines", "--env", "mdp", "--policy", "gittins"], "unknown --policy")
        self.assert_one_line_error(["baselines", "--arms", "0"], "--arms must be at least 1")
        self.assert_one_line_error(["baselines", "--arms", "-3"], "--arms")
        self.assert_one_line_error(["baselines", "--episodes", "0"], "--episodes must be at least 1")
        self.assert_one_line_error(["baselines", "--env", "mdp", "--horizon", "0"], "--horizon")
        self.assert_one_line_error(["baselines", "--instances", "0"], "--instances must be at least 1")
        self.assert_one_line_error(["baselines", "--instances", "-5"], "--instances")
        self.assert_one_line_error(["baselines", "--arms", "99999999999999999999"], "arms")
        self.assert_one_line_error(["bench", "--trials", "0"], "--trials")
        self.assert_one_line_error(["baselines", "--no-such-flag"], "--no-such-flag")
        self.assert_one_line_error(["baselines", "--format", "xml"], "--format")
        self.assert_one_line_error(["baselines", "--device", "tpu"], "--device")
        self.assert_one_line_error(["baselines", "--env", "maze"], "no classical baselines for the maze")
        self.assert_one_line_error(["train", "--env", "maze", "--mazes", "0"], "--mazes must be at least 1")
        self.assert_one_line_error(["render", "--size", "6"], "--size must be 3, 5, 7 or 9")
        self.assert_one_line_error(["render", "--horizon", "20"], "--horizon 20 is too small")
        self.assert_one_line_error(["render", "--env", "bandit"], "maze only")
        self.assert_one_line_error(["render", "--frames", "0"], "--frames")
        self.assert_one_line_error(["render", "--out", "/nonexistent/dir/maze.png"], "/nonexistent/dir")
        self.assert_one_line_error(["train", "--hidden", "0"], "--hidden")
        self.assert_one_line_error(["train", "--max-kl", "-1"], "--max-kl")
        self.assert_one_line_error(["train", "--algo", "sac"], "--algo")
        self.assert_one_line_error(["train", "--device", "cuda"] if not gpu_usable() else ["train", "--gamma", "2"],
                                   "GPU" if not gpu_usable() else "--gamma")
        self.assert_one_line_error(["eval"], "--checkpoint")
        self.assert_one_line_error(["eval", "--checkpoint", "/nonexistent/run"], "/nonexistent/run")
        self.assert_one_line_error(["export", "--checkpoint", "/nonexistent/run", "--out", "x.safetensors"],
                                   "/nonexistent/run")

    def test_absurd_sizes_say_what_they_need(self):
        self.assert_one_line_error(
            ["baselines", "--env", "mdp", "--states", "4000", "--actions", "4000", "--instances", "100000000"], "needs")
        self.assert_one_line_error(
            ["bench", "--env", "mdp", "--states", "4000", "--actions", "4000", "--trials", "100000000"], "needs")

    def test_cuda_without_gpu(self):
        if gpu_usable():
            self.skipTest("a GPU is usable here")
        self.assert_one_line_error(["baselines", "--device", "cuda", "--instances", "10"], "no usable GPU")
        self.assert_one_line_error(["bench", "--device", "cuda"], "no usable GPU")

    def test_config_files(self):
        with tempfile.TemporaryDirectory() as d:
            good = os.path.join(d, "good.toml")
            with open(good, "w") as f:
                f.write('seed = 7\nformat = "json"\n[baselines]\nenv = "bandit"\narms = 3\nepisodes = 4\n'
                        'policy = "greedy"\ninstances = 20\n')
            out = json.loads(run("baselines", "--config", good, check_rc=0).stdout)
            self.assertEqual((out["arms"], out["episodes"], out["policy"], out["seed"]), (3, 4, "greedy", 7))
            bad = os.path.join(d, "bad.toml")
            with open(bad, "w") as f:
                f.write('[baselines]\narms = 3\nbogus_key = 1\n')
            self.assert_one_line_error(["baselines", "--config", bad], "bogus_key")
            self.assert_one_line_error(["baselines", "--config", os.path.join(d, "missing.toml")], "missing.toml")
            garbage = os.path.join(d, "garbage.toml")
            with open(garbage, "w") as f:
                f.write("[[[ this is not toml\n")
            p = run("baselines", "--config", garbage)
            self.assertEqual(p.returncode, 2, p.stderr)


class Outputs(unittest.TestCase):
    def test_help_teaches(self):
        p = run("--help", check_rc=0)
        for word in ["baselines", "bench", "info", "--device", "--seed", "--format", "--config", "Examples"]:
            self.assertIn(word, p.stdout)
        p = run("baselines", "--help", check_rc=0)
        for word in ["--policy", "--instances", "--arms", "--episodes", "--tune-instances"]:
            self.assertIn(word, p.stdout)

    def test_info(self):
        out = json.loads(run("info", "--format", "json", check_rc=0).stdout)
        for key in ["version", "build", "cuda", "cpu_threads", "device_auto"]:
            self.assertIn(key, out)
        self.assertIn(out["device_auto"], ["cpu", "cuda"])
        if not out["cuda"]["usable"]:
            self.assertTrue(out["cuda"]["reason"])

    def test_baseline_json_and_determinism(self):
        args = ["baselines", "--arms", "3", "--episodes", "5", "--policy", "ucb1", "--instances", "60",
                "--tune-instances", "30", "--format", "json"]
        a = json.loads(run(*args, "--seed", "5", check_rc=0).stdout)
        b = json.loads(run(*args, "--seed", "5", check_rc=0).stdout)
        c = json.loads(run(*args, "--seed", "6", check_rc=0).stdout)
        for key in ["env", "policy", "instances", "episodes", "mean", "stderr", "hyperparameter", "paper"]:
            self.assertIn(key, a)
        self.assertEqual((a["env"], a["policy"], a["instances"], a["episodes"]), ("bandit", "ucb1", 60, 5))
        self.assertEqual(a["mean"], b["mean"])
        self.assertNotEqual(a["mean"], c["mean"])
        self.assertGreater(a["stderr"], 0.0)
        self.assertTrue(0.0 <= a["mean"] <= 5.0)

    def test_all_policies_json(self):
        out = json.loads(run("baselines", "--arms", "5", "--episodes", "10", "--instances", "100",
                             "--tune-instances", "50", "--format", "json", check_rc=0).stdout)
        names = [r["policy"] for r in out["results"]]
        self.assertEqual(names, ["random", "gittins", "ts", "ots", "ucb1", "eps-greedy", "greedy"])
        self.assertTrue(any(r["not_worse_than_best"] for r in out["results"]))
        for r in out["results"]:
            self.assertIn("hyperparameter", r)
            self.assertIsNotNone(r["paper"])  # k=5, n=10 is a paper setting
        out = json.loads(run("baselines", "--env", "mdp", "--episodes", "2", "--instances", "40",
                             "--tune-instances", "20", "--format", "json", check_rc=0).stdout)
        self.assertEqual([r["policy"] for r in out["results"]],
                         ["random", "psrl", "opsrl", "ucrl2", "beb", "eps-greedy", "greedy"])

    def test_table_output(self):
        p = run("baselines", "--arms", "2", "--episodes", "3", "--policy", "greedy", "--instances", "30",
                check_rc=0)
        self.assertIn("greedy", p.stdout)
        self.assertIn("bandit k=2 n=3", p.stdout)

    def test_bench_json(self):
        out = json.loads(run("bench", "--trials", "100", "--episodes", "3", "--format", "json", check_rc=0).stdout)
        cpu = [r for r in out["results"] if r["device"] == "cpu"]
        self.assertEqual(len(cpu), 1)
        self.assertGreater(cpu[0]["env_steps_per_s"], 0)
        # Training rows: whole TRPO iterations on the CPU (100 trials x 3 steps), with the phase split.
        train = [r for r in out["training"]["results"] if r["device"] == "cpu"]
        self.assertEqual(len(train), 1)
        self.assertEqual((train[0]["trials"], train[0]["steps_per_iter"]), (100, 300))
        self.assertGreater(train[0]["train_env_steps_per_s"], 0)
        phases = train[0]["seconds_rollout"] + train[0]["seconds_policy"] + train[0]["seconds_baseline"]
        self.assertTrue(0 < phases <= train[0]["seconds"] * 1.001, train[0])
        # The TRPO update's phases lie inside the policy phase, and each took time.
        update = [train[0][k] for k in ["seconds_gradient", "seconds_cg", "seconds_line_search"]]
        self.assertTrue(all(x > 0 for x in update), train[0])
        self.assertLessEqual(sum(update), train[0]["seconds_policy"] * 1.001, train[0])

    def test_render_writes_pngs(self):
        def png_size(path):
            with open(path, "rb") as f:
                head = f.read(24)
            self.assertEqual(head[:8], b"\x89PNG\r\n\x1a\n", path)
            self.assertEqual(head[12:16], b"IHDR", path)
            return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")

        with tempfile.TemporaryDirectory() as d:
            out = json.loads(run("render", "--env", "maze", "--size", "5", "--seed", "3", "--frames", "4",
                                 "--out", os.path.join(d, "maze.png"), "--format", "json", check_rc=0).stdout)
            names = sorted(os.listdir(d))
            self.assertEqual(names, ["maze_fp_000.png", "maze_fp_001.png", "maze_fp_002.png", "maze_fp_003.png",
                                     "maze_top.png"])
            self.assertEqual(out["first_person"], [os.path.join(d, n) for n in names[:4]])
            for n in names[:4]:
                self.assertEqual(png_size(os.path.join(d, n)), (320, 240))  # 40 x 30, x8
            self.assertEqual(png_size(os.path.join(d, "maze_top.png")), (7 * 32, 7 * 32))
            with open(os.path.join(d, "maze_top.png"), "rb") as f:
                first = f.read()
            run("render", "--size", "9", "--seed", "3", "--frames", "1", "--out", os.path.join(d, "big.png"),
                check_rc=0)
            self.assertEqual(png_size(os.path.join(d, "big_top.png")), (11 * 32, 11 * 32))
            run("render", "--seed", "3", "--frames", "4", "--out", os.path.join(d, "maze.png"), check_rc=0)
            with open(os.path.join(d, "maze_top.png"), "rb") as f:
                self.assertEqual(f.read(), first)  # same seed, same picture

    def test_bench_maze(self):
        # A 2 s CPU budget sizes the training row at one trial (2 iterations of 2 x 250 steps).
        out = json.loads(run("bench", "--env", "maze", "--trials", "16", "--train-iterations", "1", "--cpu-budget", "2",
                             "--threads", "1", "--format", "json", check_rc=0).stdout)
        self.assertEqual(out["env"], "maze")
        cpu = [r for r in out["results"] if r["device"] == "cpu"][0]
        self.assertGreater(cpu["env_steps_per_s"], 0)
        self.assertGreater(cpu["render_frames_per_s"], 0)
        train = [r for r in out["training"]["results"] if r["device"] == "cpu"]
        self.assertEqual((train[0]["trials"], train[0]["steps_per_iter"]), (1, 500))
        self.assertGreater(train[0]["train_env_steps_per_s"], 0)
        # Other environments have no render column.
        out = json.loads(run("bench", "--trials", "8", "--train-iterations", "0", "--format", "json", check_rc=0).stdout)
        self.assertNotIn("render_frames_per_s", out["results"][0])

    def test_bare_command_trains_then_compares_with_baselines(self):
        with tempfile.TemporaryDirectory() as d:
            p = run("--iterations", "2", "--steps-per-iter", "200", "--hidden", "16", "--instances", "40",
                    "--out", os.path.join(d, "run"), "--format", "json", check_rc=0)
            out = json.loads(p.stdout)
            self.assertEqual((out["rl2"]["env"], out["rl2"]["arms"], out["rl2"]["episodes"]), ("bandit", 5, 10))
            self.assertEqual(out["rl2"]["instances"], 40)
            self.assertEqual(out["baselines"]["results"][0]["policy"], "rl2")
            self.assertEqual(len(out["baselines"]["results"]), 8)
            self.assertIn("device:", p.stderr)


class Training(unittest.TestCase):
    TINY = ["--env", "mdp", "--states", "3", "--actions", "2", "--horizon", "2", "--episodes", "2",
            "--hidden", "8", "--steps-per-iter", "80"]

    def test_train_eval_export_resume(self):
        with tempfile.TemporaryDirectory() as d:
            rundir = os.path.join(d, "run")
            run("train", *self.TINY, "--iterations", "2", "--out", rundir, check_rc=0)
            for f in ["run.json", "config.toml", "metrics.jsonl", "checkpoint.safetensors", "policy.safetensors"]:
                self.assertTrue(os.path.exists(os.path.join(rundir, f)), f)
            with open(os.path.join(rundir, "metrics.jsonl")) as f:
                lines = [json.loads(l) for l in f]
            self.assertEqual([l["iteration"] for l in lines], [1, 2])
            for key in ["env_steps", "env_steps_per_s", "mean_return", "kl", "surrogate_gain", "entropy",
                        "explained_variance", "line_search_steps", "wall_time"]:
                self.assertIn(key, lines[0])
            # config.toml repeats the run exactly (metrics equal but for timings).
            rerun = os.path.join(d, "rerun")
            run("train", "--config", os.path.join(rundir, "config.toml"), "--out", rerun, check_rc=0)
            self.assertEqual(metrics_without_times(os.path.join(rundir, "metrics.jsonl")),
                             metrics_without_times(os.path.join(rerun, "metrics.jsonl")))
            # The same directory again is refused; --resume continues it.
            p = run("train", *self.TINY, "--iterations", "2", "--out", rundir)
            self.assertEqual(p.returncode, 2)
            self.assertIn("--resume", p.stderr)
            run("train", "--resume", rundir, "--iterations", "3", check_rc=0)
            with open(os.path.join(rundir, "metrics.jsonl")) as f:
                self.assertEqual([json.loads(l)["iteration"] for l in f], [1, 2, 3])
            a = json.loads(run("eval", "--checkpoint", rundir, "--instances", "30", "--format", "json",
                               check_rc=0).stdout)
            b = json.loads(run("eval", "--checkpoint", os.path.join(rundir, "policy.safetensors"),
                               "--instances", "30", "--format", "json", check_rc=0).stdout)
            for key in ["env", "policy", "instances", "episodes", "mean", "stderr"]:
                self.assertIn(key, a)
            self.assertEqual((a["policy"], a["instances"], a["episodes"]), ("rl2", 30, 2))
            self.assertEqual(a["mean"], b["mean"])  # same weights, same evaluation instances
            p = run("eval", "--checkpoint", rundir, "--video", os.path.join(d, "video"))
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("maze runs only", p.stderr)
            out = os.path.join(d, "p.safetensors")
            run("export", "--checkpoint", rundir, "--out", out, check_rc=0)
            with open(out, "rb") as f:
                blob = f.read()
            n = int.from_bytes(blob[:8], "little")
            header = json.loads(blob[8:8 + n])
            self.assertEqual(header["__metadata__"]["format"], "rl2-cuda/1")
            self.assertEqual(header["policy.gru.weight_hh_l0"]["shape"], [24, 8])
            # A corrupt checkpoint is a one-line error, not a crash.
            bad = os.path.join(d, "bad.safetensors")
            with open(bad, "wb") as f:
                f.write(blob[: len(blob) // 2])
            p = run("eval", "--checkpoint", bad)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertEqual(len([l for l in p.stderr.splitlines() if l.strip()]), 1, p.stderr)



def metrics_without_times(path):
    """metrics.jsonl rows without the wall-time fields (wall_time, env_steps_per_s, seconds.*)."""
    with open(path) as f:
        rows = [json.loads(l) for l in f]
    for r in rows:
        for k in ["wall_time", "env_steps_per_s", "seconds"]:
            r.pop(k)
    return rows


def safetensors_parts(path):
    """(header without the trainer state's elapsed_seconds, data bytes) of a safetensors file."""
    with open(path, "rb") as f:
        blob = f.read()
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    meta = header.get("__metadata__", {})
    if "trainer_state" in meta:
        state = json.loads(meta["trainer_state"])
        state.pop("elapsed_seconds")  # wall time, the only field that may differ
        meta["trainer_state"] = state
    return header, blob[8 + n:]


PROVENANCE_KEYS = ["rl2_cuda", "commit", "dirty", "build", "backend", "threads", "ranks", "cpu", "blas", "libraries"]


class Provenance(unittest.TestCase):
    """run.json, train/eval/baselines JSON and eval's table carry what a result depends on, under a key of its
    own; metrics.jsonl and checkpoints do not (they stay byte-identical across machines and thread counts)."""
    TINY = Training.TINY

    def check(self, p, threads, backend="cpu"):
        for key in PROVENANCE_KEYS:
            self.assertIn(key, p)
        self.assertRegex(p["commit"], r"^([0-9a-f]{12}|unknown)$")
        self.assertIn(p["dirty"], [True, False] if p["commit"] != "unknown" else [None])
        for key in ["type", "compiler", "cxx_flags"]:
            self.assertIn(key, p["build"])
        self.assertIn("-ffp-contract=off", p["build"]["cxx_flags"])
        self.assertEqual((p["backend"], p["threads"], p["ranks"]), (backend, threads, 1))
        self.assertTrue(p["cpu"]["model"])
        self.assertTrue(p["blas"]["core"])
        self.assertIn("OpenBLAS", p["blas"]["config"])
        self.assertEqual(p["blas"]["OPENBLAS_CORETYPE"], os.environ.get("OPENBLAS_CORETYPE"))
        for key in ["glibc", "openblas", "nlohmann_json", "cli11", "cuda_toolkit", "cudnn"]:
            self.assertTrue(p["libraries"][key], key)

    def test_everywhere(self):
        with tempfile.TemporaryDirectory() as d:
            rundir = os.path.join(d, "run")
            out = json.loads(run("train", *self.TINY, "--iterations", "2", "--threads", "2", "--device", "cpu",
                                 "--out", rundir, "--format", "json", check_rc=0).stdout)
            self.check(out["provenance"], 2)
            with open(os.path.join(rundir, "run.json")) as f:
                cfg = json.load(f)
            self.assertEqual(len(cfg["provenance"]), 1)
            self.check(cfg["provenance"][0], 2)
            self.assertEqual(cfg["provenance"][0]["start_iteration"], 0)
            # A resume appends its own entry; the config beside it is the run's.
            run("train", "--resume", rundir, "--iterations", "3", "--threads", "1", check_rc=0)
            with open(os.path.join(rundir, "run.json")) as f:
                cfg2 = json.load(f)
            self.assertEqual([p["start_iteration"] for p in cfg2["provenance"]], [0, 2])
            self.check(cfg2["provenance"][1], 1)
            cfg.pop("provenance"), cfg2.pop("provenance")
            self.assertEqual(cfg2, dict(cfg, iterations=3))
            # Never in metrics or checkpoints.
            with open(os.path.join(rundir, "metrics.jsonl")) as f:
                self.assertNotIn("provenance", f.read())
            for name in ["checkpoint.safetensors", "policy.safetensors"]:
                header, _ = safetensors_parts(os.path.join(rundir, name))
                self.assertNotIn("provenance", json.dumps(header))
            e = json.loads(run("eval", "--checkpoint", rundir, "--instances", "20", "--threads", "1",
                               "--format", "json", check_rc=0).stdout)
            self.check(e["provenance"], 1)
            p = run("eval", "--checkpoint", rundir, "--instances", "20", "--threads", "1", check_rc=0)
            line = [l for l in p.stdout.splitlines() if l.startswith("provenance:")]
            self.assertEqual(len(line), 1, p.stdout)
            self.assertIn(e["provenance"]["commit"], line[0])
            self.assertIn("cpu, 1 thread, 1 rank", line[0])
        b = json.loads(run("baselines", "--arms", "3", "--episodes", "4", "--policy", "greedy", "--instances", "20",
                           "--threads", "1", "--format", "json", check_rc=0).stdout)
        self.check(b["provenance"], 1)
        b = json.loads(run("baselines", "--arms", "3", "--episodes", "4", "--instances", "20", "--tune-instances", "10",
                           "--threads", "1", "--format", "json", check_rc=0).stdout)
        self.check(b["provenance"], 1)


class Preemption(unittest.TestCase):
    """SIGTERM (a scheduler) or SIGINT (Ctrl-C) during training: a checkpoint of the last completed iteration,
    one line on stderr, exit 128 + signal; --resume then ends exactly where an unbroken run does."""
    CFG = ["--env", "bandit", "--arms", "5", "--episodes", "10", "--hidden", "16", "--steps-per-iter", "500",
           "--threads", "1"]
    ITERATIONS = 200  # about 1.5 s unbroken on one core: time to signal after a few iterations

    def interrupted_run(self, rundir, sig, after_lines):
        def default_signals():  # a shell may start background jobs with SIGINT ignored; rl2-cuda keeps that
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

        p = subprocess.Popen([BIN, "train", *self.CFG, "--iterations", str(self.ITERATIONS), "--out", rundir],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)
        metrics = os.path.join(rundir, "metrics.jsonl")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and p.poll() is None:
            if os.path.exists(metrics):
                with open(metrics) as f:
                    if f.read().count("\n") >= after_lines:
                        break
            time.sleep(0.005)
        self.assertIsNone(p.poll(), "training ended before the signal; make the run longer")
        p.send_signal(sig)
        _, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 128 + sig, err)
        lines = [l for l in err.splitlines() if l.strip()]
        name = signal.Signals(sig).name
        m = re.fullmatch(r"rl2-cuda: interrupted by " + name + r" after iteration (\d+); checkpoint saved, "
                         r"continue with --resume " + re.escape(rundir), lines[-1])
        self.assertIsNotNone(m, f"last stderr line: {lines[-1]!r}")
        self.assertEqual(len([l for l in lines if "interrupted" in l or "checkpoint" in l]), 1, err)
        done = int(m.group(1))
        self.assertTrue(after_lines <= done < self.ITERATIONS, done)
        # The checkpoint and metrics.jsonl end at the same iteration.
        header, _ = safetensors_parts(os.path.join(rundir, "checkpoint.safetensors"))
        self.assertEqual(header["__metadata__"]["trainer_state"]["iteration"], done)
        with open(metrics) as f:
            self.assertEqual([json.loads(l)["iteration"] for l in f], list(range(1, done + 1)))
        self.assertFalse(os.path.exists(os.path.join(rundir, "policy.safetensors")))
        return done

    def test_signal_then_resume_matches_an_unbroken_run(self):
        with tempfile.TemporaryDirectory() as d:
            full = os.path.join(d, "full")
            run("train", *self.CFG, "--iterations", str(self.ITERATIONS), "--out", full, check_rc=0)
            for sig, after in [(signal.SIGTERM, 3), (signal.SIGINT, 5)]:
                rundir = os.path.join(d, signal.Signals(sig).name)
                done = self.interrupted_run(rundir, sig, after)
                run("train", "--resume", rundir, "--threads", "1", check_rc=0)
                self.assertEqual(metrics_without_times(os.path.join(rundir, "metrics.jsonl")),
                                 metrics_without_times(os.path.join(full, "metrics.jsonl")))
                self.assertEqual(safetensors_parts(os.path.join(rundir, "checkpoint.safetensors")),
                                 safetensors_parts(os.path.join(full, "checkpoint.safetensors")))
                for name in ["policy.safetensors"]:
                    with open(os.path.join(rundir, name), "rb") as a, open(os.path.join(full, name), "rb") as b:
                        self.assertEqual(a.read(), b.read(), name)
                with open(os.path.join(rundir, "run.json")) as f:
                    self.assertEqual([p["start_iteration"] for p in json.load(f)["provenance"]], [0, done])


class Maze(unittest.TestCase):
    """A CI-sized maze run end to end: train 2 TRPO iterations, evaluate Table 3 (JSON and text), write a
    video, and the bare default job; a ladder rung (the corridor, PPO by default) and its one evaluation
    setting; bad maze input is a one-line error. One thread: these batches are too
    small to share, and spinning OpenMP/OpenBLAS threads make them many times slower on a busy machine
    (e.g. under ctest -j)."""
    TINY = ["--env", "maze", "--size", "5", "--episodes", "2", "--horizon", "89", "--mazes", "4",
            "--hidden", "16", "--steps-per-iter", "356", "--threads", "1", "--algo", "trpo"]  # the smallest horizon; 2 trials

    def check_table3(self, out, instances):
        for key in ["env", "policy", "instances", "episodes", "mean", "stderr", "table3"]:
            self.assertIn(key, out)
        self.assertEqual((out["env"], out["policy"], out["instances"], out["episodes"]), ("maze", "rl2", instances, 5))
        self.assertTrue(math.isfinite(out["mean"]) and math.isfinite(out["stderr"]))
        for name, size, horizon in [("small", 5, 89), ("large", 9, 356)]:
            t = out["table3"][name]
            self.assertEqual((t["size"], t["horizon"], t["episodes"], t["instances"]), (size, horizon, 5, instances))
            self.assertTrue(math.isfinite(t["mean"]))
            self.assertTrue(0.0 <= t["improved_pct"] <= 100.0)
            self.assertIsNotNone(t["paper_improved_pct"])
            self.assertEqual([e["episode"] for e in t["per_episode"]], [1, 2, 3, 4, 5])
            for e in t["per_episode"]:
                self.assertTrue(0.0 <= e["success_pct"] <= 100.0)
                if e["successes"] > 0:
                    self.assertTrue(1.0 <= e["avg_len_success"] <= horizon)
                else:
                    self.assertIsNone(e["avg_len_success"])
                self.assertIsNotNone(e["paper"]["avg_len_success"])
                self.assertIsNotNone(e["paper"]["success_pct"])

    def test_train_eval_video_default_job(self):
        with tempfile.TemporaryDirectory() as d:
            rundir = os.path.join(d, "run")
            run("train", *self.TINY, "--iterations", "2", "--out", rundir, check_rc=0)
            with open(os.path.join(rundir, "run.json")) as f:
                cfg = json.load(f)
            self.assertEqual((cfg["env"], cfg["size"], cfg["mazes"], cfg["horizon"], cfg["episodes"]),
                             ("maze", 5, 4, 89, 2))
            out = json.loads(run("eval", "--checkpoint", rundir, "--instances", "8", "--format", "json",
                                 "--threads", "1", check_rc=0).stdout)
            self.check_table3(out, 8)
            video = os.path.join(d, "video")
            p = run("eval", "--checkpoint", rundir, "--instances", "2", "--video", video, "--threads", "1",
                    check_rc=0)
            self.assertIn("Table 3", p.stdout)
            self.assertIn("improved %", p.stdout)
            names = set(os.listdir(video))
            for i in range(3):
                self.assertIn(f"trial{i}_top.png", names)
                self.assertIn(f"trial{i}_fp_0000.png", names)
            with open(os.path.join(video, "trial0_fp_0001.png"), "rb") as f:
                head = f.read(24)
            self.assertEqual((int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")), (320, 240))
            # The bare job: train, evaluate, write table3.json and table3.md into the run directory.
            job = os.path.join(d, "job")
            p = run(*self.TINY, "--iterations", "1", "--instances", "4", "--out", job, "--format", "json",
                    check_rc=0)
            self.check_table3(json.loads(p.stdout), 4)
            with open(os.path.join(job, "table3.json")) as f:
                self.check_table3(json.load(f), 4)
            with open(os.path.join(job, "table3.md")) as f:
                self.assertIn("| improved % |", f.read())

    def test_ladder_rung_and_small_setting(self):
        with tempfile.TemporaryDirectory() as d:
            rundir = os.path.join(d, "corridor")
            run("train", "--env", "maze", "--layout", "corridor", "--size", "3", "--hidden", "8", "--steps-per-iter",
                "24", "--horizon", "12", "--iterations", "1", "--threads", "1", "--out", rundir, check_rc=0)
            with open(os.path.join(rundir, "run.json")) as f:
                cfg = json.load(f)
            self.assertEqual((cfg["layout"], cfg["size"], cfg["horizon"], cfg["algo"], cfg["gae_lambda"]),
                             ("corridor", 3, 12, "ppo", 0.95))
            out = json.loads(run("eval", "--checkpoint", rundir, "--instances", "6", "--format", "json",
                                 "--threads", "1", check_rc=0).stdout)
            self.assertEqual(list(out["table3"]), ["trained"])  # a rung: its own setting, no paper numbers
            t = out["table3"]["trained"]
            self.assertEqual((t["layout"], t["size"], t["horizon"], t["episodes"]), ("corridor", 3, 12, 5))
            self.assertIsNone(t["paper_improved_pct"])
            # The paper's setting, small only: one 5x5 evaluation.
            tiny = os.path.join(d, "tiny")
            run("train", *self.TINY, "--iterations", "1", "--out", tiny, check_rc=0)
            out = json.loads(run("eval", "--checkpoint", tiny, "--instances", "4", "--settings", "small", "--format",
                                 "json", "--threads", "1", check_rc=0).stdout)
            self.assertEqual(list(out["table3"]), ["small"])

    def test_bad_maze_input(self):
        err = Errors.assert_one_line_error
        err(self, ["--env", "maze", "--mazes", "0"], "--mazes must be at least 1")
        err(self, ["--env", "maze", "--size", "4"], "--size must be 3, 5, 7 or 9")
        err(self, ["train", "--env", "maze", "--size", "11"], "--size must be 3, 5, 7 or 9")
        err(self, ["train", "--env", "maze", "--layout", "spiral"], "unknown --layout 'spiral'")
        err(self, ["eval", "--checkpoint", "x", "--settings", "large"], "--settings")
        err(self, ["--env", "maze", "--horizon", "20"], "--horizon 20 is too small")
        err(self, ["train", "--env", "maze", "--horizon", "20"], "--horizon 20 is too small")


class Reproduce(unittest.TestCase):
    """`reproduce`: one small cell end to end with a tiny budget (CI's short reproduce run), its resume,
    its refusal of a foreign run, and the periodic held-out evaluation it asks train for."""

    def test_errors(self):
        e = Errors()
        e.assert_one_line_error(["reproduce", "--table", "4"], "--table must be 1, 2 or 3")
        e.assert_one_line_error(["reproduce", "--table", "1", "--cells", "n10k7"], "unknown cell 'n10k7'")
        e.assert_one_line_error(["reproduce", "--table", "2", "--cells", "n10k5"], "unknown cell 'n10k5' for --table 2")
        e.assert_one_line_error(["reproduce"], "--table")
        e.assert_one_line_error(["reproduce", "--table", "1", "--seeds", "-1"], "--seeds")
        e.assert_one_line_error(["train", "--max-minutes", "-1"], "--max-minutes")
        e.assert_one_line_error(["train", "--eval-every", "-2"], "--eval-every")
        e.assert_one_line_error(["train", "--fvp-subsample", "0"], "--fvp-subsample must be in (0, 1]")
        e.assert_one_line_error(["train", "--fvp-subsample", "1.5"], "--fvp-subsample must be in (0, 1]")

    def test_one_cell_end_to_end_then_resumed(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "rp")
            args = ["reproduce", "--table", "1", "--cells", "n10k5", "--budget-minutes", "0.02", "--seeds", "2",
                    "--instances", "200", "--out", out, "--format", "json"]
            first = json.loads(run(*args, check_rc=0).stdout)
            self.assertEqual(first["table"], 1)
            # The table lists every cell of Table 1: the one run, and the others with their recipes.
            self.assertEqual(len(first["cells"]), 9)
            (cell,) = [c for c in first["cells"] if not c.get("not_run")]
            self.assertTrue(all(c["cpu_recipe"].startswith("rl2-cuda train --env bandit")
                                for c in first["cells"] if c.get("not_run")))
            for key in ["cell", "mean", "stderr", "paper", "best_baseline", "bayes_optimal", "seconds", "env_steps",
                        "command"]:
                self.assertIn(key, cell)
            self.assertEqual(cell["cell"], "n10k5")
            self.assertEqual(cell["paper"], 6.7)
            self.assertAlmostEqual(cell["bayes_optimal"], 6.660, places=3)
            self.assertTrue(cell["command"].startswith("rl2-cuda train --env bandit --arms 5 --episodes 10"))
            self.assertEqual([s["seed"] for s in cell["seeds"]], [1, 2])
            # Every seed on the same instances: the mean over seeds is the mean of the seeds' means.
            self.assertAlmostEqual(cell["mean"], sum(s["mean"] for s in cell["seeds"]) / 2, places=9)
            self.assertEqual(cell["env_steps"], sum(s["iterations"] * 10000 for s in cell["seeds"]))
            self.assertTrue(all(1 <= s["iterations"] < 150 for s in cell["seeds"]), cell["seeds"])  # the budget stopped them
            self.assertIn(cell["best_baseline"]["policy"], ["gittins", "ucb1", "greedy", "eps-greedy", "ots", "ts"])
            self.assertIsInstance(cell["bold"], bool)
            with open(os.path.join(out, "table1.md")) as f:
                md = f.read()
            self.assertIn("| n10k5 |", md)
            self.assertIn("--seed 2", md)
            # A second call with the same budget trains nothing and evaluates nothing again.
            metrics = [os.path.join(out, "n10k5", f"seed{s}", "metrics.jsonl") for s in (1, 2)]
            before = [open(m).read() for m in metrics]
            again = json.loads(run(*args, check_rc=0).stdout)
            self.assertEqual([open(m).read() for m in metrics], before)
            self.assertEqual(again["cells"][0]["mean"], cell["mean"])  # n10k5 is the table's first cell
            # --no-train with a larger budget trains nothing, and marks the runs as stopped early.
            bigger = args[:]
            bigger[bigger.index("--budget-minutes") + 1] = "5"
            report = json.loads(run(*bigger, "--no-train", check_rc=0).stdout)["cells"][0]
            self.assertEqual([open(m).read() for m in metrics], before)
            self.assertEqual([s["finished"] for s in report["seeds"]], [False, False])
            with open(os.path.join(out, "table1.md")) as f:
                self.assertIn("stopped before its iterations", f.read())
            # A larger budget continues both runs where they stopped (one more iteration at least: the limit
            # is checked before each iteration).
            args[args.index("--budget-minutes") + 1] = str(max(s["seconds"] for s in cell["seeds"]) / 60 + 0.001)
            more = json.loads(run(*args, check_rc=0).stdout)["cells"][0]
            for s0, s1 in zip(cell["seeds"], more["seeds"]):
                self.assertGreater(s1["iterations"], s0["iterations"])
            # A run directory of another recipe is refused, not overwritten.
            foreign = os.path.join(d, "foreign")
            run("train", *Training.TINY, "--iterations", "1", "--out", os.path.join(foreign, "n10k5", "seed1"), check_rc=0)
            p = run("reproduce", "--table", "1", "--cells", "n10k5", "--out", foreign)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("holds a run of another recipe", p.stderr)

    def test_heldout_evaluations_leave_training_unchanged(self):
        with tempfile.TemporaryDirectory() as d:
            plain, evald = os.path.join(d, "plain"), os.path.join(d, "eval")
            run("train", *Training.TINY, "--iterations", "3", "--out", plain, check_rc=0)
            run("train", *Training.TINY, "--iterations", "3", "--eval-every", "2", "--eval-instances", "30",
                "--out", evald, check_rc=0)
            rows = metrics_without_times(os.path.join(evald, "metrics.jsonl"))
            self.assertEqual(["heldout_mean" in r for r in rows], [False, True, True])  # every 2nd and the last
            self.assertEqual(rows[1]["heldout_instances"], 30)
            for r in rows:
                for k in ["heldout_mean", "heldout_stderr", "heldout_instances"]:
                    r.pop(k, None)
            self.assertEqual(rows, metrics_without_times(os.path.join(plain, "metrics.jsonl")))
            self.assertEqual(safetensors_parts(os.path.join(plain, "checkpoint.safetensors")),
                             safetensors_parts(os.path.join(evald, "checkpoint.safetensors")))


if __name__ == "__main__":
    BIN = sys.argv.pop(1)
    unittest.main(verbosity=1)
