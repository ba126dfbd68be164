#!/usr/bin/env python3
"""No drift between tools/gpu_session.sh and what it runs (docs/gpu.md). From `rl2_gpu_tests
--gtest_list_tests` and kernels/*.cu:
  - every gtest filter of the script (families, sanitizer cases) matches tests, each of its patterns does,
    and each negative pattern removes some;
  - every gpu test falls in exactly one family (none is left out, none runs twice); every other gpu test binary
    beside rl2_gpu_tests (gpu_nccl_test) is run whole by exactly one family ("also") and lists tests;
  - the kernels the script hands racecheck and synccheck are ours and are exactly those that use shared
    memory (directly or through a __device__ helper such as step_ops.cu's block_reduce);
  - memcheck's kernel-name filter (the mangled prefix of namespace rl2) names every kernel of the binary;
  - `--dry-run` lists the families as steps and its limits add up to at most 330 s.
usage: gpu_session_check.py RL2_GPU_TESTS [GPU_SESSION_SH]
"""
import glob
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "tools", "gpu_session.sh")
BUDGET = 330


def gtest_list(binary):
    out = subprocess.run([binary, "--gtest_list_tests"], capture_output=True, text=True, check=True, timeout=120).stdout
    tests, suite = [], None
    for line in out.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            suite = line.split("#")[0].strip()
        elif suite is not None:
            tests.append(suite + line.split("#")[0].strip())
    return tests


