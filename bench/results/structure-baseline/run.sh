#!/usr/bin/env bash
# 2026-12-07: baseline of main before the attention restructure (issue 16), on the commit named in commit.txt:
# every GPU test, then `lightforce bench` at 480x832 dense and lightforcing-hopper (3 rounds each, alternating;
# latents_sha256 in each row is the same-bytes reference), then the pending run 14 of issue 4/20 (lab_sparse trace,
# check, Hopper-default bench rows, shared-rows rows). Carry build-gpu/carry; results under $OUT.
set -uo pipefail
C=${C:-build-gpu/c15}
W=/tmp/baseline && mkdir -p $W
save() { tar czf $OUT/run.tgz -C $W . 2>/dev/null; }  # $OUT takes 8 files: one archive, refreshed as sections finish
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
R=$W/run14; mkdir -p $R
timeout 60 $C/lab_sparse --trace > $R/trace.txt 2>&1; echo "trace rc=$?"
timeout 100 $C/lab_sparse --check-only > $R/check.txt 2>&1; echo "check rc=$?"; grep -E "correctness|FAIL" $R/check.txt | head
timeout 200 $C/lab_sparse --bench-only --quick --hopper-default --no-planner --json $R/lab-quick.json > $R/lab-quick.txt 2>&1; echo "bench rc=$?"; grep -E "dense hopper|hopper q128 k128" $R/lab-quick.txt | head -20
timeout 120 $C/lab_sparse --bench-only --quick --hopper-default --no-planner --shared-rows --json $R/lab-shared.json > $R/lab-shared.txt 2>&1; echo "shared rc=$?"; grep -E "hopper q128 k128" $R/lab-shared.txt | head -8
save; echo done
