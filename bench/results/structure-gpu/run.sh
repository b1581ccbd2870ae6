#!/usr/bin/env bash
# 2026-12-07: issue 16 items 1-6 and 8 on branch attn (one block geometry, one backend registry, block-sparse
# attention as an op, shared types at the bottom, speed switches in one struct, kernels/ as a leaf, docs and
# file splits). Behaviour must not change; this is bench/results/structure-baseline/run.sh's measurement on the
# restructured tree, so the two compare section by section:
#   1. every test_gpu_* binary must pass (test_gpu_sparse is now three: test_gpu_sparse, test_gpu_sparse_planner,
#      test_gpu_sparse_paths; test_gpu_sparse gained the op-vs-CPU-reference case);
#   2. `lightforce bench` 480x832 dense and lightforcing-hopper, 3 rounds alternating: latents_sha256 of every
#      row must equal the baseline's (same bytes), median DiT seconds within noise of it;
#   3. lab_sparse --check-only (the split lab still checks every combination).
# Carry build-gpu/carry (scripts/build-gpu.sh on branch attn); results under $OUT as one archive.
set -uo pipefail
C=${C:-build-gpu/carry}
W=/tmp/structure && mkdir -p $W
save() { tar czf $OUT/run.tgz -C $W . 2>/dev/null; }
export LF_TEST_TMP=/tmp
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee $W/device.txt
for t in $C/test_gpu_*; do
  n=$(basename $t); timeout 200 $t > $W/$n.log 2>&1; echo "$n rc=$?"; grep -E "ERROR|FAILED|test cases" $W/$n.log | head -5
done
save
for i in 1 2 3; do
  for a in dense lightforcing-hopper; do
    timeout 90 $C/lightforce bench --sizes 480x832 --attention $a -q --out $W/e2e-$a-$i.json; echo "bench $a $i rc=$?"
  done
done
python3 - $W <<'PY'
import json, glob, sys, statistics
rows = {}
for f in sorted(glob.glob(sys.argv[1] + "/e2e-*.json")):
    d = json.load(open(f)); r = d["rows"][0]
    rows.setdefault(d["attention"], []).append((r["dense_dit_seconds"], r["latents_sha256"][:16], r["peak_gpu_bytes"]))
for a, v in rows.items():
    print(a, "median DiT s", round(statistics.median(x[0] for x in v), 4), "all", [round(x[0], 4) for x in v],
          "sha", sorted(set(x[1] for x in v)), "peak GiB", round(v[0][2] / 2**30, 2))
PY
save
timeout 100 $C/lab_sparse --check-only > $W/lab-check.txt 2>&1; echo "lab_sparse check rc=$?"
grep -E "correctness|FAIL" $W/lab-check.txt | head
save; echo done
