#!/usr/bin/env python3
"""The lent GPU's carry (docs/gpu.md): binaries built here that run on the device image, which has no Debian
packages. The rule, checked on real binaries:
  - every library that `ldd` lists (LD_LIBRARY_PATH = the carry's lib/) is one the image gives - glibc,
    libstdc++, libgcc_s, the driver, CUDA 13's cuBLAS, cuDNN and NCCL - or lies inside the carry;
  - no binary or carried library needs a GLIBC_ version above 2.34, a GLIBCXX_ above 3.4.29 or a CXXABI_
    above 1.3.13 (the carry holds no libstdc++: Debian 12's needs GLIBC_2.36);
  - libopenblas travels once, as a shared library every binary that uses BLAS links (not linked into each
    binary; gpu_nccl_test uses no BLAS);
  - the whole carry is at most 60 MiB (the device tool carries 64 MiB in all).

  carry_check.py pack DEST BINARY...       copy the binaries into DEST and what they need beyond the image
                                           into DEST/lib (tools/gpu_pack.sh)
  carry_check.py check DEST                check the rule on DEST; exit 1 naming each breach
  carry_check.py selftest [--mpi-build] BINARY...
                                           pack the given binaries into a temporary carry and check it (ctest);
                                           exit 77 (skipped) with the reason when ldd or objdump is missing;
                                           --mpi-build: binaries of an MPI build, whose MPI libraries never travel
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

MAX_VERSIONS = {"GLIBC": (2, 34), "GLIBCXX": (3, 4, 29), "CXXABI": (1, 3, 13)}
LIMIT_MIB = 60
SKIP = 77

# Libraries the device image gives (by soname): glibc, the C++ runtime (cuDNN needs it too), the driver, and
# CUDA 13's cuBLAS, cuDNN and NCCL from PyTorch's wheels (NCCL's 218 MB could not travel anyway).
IMAGE_GIVES = [re.compile(p) for p in (
    r"linux-vdso\.so\.1", r"ld-linux-x86-64\.so\.2",
    r"lib(c|m|pthread|dl|rt|resolv|util|mvec|anl)\.so\.[0-9]+",
    r"libstdc\+\+\.so\.6", r"libgcc_s\.so\.1",
    r"libcuda\.so\.1", r"libnvidia-[A-Za-z0-9_.-]+\.so(\.[0-9]+)*",
    r"libcublas(Lt)?\.so\.13", r"libcudnn(_[a-z_]+)?\.so\.9", r"libnccl\.so\.2",
)]


# An MPI build's own libraries (Open MPI and what it loads). The carried binaries are built without MPI
# (tools/gpu_pack.sh: -DRL2_ENABLE_MPI=OFF; the image has no libmpi and a lent machine one GPU), so when
# ctest checks the rule on an MPI build's binaries (selftest --mpi-build) these are left out of the rule.
MPI_LIBS = [re.compile(p) for p in (
    r"libmpi(_cxx)?\.so\.[0-9]+", r"libopen-(pal|rte)\.so\.[0-9]+", r"libevent(_[a-z]+)?-[0-9.]+\.so\.[0-9]+",
    r"libhwloc\.so\.[0-9]+", r"libudev\.so\.[0-9]+", r"libpmix\.so\.[0-9]+", r"libltdl\.so\.[0-9]+",
    r"libfabric\.so\.[0-9]+", r"libuc[pst]\.so\.[0-9]+", r"libnl(-[a-z]+)?-3\.so\.[0-9]+",
)]
MPI_BUILD = False


def image_gives(soname):
    return any(p.fullmatch(soname) for p in IMAGE_GIVES) or (MPI_BUILD and any(p.fullmatch(soname) for p in MPI_LIBS))


def is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def ldd(path, lib_dir=None):
    """[(soname, resolved path or None)], and ldd's complaints (e.g. a version not found)."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if lib_dir is not None:
        env["LD_LIBRARY_PATH"] = lib_dir
    p = subprocess.run(["ldd", path], capture_output=True, text=True, env=env, timeout=60)
    libs, problems = [], [l.strip() for l in p.stderr.splitlines() if l.strip()]
    for line in p.stdout.splitlines():
        line = line.strip()
        m = re.match(r"(\S+) => (not found|\S+)", line)
        if m:
            libs.append((m.group(1), None if m.group(2) == "not found" else m.group(2)))
        elif line.startswith("/") or line.startswith("linux-vdso"):
            tok = line.split()[0]
            libs.append((os.path.basename(tok), tok if tok.startswith("/") else None))
        elif "not found" in line or "not a dynamic" in line:
            problems.append(line)
    if p.returncode != 0 and not problems:
        problems.append("ldd exit %d" % p.returncode)
    return libs, problems


