#!/usr/bin/env python3
"""Plots RL² learning curves from run directories' metrics.jsonl (matplotlib).

Where the run's setting is in the paper, the mean trial return is normalised as the paper's figures:
Figure 2 (bandits): Gittins = 1, random = 0; Figure 3 (MDPs): OPSRL = 1, random = 0, using the paper's
numbers from src/data/paper/*.csv. Otherwise the raw mean return is plotted.

With --evals (JSON files of `rl2-cuda eval --format json` on checkpoints taken during a maze run), the
figure has three panels: the batch return, the policy's entropy, and the held-out success % of episodes 1
and 2 (the small setting, or a ladder rung's own) at each evaluated checkpoint's iteration.

Runs trained with `--eval-every K` (as `rl2-cuda reproduce` does) also carry the held-out mean total reward
every K iterations (heldout_mean): drawn as markers on a dashed line beside the batch return, normalised
the same way.

usage: tools/plot_learning_curves.py RUN_DIR [RUN_DIR ...] [--out curves.png] [--x iteration|env_steps|wall_time]
                                     [--evals EVAL.json ...]
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
    ap.add_argument("--evals", nargs="*", default=[], help="maze: eval JSON files of checkpoints of the run")
    a = ap.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_learning_curves: needs matplotlib (python3 -m pip install matplotlib)")
    evals = []
    for path in a.evals:
        try:
            with open(path) as f:
                e = json.load(f)
            t = e["table3"].get("small") or e["table3"]["trained"]
            evals.append((e["iteration"], [p["success_pct"] for p in t["per_episode"][:2]], t["instances"]))
        except (OSError, KeyError, json.JSONDecodeError) as err:
            sys.exit(f"plot_learning_curves: {path}: not a maze eval JSON ({err})")
    evals.sort()
    if evals:
        fig, (ax, ax_ent, ax_succ) = plt.subplots(3, 1, figsize=(7, 9), sharex=True)
    else:
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
        setting = (f"k={cfg['arms']}" if cfg["env"] == "bandit" else f"S={cfg['states']}" if cfg["env"] == "mdp"
                   else f"{cfg.get('layout', 'prim')} {cfg['size']}x{cfg['size']}")
        label = (f"{cfg['env']} {setting} n={cfg['episodes']}, {cfg.get('algo', 'trpo').upper()} GRU-{cfg['hidden']} "
                 f"({os.path.basename(run.rstrip('/'))})")
        held = [r for r in rows if "heldout_mean" in r]
        line, = ax.plot(xs, ys, label=label + " batch", alpha=0.35 if held else 1.0, lw=0.8 if held else 1.5)
        if held:
            hy = [r["heldout_mean"] for r in held]
            if norm:
                hy = [(y - zero) / (one - zero) for y in hy]
            ax.plot([r[a.x] for r in held], hy, ls="--", marker="o", ms=3, color=line.get_color(), zorder=3,
                    markeredgecolor="black", markeredgewidth=0.4,
                    label=f"{label} held-out ({held[-1]['heldout_instances']} instances)")
        if evals:
            ax_ent.plot(xs, [r["entropy"] for r in rows], label=label)
    if any(l.startswith("normalised") for l in labels):
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.axhline(0.0, color="grey", lw=0.8, ls=":")
    ax.set_ylabel("; ".join(sorted(labels)))
    ax.legend(fontsize=8)
    ax.set_title("RL² learning curves")
    bottom = ax
    if evals:
        if a.x != "iteration":
            sys.exit("plot_learning_curves: --evals needs --x iteration")
        ax_ent.set_ylabel("policy entropy (nats)")
        for k, name in enumerate(["episode 1", "episode 2"]):
            ax_succ.plot([e[0] for e in evals], [e[1][k] for e in evals], marker="o", label=name)
        ax_succ.set_ylabel(f"held-out success % ({evals[-1][2]} mazes)")
        ax_succ.set_ylim(0, 100)
        ax_succ.legend(fontsize=8)
        bottom = ax_succ
    bottom.set_xlabel(a.x.replace("_", " "))
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print(f"plot_learning_curves: wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
