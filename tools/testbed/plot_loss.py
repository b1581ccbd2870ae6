#!/usr/bin/env python3
"""Draws docs/testbed/loss.png from docs/testbed/loss.csv (run, global_step, loss): the testbed's training loss over
its three runs. Needs matplotlib (Debian: python3-matplotlib; the GPU machine has it too).

    python3 tools/testbed/plot_loss.py
"""

import csv
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DOCS = os.path.join(HERE, "..", "..", "docs", "testbed")
LABELS = {1: "run 1 (from scratch)", 2: "run 2 (continued, sigma shift 2)",
          3: "run 3 (continued, context corruption)"}


def main():
    runs = {}
    with open(os.path.join(DOCS, "loss.csv")) as f:
        for row in csv.DictReader(f):
            runs.setdefault(int(row["run"]), []).append((int(row["global_step"]), float(row["loss"])))
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for run, points in sorted(runs.items()):
        ax.plot([p[0] for p in points], [p[1] for p in points], label=LABELS.get(run, f"run {run}"))
    ax.set_yscale("log")
    ax.set_xlabel("training step (batch 32 clips of 21 frames)")
    ax.set_ylabel("flow-matching MSE")
    ax.set_title("testbed training loss, three runs on one H200 (16.3 min)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(DOCS, "loss.png"), dpi=110)


if __name__ == "__main__":
    main()
