#!/usr/bin/env python3
"""Every run directory's TensorBoard event file (docs/interop.md), read with the tensorboard package's own
readers and compared with metrics.jsonl, through a resume that replays iterations.

A tiny MDP run trains 2 iterations, is resumed to 4, and then its checkpoint is put back to iteration 2
and the event file's last record torn, as if the process had died after logging iterations 3 and 4 but
before checkpointing them; resuming to 5 drops and replays 3 and 4 in metrics.jsonl (src/train/run.cpp).
After each step the run's single event file must hold, per tag, exactly one point per iteration in
metrics.jsonl, with the value of its line (every number but "iteration", nested keys joined by '/', as
float32) and wall time = the file's first event's (the run's first start) + the line's "wall_time".
tensorboard's EventMultiplexer (what `tensorboard --logdir` uses) must show the same curves.

tensorboard must be installed (tools/install-deps.sh): a missing package fails this test.
Usage: tensorboard_check.py PATH/TO/rl2-cuda"""
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
from tensorboard.backend.event_processing import event_file_loader, event_multiplexer

BIN = None
MDP = ["--env", "mdp", "--states", "4", "--actions", "3", "--horizon", "3", "--episodes", "2", "--hidden", "16",
       "--steps-per-iter", "120", "--threads", "1"]
EVENT_FILE = "events.out.tfevents.rl2-cuda"


def run(*args):
    p = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise AssertionError(f"rl2-cuda {' '.join(args)}: exit {p.returncode}\n{p.stderr}")


def flatten(line, prefix=""):
    out = {}
    for key, value in line.items():
        tag = f"{prefix}/{key}" if prefix else key
        if isinstance(value, dict):
            out.update(flatten(value, tag))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and tag != "iteration":
            out[tag] = value
    return out


class EventFile(unittest.TestCase):
    def check(self, run_dir, start=None):
        """Compares the event file with metrics.jsonl; returns the events' {step: wall_time} and the start."""
        self.assertEqual([f for f in os.listdir(run_dir) if "tfevents" in f], [EVENT_FILE])
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            lines = [json.loads(l) for l in f]
        want = {l["iteration"]: flatten(l) for l in lines}
        events = list(event_file_loader.LegacyEventFileLoader(os.path.join(run_dir, EVENT_FILE)).Load())
        self.assertEqual(events[0].file_version, "brain.Event:2")
        if start is not None:
            self.assertEqual(events[0].wall_time, start, "the run's start changed")
        start = events[0].wall_time
        seen = collections.Counter()
        walls = {}
        for e in events[1:]:
            self.assertIn(e.step, want)
            line = next(l for l in lines if l["iteration"] == e.step)
            self.assertEqual(e.wall_time, start + line["wall_time"])
            walls[e.step] = e.wall_time
            for v in e.summary.value:
                seen[(v.tag, e.step)] += 1
                self.assertEqual(v.simple_value, np.float32(want[e.step][v.tag]), (v.tag, e.step))
        expected = {(tag, step) for step, values in want.items() for tag in values}
        self.assertEqual(set(seen), expected, "missing or extra points")
        self.assertEqual(max(seen.values()), 1, "a point is doubled")

        mux = event_multiplexer.EventMultiplexer().AddRunsFromDirectory(os.path.dirname(run_dir))
        mux.Reload()
        acc = mux.GetAccumulator(os.path.basename(run_dir))
        self.assertEqual(set(acc.Tags()["scalars"]), {tag for values in want.values() for tag in values})
        for tag in acc.Tags()["scalars"]:
            points = acc.Scalars(tag)
            self.assertEqual([p.step for p in points], sorted(want))
            self.assertEqual([p.value for p in points], [float(np.float32(want[s][tag])) for s in sorted(want)])
        return walls, start

    def test_resume_replays_without_losing_or_doubling(self):
        with tempfile.TemporaryDirectory() as d:
            run_dir = os.path.join(d, "runs", "mdp")
            run("train", *MDP, "--iterations", "2", "--out", run_dir)
            first, start = self.check(run_dir)
            self.assertEqual(sorted(first), [1, 2])
            shutil.copy(os.path.join(run_dir, "checkpoint.safetensors"), os.path.join(d, "checkpoint_2.safetensors"))

            run("train", "--resume", run_dir, "--iterations", "4")
            walls, _ = self.check(run_dir, start)
            self.assertEqual(sorted(walls), [1, 2, 3, 4])
            self.assertEqual({s: walls[s] for s in first}, first)  # kept points are rewritten bit for bit

            # Died after logging 3 and 4, before checkpointing them, in the middle of an append.
            shutil.copy(os.path.join(d, "checkpoint_2.safetensors"), os.path.join(run_dir, "checkpoint.safetensors"))
            path = os.path.join(run_dir, EVENT_FILE)
            os.truncate(path, os.path.getsize(path) - 7)
            run("train", "--resume", run_dir, "--iterations", "5")
            walls, _ = self.check(run_dir, start)
            self.assertEqual(sorted(walls), [1, 2, 3, 4, 5])
            self.assertEqual({s: walls[s] for s in first}, first)


if __name__ == "__main__":
    BIN = sys.argv[1]
    unittest.main(argv=sys.argv[:1], verbosity=2)
