#!/usr/bin/env python3
"""Reproduces the classical-baseline columns of the paper's Tables 1 (bandits) and 2 (tabular MDPs).

Runs `rl2-cuda baselines --policy all --format json` for every setting of the paper, then writes
docs/results/table1_baselines.md, docs/results/table2_baselines.md and the raw JSON beside them.
Each cell shows our mean ± standard error and the paper's number; bold marks the best mean of the row
and every policy not significantly worse (one-sided Welch t-test, p = 0.05), as the paper does; a cell
below 97% of the paper's number is flagged with '!'.

usage: tools/reproduce_baselines.py [--bin build/rl2-cuda] [--instances 1000] [--seed 1] [--out docs/results]
"""
import argparse
import json
import os
import subprocess
import sys
import time

BANDITS = [(n, k) for n in (10, 100, 500) for k in (5, 10, 50)]
MDPS = [10, 25, 50, 75, 100]
B_COLS = [("random", "Random"), ("gittins", "Gittins"), ("ts", "TS"), ("ots", "OTS"), ("ucb1", "UCB1"),
          ("eps-greedy", "ε-Greedy"), ("greedy", "Greedy")]
M_COLS = [("random", "Random"), ("psrl", "PSRL"), ("opsrl", "OPSRL"), ("ucrl2", "UCRL2"), ("beb", "BEB"),
          ("eps-greedy", "ε-Greedy"), ("greedy", "Greedy")]


def run(binary, args):
    t0 = time.time()
    p = subprocess.run([binary, "baselines", "--policy", "all", "--format", "json", *args],
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"reproduce_baselines: rl2-cuda {' '.join(args)} failed: {p.stderr.strip()}")
    out = json.loads(p.stdout)
    out["wall_seconds"] = time.time() - t0
    return out


def fmt_hyper(r):
    h = r.get("hyperparameter")
    if not h:
        return "-"
    variant = f" ({h['variant']})" if h.get("variant") else ""
    return f"{h['name']}={h['value']:g}{variant}"


def table(title, rows, cols, setting_header):
    lines = [f"## {title}", "",
             "| " + " | ".join(setting_header + [c for _, c in cols]) + " |",
             "|" + "---|" * (len(setting_header) + len(cols))]
    flags = []
    for setting, out in rows:
        by = {r["policy"]: r for r in out["results"]}
        cells = []
        for key, name in cols:
            r = by[key]
            digits = 2 if abs(r["mean"]) < 20 else 1  # n = 10 bandit totals need two decimals
            text = f"{r['mean']:.{digits}f} ± {r['stderr']:.{digits}f}"
            if r["not_worse_than_best"]:
                text = f"**{text}**"
            paper = r.get("paper")
            if paper is not None:
                text += f" ({paper:.1f})"
                if r["mean"] < 0.97 * paper:
                    text += " !"
                    flags.append(f"{'/'.join(setting)} {name}: {r['mean']:.2f} vs paper {paper:.1f} "
                                 f"({100 * r['mean'] / paper:.1f}%)")
            cells.append(text)
        lines.append("| " + " | ".join(list(setting) + cells) + " |")
    lines.append("")
    lines.append("Tuned hyperparameters (grid search on separate tuning instances):")
    lines.append("")
    lines.append("| " + " | ".join(setting_header + [c for _, c in cols]) + " |")
    lines.append("|" + "---|" * (len(setting_header) + len(cols)))
    for setting, out in rows:
        by = {r["policy"]: r for r in out["results"]}
        lines.append("| " + " | ".join(list(setting) + [fmt_hyper(by[k]) for k, _ in cols]) + " |")
    lines.append("")
    return lines, flags


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--bin", default=os.path.join("build", "rl2-cuda"))
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=os.path.join("docs", "results"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    common = ["--instances", str(a.instances), "--seed", str(a.seed)]
    t0 = time.time()
    bandit_rows, mdp_rows = [], []
    for n, k in BANDITS:
        out = run(a.bin, ["--env", "bandit", "--arms", str(k), "--episodes", str(n), *common])
        print(f"bandit n={n:3d} k={k:2d}: {out['wall_seconds']:6.1f} s", file=sys.stderr)
        bandit_rows.append(((str(n), str(k)), out))
    for n in MDPS:
        out = run(a.bin, ["--env", "mdp", "--episodes", str(n), *common])
        print(f"mdp    n={n:3d}:      {out['wall_seconds']:6.1f} s", file=sys.stderr)
        mdp_rows.append(((str(n),), out))
    total = time.time() - t0
    header = [f"Reproduced with `tools/reproduce_baselines.py --instances {a.instances} --seed {a.seed}` "
              f"({os.cpu_count()} CPU threads, {total / 60:.1f} min in all).",
              "Cells: our mean ± standard error over the evaluation instances (the paper's number). "
              "**Bold**: best mean of the row or not significantly worse (one-sided Welch t-test, p = 0.05). "
              "`!`: below 97% of the paper's number.", ""]
    for name, title, rows, cols, sh in [
            ("table1_baselines.md", "Table 1: Bernoulli bandits (total reward over n pulls)", bandit_rows, B_COLS,
             ["n", "k"]),
            ("table2_baselines.md", "Table 2: random tabular MDPs, S=10, A=5, T=10 (total reward over n episodes)",
             mdp_rows, M_COLS, ["n"])]:
        lines, flags = table(title, rows, cols, sh)
        lines += ["Cells below 97% of the paper: " + ("none." if not flags else "")] + [f"- {f}" for f in flags]
        if flags:
            lines += ["", "Why they differ: [../baselines.md](../baselines.md#where-we-differ-from-the-paper-and-why)."]
        with open(os.path.join(a.out, name), "w") as f:
            f.write("\n".join(header + lines) + "\n")
    with open(os.path.join(a.out, "baselines.json"), "w") as f:
        json.dump({"bandit": [o for _, o in bandit_rows], "mdp": [o for _, o in mdp_rows],
                   "seconds": total}, f, indent=1)
    print(f"reproduce_baselines: wrote {a.out}/table1_baselines.md, table2_baselines.md ({total / 60:.1f} min)",
          file=sys.stderr)


if __name__ == "__main__":
    main()
