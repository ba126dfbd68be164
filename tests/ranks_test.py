#!/usr/bin/env python3
"""Scale-out over MPI ranks (docs/scaling.md), on the CPU: `mpirun -np R rl2-cuda train` for R = 1, 2, 3
gives byte-identical metrics.jsonl (wall times aside) and checkpoints to one process; a run resumes under
another R with the same bytes; eval and baselines over ranks print one process's result; and the fault cases (settings
that differ between ranks, a rank killed mid-run, MPI not joining the launcher's processes, more ranks than
chunks) end every rank with a non-zero status, one line from rank 0, and the last checkpoint intact.

Usage: ranks_test.py RL2_CUDA MPIRUN. Runs oversubscribed (two cores) and as root where CI is root."""
import json, os, pathlib, signal, subprocess, sys, tempfile, time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tools"))
import compare_runs  # noqa: E402

BIN, MPIRUN = sys.argv[1], sys.argv[2]
LAUNCH = [MPIRUN, "--oversubscribe", "--bind-to", "none", "-x", "OMP_NUM_THREADS=1"]
if os.geteuid() == 0:
    LAUNCH.insert(1, "--allow-run-as-root")
failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        failures.append(what)


def run(np, args, timeout=120):
    cmd = ([BIN] if np == 0 else LAUNCH + ["-np", str(np), BIN]) + args
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def same_run(a, b):
    """Metrics (wall times aside) and checkpoint tensors and metadata (elapsed aside) of two run dirs."""
    ma, mb = compare_runs.metrics(a / "metrics.jsonl"), compare_runs.metrics(b / "metrics.jsonl")
    return ma == mb and len(ma) > 0 and compare_runs.checkpoint(a / "checkpoint.safetensors") == \
        compare_runs.checkpoint(b / "checkpoint.safetensors")


def error_lines(stderr):
    return [l for l in stderr.splitlines() if l.startswith("rl2-cuda:")]


RUNS = {
    "bandit_trpo": ["--env", "bandit", "--hidden", "24", "--iterations", "3", "--steps-per-iter", "2400"],
    "mdp_ppo": ["--env", "mdp", "--hidden", "16", "--algo", "ppo", "--iterations", "2", "--steps-per-iter", "6000",
                "--ppo-epochs", "2", "--ppo-minibatches", "4"],
    "mdp_trpo_subsample": ["--env", "mdp", "--hidden", "16", "--iterations", "2", "--steps-per-iter", "6000",
                           "--fvp-subsample", "0.3"],
    # 12 trials of 500 steps in 3 chunks of 4; PPO's minibatches leave some ranks without a trial.
    "maze_ppo": ["--env", "maze", "--mazes", "20", "--hidden", "16", "--iterations", "2", "--steps-per-iter", "6000"],
}

