#!/usr/bin/env python3
"""Checks an rl2-cuda policy export (DESIGN.md section 7) from outside the product.

Reads the safetensors file with tools/load_policy.py's numpy reader (written from the format's spec:
u64 little-endian header length N, N bytes of JSON header, raw little-endian data), cross-checks it
against the reference `safetensors` package when that is importable, rebuilds the policy from its
torch-named tensors with load_policy.py's numpy backend (NumpyPolicy: torch.nn.GRU's equations, gate rows
r, z, n, behind the maze's conv encoder when the file has policy.encoder.*; float64) and recomputes the
action probabilities of a recorded case step by step from h = 0. So this test covers the numpy twin of
load_policy.py's torch path, which CI cannot run without torch.

Usage: safetensors_policy.py MODEL.safetensors CASE.json
CASE.json: {"x": T x B x I nested lists, "probs": T x B x A nested lists} (the product's output for x).
Exits 0 when max |probs - ours| <= 1e-5; otherwise (or for a bad file or case) prints why and exits 1.
All arithmetic is float64 (the product's is float32), so the tolerance only has to cover float32 rounding.
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from load_policy import FORMAT, FormatError, NumpyPolicy, has_encoder, read_safetensors, replay_case  # noqa: E402

TOLERANCE = 1e-5


def read_checked(path):
    """Reads PATH with load_policy's reader and, when the `safetensors` package is importable, checks that
    it reads the same names, shapes, dtypes, values and metadata. Returns ({name: array}, metadata)."""
    tensors, metadata = read_safetensors(path)
    try:
        from safetensors import safe_open
        from safetensors.numpy import load_file
    except ImportError:
        return tensors, metadata
    ref = load_file(path)
    if set(ref) != set(tensors):
        raise AssertionError(f"safetensors reads tensors {sorted(ref)}, ours {sorted(tensors)}")
    for name, a in tensors.items():
        b = ref[name]
        if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
            raise AssertionError(f"tensor {name!r} differs between safetensors and our reader")
    with safe_open(path, framework="numpy") as f:
        if (f.metadata() or {}) != metadata:
            raise AssertionError("__metadata__ differs between safetensors and our reader")
    return tensors, metadata


def main(argv):
    if len(argv) != 3:
        print(f"usage: {argv[0]} MODEL.safetensors CASE.json", file=sys.stderr)
        return 2
    model_path, case_path = argv[1], argv[2]
    try:
        tensors, metadata = read_checked(model_path)
        if metadata.get("format") != FORMAT:
            raise FormatError(f"__metadata__ format is {metadata.get('format')!r}, expected {FORMAT!r}")
        with open(case_path) as f:
            case = json.load(f)
        ours = np.asarray(case["probs"], dtype=np.float64)
        ref = replay_case(NumpyPolicy(tensors), case["x"])
    except AssertionError as e:
        print(f"FAIL: {model_path}: {e}")
        return 1
    except (OSError, KeyError, TypeError, ValueError) as e:
        print(f"FAIL: {model_path}: {type(e).__name__}: {e}")
        return 1
    if ours.shape != ref.shape:
        print(f"probs has shape {list(ours.shape)}, the model gives {list(ref.shape)}")
        return 1
    err = float(np.max(np.abs(ours - ref))) if ours.size else 0.0
    if not err <= TOLERANCE:  # also catches NaN
        print(f"FAIL: max |p_ours - p_numpy| = {err:.3e} > {TOLERANCE:g}")
        return 1
    net = "encoder + GRU" if has_encoder(tensors) else "GRU"
    print(f"OK ({net}): {ref.shape[0]} steps x {ref.shape[1]} trials x {ref.shape[2]} actions, "
          f"max |p_ours - p_numpy| = {err:.3e}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