def objdump_p(path):
    return subprocess.run(["objdump", "-p", path], capture_output=True, text=True, check=True, timeout=60).stdout


def needed(path):
    return re.findall(r"^\s*NEEDED\s+(\S+)", objdump_p(path), re.M)


def names_cblas(path):
    """Whether the file's symbol tables (static or dynamic) name a cblas_ function: it uses BLAS, linked either way
    (a stripped binary names nothing; ours are not stripped)."""
    out = subprocess.run(["objdump", "-t", "-T", path], capture_output=True, text=True, timeout=60).stdout
    return re.search(r"\scblas_\w+$", out, re.M) is not None


def version_refs(path):
    """{(library, "GLIBC_2.34"), ...}: the symbol versions the file requires (objdump's Version References)."""
    refs, lib = set(), None
    text = objdump_p(path)
    part = text.split("Version References:", 1)
    if len(part) < 2:
        return refs
    for line in part[1].splitlines():
        m = re.match(r"\s*required from (\S+):", line)
        if m:
            lib = m.group(1)
            continue
        m = re.match(r"\s+0x[0-9a-f]+ 0x[0-9a-f]+ \d+ (\S+)", line)
        if m and lib:
            refs.add((lib, m.group(1)))
        elif line.strip() and not line.startswith(" "):
            break
    return refs


def parse_version(tag):
    m = re.fullmatch(r"([A-Z]+)_([0-9.]+)", tag)
    if not m or m.group(1) not in MAX_VERSIONS:
        return None
    return m.group(1), tuple(int(x) for x in m.group(2).split("."))


def pack(dest, binaries):
    """Copies the binaries into dest and every library they need beyond the image into dest/lib."""
    lib_dir = os.path.join(dest, "lib")
    os.makedirs(lib_dir, exist_ok=True)
    copied = {}
    for b in binaries:
        shutil.copy2(b, os.path.join(dest, os.path.basename(b)))
        libs, problems = ldd(b)
        if problems:
            raise SystemExit("carry_check: ldd %s: %s" % (b, "; ".join(problems)))
        for soname, path in libs:
            if image_gives(soname) or soname in copied:
                continue
            if path is None:
                raise SystemExit("carry_check: %s needs %s, which this machine does not have" % (b, soname))
            shutil.copy2(os.path.realpath(path), os.path.join(lib_dir, soname))
            copied[soname] = os.path.realpath(path)
    for soname, src in sorted(copied.items()):
        print("  carried %-20s from %s" % (soname, src))
    return copied


def du_mib(root):
    total = 0
    for d, _, files in os.walk(root):
        total += sum(os.path.getsize(os.path.join(d, f)) for f in files)
    return total / 2**20


def check(dest, limit_mib=LIMIT_MIB):
    """The rule on the carry in dest; returns the list of breaches (empty: the carry is good)."""
    errors = []
    lib_dir = os.path.abspath(os.path.join(dest, "lib"))
    root = os.path.abspath(dest)
    binaries = sorted(os.path.join(root, f) for f in os.listdir(root) if is_elf(os.path.join(root, f)))
    libs = sorted(os.path.join(lib_dir, f) for f in os.listdir(lib_dir)) if os.path.isdir(lib_dir) else []
    if not binaries:
        errors.append("no binaries in %s" % dest)
    for f in libs:
        name = os.path.basename(f)
        if image_gives(name):
            errors.append("%s is carried, but the image gives it (and a carried copy may need a newer glibc)" % name)
    top = {}
    for f in binaries + libs:
        resolved, problems = ldd(f, lib_dir)
        errors += ["%s: %s" % (os.path.basename(f), p) for p in problems]
        for soname, path in resolved:
            if path is None and soname == "linux-vdso.so.1":
                continue
            if path is None:
                errors.append("%s needs %s: not found in the carry, and the image does not give it"
                              % (os.path.basename(f), soname))
            elif not image_gives(soname) and not os.path.realpath(path).startswith(lib_dir + os.sep):
                errors.append("%s needs %s, found outside the carry (%s), and the image does not give it"
                              % (os.path.basename(f), soname, path))
        for lib, tag in version_refs(f):
            v = parse_version(tag)
            if v is None:
                continue
            kind, ver = v
            if ver > MAX_VERSIONS[kind]:
                errors.append("%s needs %s from %s (above %s_%s)" % (os.path.basename(f), tag, lib, kind,
                                                                     ".".join(map(str, MAX_VERSIONS[kind]))))
            if ver > top.get(kind, ()):
                top[kind] = ver
    carried = {os.path.basename(f) for f in libs}
    if any(n.startswith("libopenblas") for n in carried):
        if sum(n.startswith("libopenblas") for n in carried) != 1:
            errors.append("more than one OpenBLAS in the carry: %s" % sorted(n for n in carried if "openblas" in n))
    for b in binaries:
        if "libopenblas.so.0" not in needed(b) and names_cblas(b):
            errors.append("%s uses BLAS without linking libopenblas.so.0 shared (OpenBLAS must travel once, in lib/)"
                          % os.path.basename(b))
    size = du_mib(dest)
    if limit_mib is not None and size > limit_mib:
        errors.append("the carry is %.1f MiB, over %d MiB" % (size, limit_mib))
    print("carry %s: %d binaries (%s), %d libraries (%s), %.1f MiB; highest versions needed: %s" % (
        dest, len(binaries), ", ".join(os.path.basename(b) for b in binaries), len(libs), ", ".join(sorted(carried)),
        size, ", ".join("%s_%s" % (k, ".".join(map(str, v))) for k, v in sorted(top.items()))))
    return errors