with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    # 1. The same bytes for R = 1 (no launcher), 1, 2 and 3 (mpirun).
    for name, args in RUNS.items():
        ref = tmp / f"{name}_plain"
        r = run(0, ["train", "--threads", "1", "--out", str(ref)] + args)
        check(r.returncode == 0, f"{name}: one process trains" + ("" if r.returncode == 0 else r.stderr[-300:]))
        for np in (1, 2, 3):
            d = tmp / f"{name}_np{np}"
            r = run(np, ["train", "--threads", "1", "--out", str(d)] + args)
            check(r.returncode == 0 and same_run(ref, d), f"{name}: mpirun -np {np} gives one process's bytes")
            if np == 2:
                check(r.stdout.count("trained %s iterations" % args[args.index("--iterations") + 1]) == 1,
                      f"{name}: rank 0 alone prints")

    # 2. Resume under another rank count: 2 iterations on 2 ranks, then to 4 on 3 ranks = 4 in one process.
    args = ["--env", "bandit", "--hidden", "24", "--steps-per-iter", "2400"]
    ref, d = tmp / "resume_ref", tmp / "resume"
    run(0, ["train", "--threads", "1", "--out", str(ref), "--iterations", "4"] + args)
    r1 = run(2, ["train", "--threads", "1", "--out", str(d), "--iterations", "2"] + args)
    r2 = run(3, ["train", "--threads", "1", "--resume", str(d), "--iterations", "4"])
    check(r1.returncode == 0 and r2.returncode == 0 and same_run(ref, d),
          "resume: 2 iterations on 2 ranks, then 2 more on 3, equal 4 in one process")

    # 3. eval over ranks prints one process's result.
    e1 = run(0, ["eval", "--checkpoint", str(ref), "--instances", "700", "--format", "json"])
    e3 = run(3, ["eval", "--checkpoint", str(ref), "--instances", "700", "--format", "json"])
    strip = lambda out: {k: v for k, v in json.loads(out).items() if k != "provenance"}
    check(e1.returncode == 0 and e3.returncode == 0 and e3.stdout.count("\n") == 1 and
          strip(e1.stdout) == strip(e3.stdout), "eval: 3 ranks share 700 instances and print one process's JSON")

    # ... and so does baselines (tuning and evaluation instances shared): the same JSON but wall times.
    def strip_walls(j):
        if isinstance(j, dict):
            return {k: strip_walls(v) for k, v in j.items() if k not in ("provenance", "seconds")}
        return [strip_walls(v) for v in j] if isinstance(j, list) else j
    base = ["baselines", "--env", "bandit", "--policy", "ucb1", "--instances", "300", "--tune-instances", "200",
            "--format", "json"]
    b1, b3 = run(0, base), run(3, base)
    check(b1.returncode == 0 and b3.returncode == 0 and b3.stdout.count("\n") == 1 and
          strip_walls(json.loads(b1.stdout)) == strip_walls(json.loads(b3.stdout)),
          "baselines: 3 ranks share the tuning and evaluation instances and print one process's JSON")

    # bench --ranks: the scaling table (strong and weak rows per R, projected GPU rows) as JSON.
    r = run(0, ["bench", "--ranks", "1,2", "--env", "bandit", "--arms", "3", "--rank-steps", "640",
                "--train-iterations", "1", "--format", "json"], timeout=300)
    rows = json.loads(r.stdout)["rows"] if r.returncode == 0 else []
    check(len(rows) == 4 and all(x["env_steps_per_s"] > 0 for x in rows) and rows[0]["efficiency"] == 1.0 and
          json.loads(r.stdout)["arms"] == 3 and len(json.loads(r.stdout)["projected"]) == 2,
          "bench --ranks 1,2: strong and weak rows for each R, and the projected GPU rows")
    r = run(0, ["bench", "--ranks", "0"])
    check(r.returncode == 2 and len(error_lines(r.stderr)) == 1, "bench --ranks 0: one line, status 2")

    # 4. Faults.
    # Settings that differ between ranks (MPMD launch): one line from rank 0, status 2 everywhere, no run dir.
    d = tmp / "differ"
    base = ["train", "--threads", "1", "--out", str(d), "--iterations", "1", "--steps-per-iter", "2400"]
    cmd = LAUNCH + ["-np", "1", BIN] + base + ["--hidden", "24", ":", "-np", "1", BIN] + base + ["--hidden", "16"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    lines = error_lines(r.stderr)
    check(r.returncode == 2 and len(lines) == 1 and "different training settings" in lines[0] and "hidden" in lines[0]
          and not (d / "checkpoint.safetensors").exists(),
          f"fault: settings differ between ranks -> one line, status 2 ({lines})")

    # More ranks than chunks of trials: one line, status 2.
    r = run(3, ["train", "--out", str(tmp / "small"), "--env", "mdp", "--iterations", "1", "--steps-per-iter", "3000"])
    lines = error_lines(r.stderr)
    check(r.returncode == 2 and len(lines) == 1 and "chunks of trials" in lines[0],
          f"fault: more ranks than chunks -> one line, status 2 ({lines})")

    # MPI not joining the launcher's processes (faked: the launcher's variables without a launcher).
    env = dict(os.environ, OMPI_COMM_WORLD_SIZE="2", OMPI_COMM_WORLD_RANK="0")
    r = subprocess.run([BIN, "train", "--out", str(tmp / "nompi"), "--iterations", "1", "--steps-per-iter", "1000"],
                       capture_output=True, text=True, timeout=60, env=env)
    lines = error_lines(r.stderr)
    check(r.returncode == 2 and len(lines) == 1 and "MPI did not start" in lines[0] and
          not (tmp / "nompi").exists(), f"fault: MPI start-up failure -> one line, status 2 ({lines})")

    # A rank killed mid-run: every rank ends non-zero, and the last checkpoint loads and resumes.
    d = tmp / "killed"
    cmd = LAUNCH + ["-np", "2", BIN, "train", "--threads", "1", "--out", str(d), "--env", "bandit", "--hidden", "24",
                    "--iterations", "400", "--steps-per-iter", "2400"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not (d / "checkpoint.safetensors").exists() and time.time() - t0 < 60 and p.poll() is None:
        time.sleep(0.1)
    time.sleep(0.5)
    victims = []
    for proc in pathlib.Path("/proc").iterdir():
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            if b"OMPI_COMM_WORLD_RANK=1" in environ and str(d).encode() in (proc / "cmdline").read_bytes():
                victims.append(int(proc.name))
        except (OSError, ValueError):
            continue
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    try:
        _, err = p.communicate(timeout=60)
        ended = True
    except subprocess.TimeoutExpired:
        p.kill()
        err, ended = "", False
    check(len(victims) == 1 and ended and p.returncode != 0, f"fault: rank 1 killed -> the job ends non-zero "
          f"(victims {victims}, status {p.returncode})")
    r = run(0, ["eval", "--checkpoint", str(d), "--instances", "10", "--format", "json"])
    r2 = run(0, ["train", "--threads", "1", "--resume", str(d), "--iterations",
                 str(json.loads(r.stdout)["iteration"] + 1 if r.returncode == 0 else 1)])
    check(r.returncode == 0 and r2.returncode == 0, "fault: the killed run's last checkpoint evaluates and resumes")

print(f"{len(failures)} failure(s)" if failures else "all rank checks passed")
sys.exit(1 if failures else 0)
