#!/usr/bin/env python3
"""The layers run one way (docs/design.md, "Training"): a file may include only headers of its own layer or
of the layers below it, and kernels/ (the lowest CUDA layer) nothing of src/cuda.

  rl2_core      src/core src/env src/policy src/io src/stats src/baselines   (+ include/rl2/**)
  rl2_cpu       src/cpu                      rl2_cuda   src/cuda kernels
  rl2_train     src/train                    rl2_commands  src/commands
Quoted includes name a path under include/ ("rl2/..."), src/ ("cpu/...", "cuda/...") or kernels/ (bare).
usage: layers_check.py REPO_ROOT"""
import pathlib
import re
import sys

LEVEL = {"core": 0, "cpu": 1, "cuda": 1, "train": 2, "commands": 3}
DIR_LAYER = {"src/core": "core", "src/env": "core", "src/policy": "core", "src/io": "core", "src/stats": "core",
             "src/baselines": "core", "src/data": "core", "include/rl2": "core", "src/cpu": "cpu",
             "src/cuda": "cuda", "kernels": "cuda", "src/train": "train", "src/commands": "commands"}


def layer_of(rel):
    for d, layer in sorted(DIR_LAYER.items(), key=lambda kv: -len(kv[0])):
        if rel == d or rel.startswith(d + "/"):
            return layer
    return None


def target_of(name, root):
    """The layer of a quoted include, or None for a generated or system header."""
    if name.startswith("rl2/"):
        return "core"  # the public headers: interfaces and RL2_HD bodies, no library of their own
    first = name.split("/")[0]
    if first in ("cpu", "cuda", "train", "commands"):
        return layer_of("src/" + name.rsplit("/", 1)[0])
    if (root / "kernels" / name).exists():
        return "cuda"
    return None


def main(root):
    root = pathlib.Path(root)
    bad = []
    for path in sorted(list(root.glob("src/**/*")) + list(root.glob("kernels/*")) + list(root.glob("include/**/*"))):
        if path.suffix not in (".cpp", ".hpp", ".cu", ".cuh"):
            continue
        rel = path.relative_to(root).as_posix()
        src = layer_of(rel)
        if src is None:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
            if not m:
                continue
            dst = target_of(m.group(1), root)
            if dst is None:
                continue
            upward = LEVEL[dst] > LEVEL[src]
            sideways = LEVEL[dst] == LEVEL[src] and dst != src
            from_kernels = rel.startswith("kernels/") and m.group(1).startswith("cuda/")
            if upward or sideways or from_kernels:
                bad.append(f"{rel}:{n}: {src} includes {m.group(1)} ({dst})")
    for b in bad:
        print(b)
    print(f"layers: {len(bad)} include(s) against the direction")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
