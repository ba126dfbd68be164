#!/usr/bin/env python3
"""Compares two directories of tools/reference_runs.sh: metrics.jsonl line by line with the wall-time
fields removed, and every tensor and metadata field of checkpoint.safetensors (elapsed time aside) byte
for byte. Exit 0 when all are identical; otherwise it names the first difference of each run."""
import json, struct, sys, pathlib

WALL = {"seconds", "env_steps_per_s", "wall_time"}

def metrics(path):
    out = []
    for line in open(path):
        d = json.loads(line)
        out.append({k: v for k, v in d.items() if k not in WALL})
    return out

def checkpoint(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    meta = header.pop("__metadata__", {})
    state = json.loads(meta.get("trainer_state", "{}"))
    state.pop("elapsed_seconds", None)
    meta["trainer_state"] = state
    body = b[8 + n:]
    tensors = {k: (v["dtype"], v["shape"], body[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}
    return meta, tensors

def main(a, b):
    bad = 0
    for run in sorted(p.name for p in pathlib.Path(a).iterdir() if p.is_dir()):
        pa, pb = pathlib.Path(a, run), pathlib.Path(b, run)
        why = None
        ma, mb = metrics(pa / "metrics.jsonl"), metrics(pb / "metrics.jsonl")
        if len(ma) != len(mb):
            why = f"{len(ma)} metrics lines against {len(mb)}"
        for i, (x, y) in enumerate(zip(ma, mb)):
            if x != y and why is None:
                keys = sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k))
                why = f"metrics line {i + 1} differs in {keys}"
        ca, cb = checkpoint(pa / "checkpoint.safetensors"), checkpoint(pb / "checkpoint.safetensors")
        if why is None and ca[0] != cb[0]:
            why = "checkpoint metadata differs"
        if why is None and ca[1] != cb[1]:
            keys = sorted(k for k in set(ca[1]) | set(cb[1]) if ca[1].get(k) != cb[1].get(k))
            why = f"checkpoint tensors differ: {keys}"
        print(f"{run}: {'identical' if why is None else why}")
        bad += why is not None
    return 1 if bad else 0

if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
