#!/usr/bin/env python3
"""Prints the testbed fidelity table (Markdown) from bench/testbed/fidelity.sh's output: one row per sweep point
(backend, setting, measured density, recall, PSNR / SSIM against dense overall and per chunk, whether the point's
video still follows its prompt), then the prompt-following rate of each backend that check-prompts ran.

    python3 bench/testbed/fidelity_table.py [OUT_DIR]
"""

import csv
import json
import os
import sys

ORDER = ["lightforcing", "block-topk", "block-topp", "sliding-tile", "radial"]
# The check-prompts settings of fidelity.sh (its reports do not carry the overrides).
PROMPT_SETTINGS = {"dense": "", "lightforcing": "lightforcing-short, sparsity=0.8", "block-topk": "sparsity=0.8",
                   "block-topp": "top_p=0.7", "sliding-tile": "window_frames=0, window_blocks=2",
                   "radial": "radial_window_blocks=2",
                   # the other settings of each sweep (run by hand; fidelity.sh's `check` lines show the pattern)
                   "block-topp-p0.5": "top_p=0.5", "block-topp-p0.85": "top_p=0.85",
                   "sliding-tile-w1": "window_frames=0, window_blocks=1",
                   "sliding-tile-w3": "window_frames=0, window_blocks=3",
                   "radial-w1": "radial_window_blocks=1", "radial-w4": "radial_window_blocks=4"}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "bench/results/testbed-fidelity"
    print("| backend | setting | density | recall | PSNR dB | SSIM | latent rel-L2 | per-chunk PSNR (chunks 0-6) | follows |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in ORDER:
        path = os.path.join(out, name, "sweep.csv")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for row in csv.DictReader(f):
                setting = next(f"{k.split('.', 1)[1]}={v}" for k, v in row.items() if k.startswith("attention."))
                chunks = " / ".join(c.split(".")[0] if c.startswith("100") else c for c in row["chunk_psnr"].split(";"))
                print(f"| {row['backend']} | {setting} | {float(row['density']):.3f} | {float(row['recall']):.3f} | "
                      f"{float(row['psnr']):.2f} | {float(row['ssim']):.3f} | {float(row['latent_rel_l2']):.3f} | "
                      f"{chunks} | {row['follows_prompt']} (dense {row['dense_follows_prompt']}) |")
    print()
    print("| backend | setting | prompts followed (16 prompts, seed 0) | mean density |")
    print("|---|---|---|---|")
    names = ["dense"] + ORDER
    extra = sorted(f[len("prompts-"):-len(".json")] for f in os.listdir(out)
                   if f.startswith("prompts-") and ("-s0." in f or f[len("prompts-"):-len(".json")] in PROMPT_SETTINGS)
                   and f[len("prompts-"):-len(".json")] not in names)  # e.g. prompts-block-topk-s0.9.json

    def base_of(n):
        return next((b for b in sorted(names, key=len, reverse=True) if n == b or n.startswith(b + "-")), n)

    for name in sorted(names + extra, key=lambda n: (names.index(base_of(n)) if base_of(n) in names else 99, n)):
        path = os.path.join(out, f"prompts-{name}.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            report = json.load(f)
        seeds = report.get("seeds", 1)
        passed = sum(1 for r in report["runs"] if r["seed"] == 0 and r["follows"])
        total = sum(1 for r in report["runs"] if r["seed"] == 0)
        base, _, value = name.partition("-s0.")
        setting = PROMPT_SETTINGS.get(name, "") if not value else f"sparsity=0.{value}"
        if base == "lightforcing" and value:
            setting = "lightforcing-short, " + setting
        setting += "" if seeds == 1 else f"(seed 0 of a {seeds}-seed run)"
        print(f"| {report['backend']} | {setting} | {passed}/{total} | {report['mean_density']:.3f} |")


if __name__ == "__main__":
    main()
