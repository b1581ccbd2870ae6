#!/usr/bin/env python3
"""Prints the testbed fidelity table (Markdown) from bench/testbed/fidelity.sh's output: one row per sweep point,
ranked by PSNR over the chunks that differ from dense (backend, setting, measured density, recall, PSNR / SSIM
against dense over the differing chunks, over all frames and per chunk, whether the point's video still follows
its prompt), then the prompt-following rate of each backend that check-prompts ran.

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


def differing_means(row):
    """The headline numbers of a sweep point: means over the chunks that differ from dense (docs/metrics.md). CSVs
    written before those columns existed give the PSNR from their per-chunk column (an identical chunk there reads
    100.00, the cap) and no SSIM or latent rel-L2."""
    if row.get("differing_psnr") not in (None, ""):
        return (float(row["differing_psnr"]), float(row["differing_ssim"]), float(row["differing_latent_rel_l2"]),
                int(row["differing_chunks"]), int(row["chunks"]))
    chunks = row["chunk_psnr"].split(";")
    differing = [float(c) for c in chunks if c != "identical" and not c.startswith("100.00")]
    psnr = sum(differing) / len(differing) if differing else float("nan")
    return psnr, float("nan"), float("nan"), len(differing), len(chunks)


def number(value, digits):
    return "n/a" if value != value else f"{value:.{digits}f}"


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "bench/results/testbed-fidelity"
    rows = []
    for name in ORDER:
        path = os.path.join(out, name, "sweep.csv")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            rows += list(csv.DictReader(f))
    # Ranked by the PSNR over the chunks that differ from dense: a chunk identical to dense (chunk 0 under most
    # backends) would count as 100 dB and rank a backend by the chunk it did not sparsify.
    def rank_key(row):
        psnr = differing_means(row)[0]
        return -psnr if psnr == psnr else float("inf")  # a point with no number (NaN) last

    rows.sort(key=rank_key)
    print("| rank | backend | setting | density | recall | PSNR dB, differing chunks | SSIM, differing chunks | "
          "latent rel-L2, differing chunks | PSNR dB, all frames | per-chunk PSNR (chunks 0-6) | follows |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for rank, row in enumerate(rows, 1):
        setting = next(f"{k.split('.', 1)[1]}={v}" for k, v in row.items() if k.startswith("attention."))
        chunks = " / ".join("identical" if c.startswith("100.00") else c for c in row["chunk_psnr"].split(";"))
        psnr, ssim, latent, differing, total = differing_means(row)
        print(f"| {rank} | {row['backend']} | {setting} | {float(row['density']):.3f} | {float(row['recall']):.3f} | "
              f"{number(psnr, 2)} ({differing} of {total}) | {number(ssim, 3)} | {number(latent, 3)} | "
              f"{float(row['psnr']):.2f} | {chunks} | {row['follows_prompt']} (dense {row['dense_follows_prompt']}) |")
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