def glob_re(pattern):
    """gtest's wildcards: * any string, ? one character; nothing else is special."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern) + r"\Z")


def split_filter(f):
    pos, _, neg = f.partition("-")
    return [p for p in pos.split(":") if p] or ["*"], [n for n in neg.split(":") if n]


def matches(f, name):
    pos, neg = split_filter(f)
    return any(glob_re(p).match(name) for p in pos) and not any(glob_re(n).match(name) for n in neg)


def script(*args):
    return subprocess.run(["bash", os.environ.get("RL2_GPU_SESSION_SH", SCRIPT), *args], capture_output=True, text=True, timeout=60)


def shared_memory_kernels():
    """{kernel name: file} of the __global__ functions in kernels/ whose body declares __shared__ memory or calls
    a __device__ function that does."""
    sources = {p: open(p).read() for p in sorted(glob.glob(os.path.join(REPO, "kernels", "*.cu*")))}

    def bodies(text, qualifier):
        for m in re.finditer(qualifier + r"[^;{(]*?\b(\w+)\s*\(", text):
            start = text.find("{", m.end())
            if start < 0 or ";" in text[m.end():start]:
                continue  # a declaration
            depth, i = 0, start
            while i < len(text):
                depth += {"{": 1, "}": -1}.get(text[i], 0)
                if depth == 0:
                    break
                i += 1
            yield m.group(1), text[start:i + 1]

    helpers = {name for text in sources.values() for name, body in bodies(text, r"__device__") if "__shared__" in body}
    kernels, shared = {}, {}
    for path, text in sources.items():
        for name, body in bodies(text, r"__global__"):
            kernels[name] = os.path.relpath(path, REPO)
            if "__shared__" in body or any(re.search(r"\b%s\s*\(" % h, body) for h in helpers):
                shared[name] = kernels[name]
    return kernels, shared, helpers


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__)
        return 2
    binary = argv[1]
    if len(argv) == 3:
        os.environ["RL2_GPU_SESSION_SH"] = argv[2]
    errors = []
    tests = gtest_list(binary)
    if not tests:
        errors.append("rl2_gpu_tests --gtest_list_tests listed no test")
    p = script("--list-filters")
    if p.returncode != 0:
        errors.append("gpu_session.sh --list-filters failed: " + p.stderr.strip())
    rows = [line.split("\t") for line in p.stdout.splitlines() if line.strip()]
    families = {r[1]: r[2] for r in rows if r[0] == "family"}
    sanitize = {r[1]: r[2] for r in rows if r[0] == "sanitize"}
    shared_named = [r[2] for r in rows if r[0] == "kernel" and r[1] == "shared"]
    ours = [r[2] for r in rows if r[0] == "kernel" and r[1] == "ours"]
    also = [(r[1], b) for r in rows if r[0] == "also" for b in r[2].split()]
    print("%d gpu tests; families: %s; sanitizer filters: %s" % (len(tests), ", ".join(families), ", ".join(sanitize)))
    if not families:
        errors.append("the script names no test family")

    # Every filter, and every pattern in it, matches; negative patterns remove something.
    for kind, filters in (("family", families), ("sanitizer", sanitize)):
        for name, f in filters.items():
            hits = [t for t in tests if matches(f, t)]
            print("  %-9s %-12s %3d tests  %s" % (kind, name, len(hits), f))
            if not hits:
                errors.append("%s %s: filter %r matches no gpu test" % (kind, name, f))
            pos, neg = split_filter(f)
            for pat in pos:
                if not any(glob_re(pat).match(t) for t in tests):
                    errors.append("%s %s: pattern %r matches no gpu test (renamed?)" % (kind, name, pat))
            for pat in neg:
                if not any(glob_re(pat).match(t) and any(glob_re(q).match(t) for q in pos) for t in tests):
                    errors.append("%s %s: negative pattern %r removes nothing" % (kind, name, pat))

    # Every test in exactly one family.
    for t in tests:
        fams = [n for n, f in families.items() if matches(f, t)]
        if not fams:
            errors.append("gpu test %s is in no family of gpu_session.sh" % t)
        elif len(fams) > 1:
            errors.append("gpu test %s is in %d families (%s): it would run twice" % (t, len(fams), ", ".join(fams)))

    # The binaries a family runs whole: each named once, by a family, and each gpu_* binary built beside
    # rl2_gpu_tests named (absent ones are fine: gpu_nccl_test exists only where the build found NCCL).
    test_dir = os.path.dirname(os.path.abspath(binary))
    built = sorted(f for f in os.listdir(test_dir) if re.fullmatch(r"gpu_\w+", f)
                   and os.path.isfile(os.path.join(test_dir, f)) and os.access(os.path.join(test_dir, f), os.X_OK))
    named = [b for _, b in also]
    for fam, b in also:
        if fam not in families:
            errors.append("also %s: %s is not a family" % (b, fam))
        if b in built:
            n = len(gtest_list(os.path.join(test_dir, b)))
            print("  also      %-12s %3d tests  %s (whole)" % (fam, n, b))
            if n == 0:
                errors.append("also %s: %s lists no test" % (fam, b))
        else:
            print("  also      %-12s   (not built here) %s" % (fam, b))
    for b in sorted(set(named)):
        if named.count(b) > 1:
            errors.append("binary %s is run by %d families: it would run twice" % (b, named.count(b)))
    for b in built:
        if b not in named:
            errors.append("gpu test binary %s is run by no family of gpu_session.sh" % b)

    # The sanitizers' kernel filters.
    kernels, shared, helpers = shared_memory_kernels()
    print("kernels/: %d kernels; with shared memory: %s (helpers: %s)" % (len(kernels), ", ".join(sorted(shared)),
                                                                       ", ".join(sorted(helpers))))
    if not kernels:
        errors.append("found no __global__ kernel in kernels/")
    for k in shared_named:
        if k not in kernels:
            errors.append("racecheck/synccheck kernel %s is not a kernel in kernels/ (renamed?)" % k)
        elif k not in shared:
            errors.append("racecheck/synccheck kernel %s uses no shared memory" % k)
    for k, path in sorted(shared.items()):
        if k not in shared_named:
            errors.append("%s (%s) uses shared memory but racecheck and synccheck do not check it" % (k, path))
    if len(ours) != 1:
        errors.append("the script names %d kernel prefixes for memcheck (expected one)" % len(ours))
    else:
        # The device names as the binary registers them with the runtime (host strings, fatbin symbols): a
        # kernel in an anonymous namespace gets a per-file name (_ZN3rl240_GLOBAL__N__..._train_cu_...).
        tokens = {t.decode() for t in re.findall(rb"_Z[A-Za-z0-9_]{8,}", open(binary, "rb").read())}
        tokens = {t for t in tokens if "__device_stub" not in t}
        if not any("_kernel" in t for t in tokens):
            print("(this rl2_gpu_tests holds no CUDA kernels: the memcheck prefix is not checked)")
        else:
            for k in sorted(kernels):
                names = sorted(t for t in tokens if re.search(r"\d%s[EI]" % re.escape(k), t))
                if not names:
                    errors.append("kernel %s is not in rl2_gpu_tests" % k)
                elif not all(n.startswith(ours[0]) for n in names):
                    errors.append("kernel %s's mangled name does not start with %s: memcheck would skip it (%s)"
                                  % (k, ours[0], next(n for n in names if not n.startswith(ours[0]))))

    # The dry run: the families are steps, the limits fit.
    d = script("--dry-run")
    m = re.search(r"total: (\d+) s", d.stdout)
    if not m:
        errors.append("gpu_session.sh --dry-run printed no total (exit %d): %s" % (d.returncode, d.stdout[-300:] + d.stderr))
    else:
        print("dry run: %s s of step limits" % m.group(1))
        if int(m.group(1)) > BUDGET:
            errors.append("the dry run's limits add up to %s s, over %d" % (m.group(1), BUDGET))
        elif d.returncode != 0:
            errors.append("gpu_session.sh --dry-run exited %d" % d.returncode)
        steps = [line.split()[0] for line in d.stdout.splitlines()[1:] if line and not line.startswith("total")]
        for f in families:
            if f not in steps:
                errors.append("family %s is not a step of the dry run" % f)
        if steps[:3] != ["libs", "smi", "info"]:
            errors.append("the session must start with libs, smi, info (it starts %s)" % steps[:3])

    for e in errors:
        print("DRIFT: " + e)
    print("gpu_session.sh against the gpu tests: %s" % ("%d problems" % len(errors) if errors else "ok"))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