def report(errors):
    for e in errors:
        print("BREACH: " + e)
    print("carry rule: %s" % ("%d breaches" % len(errors) if errors else "ok"))
    return 1 if errors else 0


def main(argv):
    if len(argv) < 2 or argv[1] not in ("pack", "check", "selftest"):
        print(__doc__)
        return 2
    for tool in ("ldd", "objdump"):
        if shutil.which(tool) is None:
            print("SKIPPED: %s is not installed, so the carry cannot be checked here" % tool)
            return SKIP
    cmd, args = argv[1], argv[2:]
    if cmd == "pack":
        if len(args) < 2:
            print(__doc__)
            return 2
        pack(args[0], args[1:])
        return 0
    if cmd == "check":
        return report(check(args[0]))
    if args and args[0] == "--mpi-build":
        global MPI_BUILD
        MPI_BUILD, args = True, args[1:]
        print("MPI build: its MPI libraries are left out of the rule (the carry is built with RL2_ENABLE_MPI=OFF)")
    for b in args:
        if not os.path.isfile(b):
            print("carry_check: %s is not built" % b)
            return 1
    with tempfile.TemporaryDirectory(prefix="rl2-carry-") as d:
        carry = os.path.join(d, "carry")
        copied = pack(carry, args)
        rc = report(check(carry))
        return rc or negative_controls(carry, copied, d)


def negative_controls(carry, copied, tmp):
    """The check must see a breach: a carry lacking one of its libraries, and one holding this machine's
    libstdc++ (an image-given library, and on Debian 12 one that needs GLIBC_2.36)."""
    failures = []
    if copied:
        victim = sorted(copied)[0]
        bad = os.path.join(tmp, "lacking")
        shutil.copytree(carry, bad)
        os.remove(os.path.join(bad, "lib", victim))
        seen = [e for e in check(bad) if victim in e]
        print("  control without %s: %s" % (victim, seen[0] if seen else "NOT SEEN"))
        if not seen:
            failures.append("a carry without %s passed the check" % victim)
    stdcxx = subprocess.run(["g++", "-print-file-name=libstdc++.so.6"], capture_output=True, text=True).stdout.strip() \
        if shutil.which("g++") else ""
    if os.path.isabs(stdcxx) and os.path.exists(stdcxx):
        bad = os.path.join(tmp, "stdcxx")
        shutil.copytree(carry, bad)
        shutil.copy2(os.path.realpath(stdcxx), os.path.join(bad, "lib", "libstdc++.so.6"))
        seen = [e for e in check(bad) if "libstdc++.so.6 is carried" in e]
        print("  control with a carried libstdc++: %s" % (seen[0] if seen else "NOT SEEN"))
        if not seen:
            failures.append("a carry holding libstdc++.so.6 passed the check")
    else:
        print("negative control with a carried libstdc++ not run: no g++ here")
    for f in failures:
        print("CHECKER BROKEN: " + f)
    print("negative controls: %s" % ("%d failed" % len(failures) if failures else "every breach seen"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
