#!/usr/bin/env python3
"""`cmake --install BUILD --prefix DIR` into a temporary prefix (README, "Using it"): the installed rl2-cuda
runs from there (--help, export --help naming onnx) with every shared library found, and
DIR/share/rl2-cuda/load_policy.py (which answers --help without torch) and the docs are installed.

Usage: install_test.py PATH/TO/cmake BUILD_DIR"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

CMAKE = BUILD = None


def run(*args):
    p = subprocess.run([*args], capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: exit {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}")
    return p.stdout


class Install(unittest.TestCase):
    def test_install_to_a_prefix(self):
        with tempfile.TemporaryDirectory() as prefix:
            run(CMAKE, "--install", BUILD, "--prefix", prefix)
            exe = os.path.join(prefix, "bin", "rl2-cuda")
            self.assertTrue(os.access(exe, os.X_OK), exe)
            self.assertIn("export", run(exe, "--help"))
            self.assertIn("onnx", run(exe, "export", "--help"))
            if shutil.which("ldd"):
                self.assertNotIn("not found", run("ldd", exe))
            tool = os.path.join(prefix, "share", "rl2-cuda", "load_policy.py")
            self.assertTrue(os.access(tool, os.X_OK), tool)
            self.assertIn("--backend", run(sys.executable, tool, "--help"))
            docs = os.path.join(prefix, "share", "doc", "rl2-cuda")
            for f in ["README.md", "docs/interop.md", "docs/training.md", "docs/maze.md"]:
                self.assertTrue(os.path.isfile(os.path.join(docs, f)), f)


if __name__ == "__main__":
    CMAKE, BUILD = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1], verbosity=2)
