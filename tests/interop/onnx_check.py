#!/usr/bin/env python3
"""The ONNX export of the policy step and the export's bad requests (docs/interop.md), end to end.

For a bandit, an MDP and a maze policy (tiny training runs): `rl2-cuda export --format onnx` must give a
model that onnx.checker accepts (full check, with shape inference) and that onnxruntime, stepped over
whole trials with its h_next fed back as h, turns into rl2-cuda's own action probabilities within 1e-5
(rl2_interop_case --trial writes the trials' inputs and the product's probabilities; the maze trials are
real ones, episodes of the run's horizon, plus one of noise images). The same case goes through
tools/load_policy.py's numpy backend, and load_policy.py plays one bandit and one MDP trial.
Bad requests (an unwritable --out, a checkpoint of another format version, an unknown format) give one
line on stderr, exit code 2 and no file.

onnx and onnxruntime must be installed (tools/install-deps.sh): a missing package fails this test.
Usage: onnx_check.py PATH/TO/rl2-cuda PATH/TO/rl2_interop_case"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import onnx
import onnxruntime

BIN = CASE_BIN = None
TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools")
sys.path.insert(0, TOOLS)
import load_policy  # noqa: E402

TOLERANCE = 1e-5
RUNS = {
    "bandit": ["--env", "bandit", "--arms", "4", "--episodes", "7", "--hidden", "16", "--steps-per-iter", "140",
               "--iterations", "2"],
    "mdp": ["--env", "mdp", "--states", "4", "--actions", "3", "--horizon", "3", "--episodes", "2", "--hidden", "16",
            "--steps-per-iter", "120", "--iterations", "2"],
    # cli_test.py's smallest maze run: 2 trials of 2 x 89 steps, one iteration.
    "maze": ["--env", "maze", "--size", "5", "--episodes", "2", "--horizon", "89", "--mazes", "4", "--hidden", "16",
             "--steps-per-iter", "356", "--threads", "1", "--iterations", "1"],
}


def run(*args, rc=0):
    p = subprocess.run([*args], capture_output=True, text=True, timeout=300)
    if rc is not None and p.returncode != rc:
        raise AssertionError(f"{' '.join(args)}: exit {p.returncode}, want {rc}\nstdout: {p.stdout}\nstderr: {p.stderr}")
    return p


class OnnxExport(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dirs = {}
        for env, flags in RUNS.items():
            d = os.path.join(cls.tmp.name, env)
            run(BIN, "train", *flags, "--out", os.path.join(d, "run"))
            run(BIN, "export", "--checkpoint", os.path.join(d, "run"), "--format", "onnx", "--out",
                os.path.join(d, "policy.onnx"))
            run(CASE_BIN, os.path.join(d, "run", "policy.safetensors"), os.path.join(d, "case.json"), "--trial")
            cls.dirs[env] = d

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def check_env(self, env):
        d = self.dirs[env]
        path = os.path.join(d, "policy.onnx")
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
        self.assertGreaterEqual({o.domain: o.version for o in model.opset_import}[""], 14)
        gru = [n for n in model.graph.node if n.op_type == "GRU"]
        self.assertEqual(len(gru), 1)
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in gru[0].attribute}
        self.assertEqual(attrs["linear_before_reset"], 1)
        meta = {p.key: p.value for p in model.metadata_props}
        self.assertEqual((meta["format"], meta["env"]), ("rl2-cuda/1", env))
        ops = {n.op_type for n in model.graph.node}
        if env == "maze":
            self.assertTrue({"Conv", "Relu", "Gemm", "Flatten", "Concat"} <= ops, ops)

        with open(os.path.join(d, "case.json")) as f:
            case = json.load(f)
        x = np.asarray(case["x"], dtype=np.float32)  # [T, B, I]: whole trials
        want = np.asarray(case["probs"], dtype=np.float64)
        steps, trials, _ = x.shape
        cfg = json.loads(meta["config"])
        self.assertEqual(steps, cfg["episodes"] * (1 if env == "bandit" else cfg["horizon"]))

        sess = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]
        self.assertEqual([o.name for o in sess.get_outputs()], ["probs", "logits", "h_next"])
        hidden = sess.get_inputs()[-1].shape[1]
        h = np.zeros((trials, hidden), np.float32)
        got = np.empty_like(want)
        for t in range(steps):
            if env == "maze":
                self.assertEqual(names, ["image", "extra", "h"])
                image_size = 3 * 30 * 40
                feed = {"image": x[t, :, :image_size].reshape(trials, 3, 30, 40), "extra": x[t, :, image_size:], "h": h}
            else:
                self.assertEqual(names, ["x", "h"])
                feed = {"x": x[t], "h": h}
            probs, logits, h = sess.run(None, feed)
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            np.testing.assert_allclose(probs, e / e.sum(axis=1, keepdims=True), atol=1e-6)
            got[t] = probs
        err = float(np.max(np.abs(got - want)))
        print(f"{env}: onnxruntime over {trials} trials x {steps} steps: max |p_onnx - p_rl2| = {err:.2e}")
        self.assertLessEqual(err, TOLERANCE)

        # tools/load_policy.py's numpy twin on the same trials, and its command line.
        tensors, _, _ = load_policy.read_policy(os.path.join(d, "run", "policy.safetensors"))
        err = float(np.max(np.abs(load_policy.replay_case(load_policy.NumpyPolicy(tensors), case["x"]) - want)))
        print(f"{env}: load_policy.py numpy over the same trials: max |p_numpy - p_rl2| = {err:.2e}")
        self.assertLessEqual(err, TOLERANCE)
        tool = [sys.executable, os.path.join(TOOLS, "load_policy.py"), os.path.join(d, "run", "policy.safetensors"),
                "--backend", "numpy"]
        self.assertIn("OK", run(*tool, "--case", os.path.join(d, "case.json")).stdout)
        if env != "maze":
            out = run(*tool, "--seed", "3").stdout
            self.assertIn(f"over {cfg['episodes']} episodes", out)
            self.assertEqual(out, run(*tool, "--seed", "3").stdout)  # seeded

    def test_bandit(self):
        self.check_env("bandit")

    def test_mdp(self):
        self.check_env("mdp")

    def test_maze(self):
        self.check_env("maze")


class ExportErrors(unittest.TestCase):
    """One line on stderr, exit 2, and no file (complete or partial) where the export was to go."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.run_dir = os.path.join(cls.tmp.name, "run")
        run(BIN, "train", *RUNS["mdp"], "--out", cls.run_dir)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def assert_refused(self, args, needle, out):
        # The export's own files are --out and its temporary, --out.tmp-PID, beside it.
        parent, base = os.path.dirname(out) or ".", os.path.basename(out)

        def ours():
            return sorted(f for f in os.listdir(parent) if f.startswith(base)) if os.path.isdir(parent) else None

        before = ours()
        p = run(BIN, "export", *args, "--out", out, rc=None)
        self.assertEqual(p.returncode, 2, p.stderr)
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("error", lines[0])
        self.assertIn(needle, lines[0])
        self.assertEqual(ours(), before, "a file was left behind")

    def test_unwritable_output(self):
        for fmt in ["onnx", "safetensors"]:
            ck = ["--checkpoint", self.run_dir, "--format", fmt]
            self.assert_refused(ck, "/nonexistent/dir does not exist", "/nonexistent/dir/policy." + fmt)
            self.assert_refused(ck, "is not a directory", os.path.join(self.run_dir, "run.json", "policy." + fmt))
            self.assert_refused(ck, "it is a directory", self.tmp.name)
            # /proc takes no new files, even from root: the write itself fails and leaves nothing.
            self.assert_refused(ck, "cannot write --out /proc/policy." + fmt, "/proc/policy." + fmt)

    def test_other_format_version(self):
        with open(os.path.join(self.run_dir, "checkpoint.safetensors"), "rb") as f:
            blob = f.read()
        n = int.from_bytes(blob[:8], "little")
        self.assertIn(b"rl2-cuda/1", blob[8:8 + n])
        other = os.path.join(self.tmp.name, "v9.safetensors")
        with open(other, "wb") as f:
            f.write(blob[:8] + blob[8:8 + n].replace(b"rl2-cuda/1", b"rl2-cuda/9") + blob[8 + n:])
        for fmt in ["onnx", "safetensors"]:
            out = os.path.join(self.tmp.name, "out", "p." + fmt)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            self.assert_refused(["--checkpoint", other, "--format", fmt], "rl2-cuda/9", out)
            self.assertFalse(os.path.exists(out))
        # A failed export leaves an existing file as it was.
        out = os.path.join(self.tmp.name, "out", "keep.onnx")
        with open(out, "wb") as f:
            f.write(b"old")
        self.assert_refused(["--checkpoint", other, "--format", "onnx"], "rl2-cuda/9", out)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), b"old")

    def test_unknown_format(self):
        self.assert_refused(["--checkpoint", self.run_dir, "--format", "tflite"], "expected safetensors or onnx",
                            os.path.join(self.tmp.name, "p.tflite"))


if __name__ == "__main__":
    BIN, CASE_BIN = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1], verbosity=2)
