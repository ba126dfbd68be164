#!/usr/bin/env python3
"""`rl2-cuda info` reports the cuBLAS and cuDNN the dynamic loader found, and refuses in one line (exit 1) one
whose major version differs from the build's (docs/gpu.md: the lent GPU's first check). The libraries are
swapped for tiny stand-ins built here, each exporting the one version query info makes (cublasGetProperty,
cudnnGetVersion) under the real library's soname and symbol version, first on LD_LIBRARY_PATH.
usage: info_versions_check.py RL2_CUDA        (exit 77: skipped, with the reason, for a build without CUDA)
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

SKIP = 77
FAKES = {  # soname -> C source of the stand-in; {v} is the version it reports
    "libcublas.so.13": "int cublasGetProperty(int type, int* value) {{ const int v[3] = {{{v}}}; "
                       "if (type < 0 || type > 2) return 7; *value = v[type]; return 0; }}\n",
    "libcudnn.so.9": "#include <stddef.h>\nsize_t cudnnGetVersion(void) {{ const int v[3] = {{{v}}}; "
                     "return (size_t)(v[0] * 10000 + v[1] * 100 + v[2]); }}\n",
}
NAMES = {"libcublas.so.13": "cuBLAS", "libcudnn.so.9": "cuDNN"}


def needed(binary):
    p = subprocess.run(["objdump", "-p", binary], capture_output=True, text=True, check=True)
    return [l.split()[1] for l in p.stdout.splitlines() if l.strip().startswith("NEEDED")], p.stdout


def build_fake(tmp, soname, version):
    d = tempfile.mkdtemp(dir=tmp)
    src, vmap = os.path.join(d, "fake.c"), os.path.join(d, "fake.map")
    with open(src, "w") as f:
        f.write(FAKES[soname].format(v=", ".join(str(x) for x in version)))
    with open(vmap, "w") as f:
        f.write("%s { global: *; };\n" % soname)  # the real libraries version their symbols by soname
    subprocess.run(["cc", "-shared", "-fPIC", "-Wl,-soname," + soname, "-Wl,--version-script=" + vmap, "-o",
                    os.path.join(d, soname), src], check=True)
    return d


def info(binary, lib_dir=None, *args):
    env = dict(os.environ)
    if lib_dir:
        env["LD_LIBRARY_PATH"] = lib_dir + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    return subprocess.run([binary, "info", *args], capture_output=True, text=True, env=env, timeout=60)


def main(argv):
    if len(argv) != 2:
        print(__doc__)
        return 2
    binary = argv[1]
    for tool in ("cc", "objdump"):
        if shutil.which(tool) is None:
            print("SKIPPED: no %s here to build the stand-in libraries" % tool)
            return SKIP
    libs, dyn = needed(binary)
    present = [s for s in FAKES if s in libs]
    if not present:
        print("SKIPPED: %s links neither cuBLAS nor cuDNN (a build without the CUDA backend)" % binary)
        return SKIP
    if "BIND_NOW" in dyn or re.search(r"FLAGS_1\s.*\bNOW\b", dyn):
        print("SKIPPED: %s binds every symbol at load, so a one-function stand-in cannot load" % binary)
        return SKIP
    errors = []
    p = info(binary, None, "--format", "json")
    if p.returncode != 0:
        errors.append("info with the real libraries: exit %d: %s" % (p.returncode, p.stderr.strip()))
        built = {}
    else:
        built = json.loads(p.stdout).get("libraries", {})
        print("real libraries: %s" % json.dumps(built))
        for soname in present:
            lib = built.get(NAMES[soname])
            if not lib:
                errors.append("info --format json lists no %s" % NAMES[soname])
            elif lib["runtime"].split(".")[0] != lib["built"].split(".")[0]:
                errors.append("%s: runtime %s, built %s, yet info did not refuse" % (NAMES[soname], lib["runtime"],
                                                                                      lib["built"]))
        text = info(binary).stdout
        for soname in present:
            if "%s:" % NAMES[soname] not in text:
                errors.append("info's text has no '%s:' line" % NAMES[soname])
    with tempfile.TemporaryDirectory(prefix="rl2-info-") as tmp:
        for soname in present:
            name = NAMES[soname]
            major = int(built.get(name, {}).get("built", "9.0.0" if soname == "libcudnn.so.9" else "13.0.0")
                        .split(".")[0])
            # Another major version: refused, in one line on stderr, naming both versions.
            other = (major - 1, 9, 7)
            p = info(binary, build_fake(tmp, soname, other))
            lines = [l for l in p.stderr.splitlines() if l.strip()]
            want = "%s %d.9.7" % (name, major - 1)
            print("%s %d.9.7 stand-in: exit %d, stderr %r" % (name, major - 1, p.returncode, p.stderr.strip()))
            if p.returncode != 1 or len(lines) != 1 or want not in lines[0] or "built with %s %d." % (name, major) \
                    not in lines[0] or p.stdout.strip():
                errors.append("%s %s was not refused in one line (exit %d, stdout %r, stderr %r)"
                              % (name, want, p.returncode, p.stdout[:200], p.stderr[:300]))
            # The same major, another minor: accepted, and reported as loaded (the query reaches the library).
            same = (major, 99, 3)
            p = info(binary, build_fake(tmp, soname, same), "--format", "json")
            got = json.loads(p.stdout).get("libraries", {}).get(name, {}).get("runtime") if p.returncode == 0 else None
            print("%s %d.99.3 stand-in: exit %d, runtime reported %s" % (name, major, p.returncode, got))
            if got != "%d.99.3" % major:
                errors.append("%s %d.99.3 at run time: info said %r (exit %d, %s)" % (name, major, got, p.returncode,
                                                                                    p.stderr.strip()))
    for e in errors:
        print("FAILED: " + e)
    print("info's library versions: %s" % ("%d failures" % len(errors) if errors else "ok"))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
