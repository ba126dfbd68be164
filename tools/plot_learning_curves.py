#!/usr/bin/env python3
"""Plots RL² learning curves from run directories' metrics.jsonl (matplotlib).

Where the run's setting is in the paper, the mean trial return is normalised as the paper's figures:
Figure 2 (bandits): Gittins = 1, random = 0; Figure 3 (MDPs): OPSRL = 1, random = 0, using the paper's
numbers from src/data/paper/*.csv. Otherwise the raw mean return is plotted.

usage: tools/plot_learning_curves.py RUN_DIR [RUN_DIR ...] [--out curves.png] [--x iteration|env_steps|wall_time]
"""
import argparse
import csv
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PAPER = os.path.join(HERE, "..", "src", "data", "paper")


def paper_rows(name):
    with open(os.path.join(PAPER, name)) as f:
        return list(csv.DictReader(l for l in f if not l.startswith("#")))


def normaliser(cfg):
    """(zero, one, label) for the run's setting, or None when the paper has no such cell."""
    if cfg["env"] == "bandit":
        for r in paper_rows("table1_bandits.csv"):
            if int(r["n"]) == cfg["episodes"] and int(r["k"]) == cfg["arms"]:
                return float(r["Random"]), float(r["Gittins"]), "Gittins = 1, random = 0"
    elif cfg["env"] == "mdp" and (cfg["states"], cfg["actions"], cfg["horizon"]) == (10, 5, 10):
        for r in paper_rows("table2_mdps.csv"):
            if int(r["n"]) == cfg["episodes"]:
                return float(r["Random"]), float(r["OPSRL"]), "OPSRL = 1, random = 0"
    return None


def main():
    ap = argparse.ArgumentParser(description="Plot RL² learning curves from metrics.jsonl.")
    ap.add_argument("runs", nargs="+", help="run directories (each with run.json and metrics.jsonl)")
    ap.add_argument("--out", default="curves.png")
    ap.add_argument("--x", default="iteration", choices=["iteration", "env_steps", "wall_time"])
    a = ap.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_learning_curves: needs matplotlib (python3 -m pip install matplotlib)")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    labels = set()
    for run in a.runs:
        try:
            with open(os.path.join(run, "run.json")) as f:
                cfg = json.load(f)
            with open(os.path.join(run, "metrics.jsonl")) as f:
                rows = [json.loads(l) for l in f if l.strip()]
        except (OSError, json.JSONDecodeError) as e:
            sys.exit(f"plot_learning_curves: {run}: {e}")
        xs = [r[a.x] for r in rows]
        ys = [r["mean_return"] for r in rows]
        norm = normaliser(cfg)
        if norm:
            zero, one, label = norm
            ys = [(y - zero) / (one - zero) for y in ys]
            labels.add(f"normalised: {label}")
        else:
            labels.add("mean trial return")
        setting = f"k={cfg['arms']}" if cfg["env"] == "bandit" else f"S={cfg['states']}"
        ax.plot(xs, ys, label=f"{cfg['env']} {setting} n={cfg['episodes']} ({os.path.basename(run.rstrip('/'))})")
    if any(l.startswith("normalised") for l in labels):
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.axhline(0.0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel(a.x.replace("_", " "))
    ax.set_ylabel("; ".join(sorted(labels)))
    ax.legend(fontsize=8)
    ax.set_title("RL² learning curves")
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print(f"plot_learning_curves: wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
