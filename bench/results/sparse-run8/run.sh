#!/usr/bin/env bash
# Issue 4, run 8 (2026-12-06): rows per CTA of the fused score + select launch (LF_SPARSE_FUSED_ROWS 2 / 4 / 8):
# test_gpu_sparse at each (masks equal the old paths bit for bit), the lab planner breakdown at each, e2e
# lightforcing-hopper at each and dense, in this one session. Binaries: run 7's plus the rows switch.
set -uo pipefail
C=${C:-build-gpu/c8}
export LF_TEST_TMP=/tmp
W=/tmp/run8 && rm -rf $W && mkdir -p $W
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee $W/device.txt
for rows in 2 4 8; do
  stamp "test_gpu_sparse rows $rows"
  LF_SPARSE_FUSED_ROWS=$rows timeout 60 $C/test_gpu_sparse > $W/test-gpu-sparse-rows$rows.log 2>&1; echo "rc=$?"; grep -E "ERROR|FAILED|test cases" $W/test-gpu-sparse-rows$rows.log | head -5
  stamp "lab rows $rows"
  LF_SPARSE_FUSED_ROWS=$rows timeout 60 $C/lab_sparse --planner-only --json $W/planner-rows$rows.json > $W/planner-rows$rows.txt 2>&1; echo "rc=$?"
  grep -E " fused " $W/planner-rows$rows.txt | grep -E "topk|hsa"
done
for rows in 2 4 8; do
  stamp "bench rows $rows"
  LF_SPARSE_FUSED_ROWS=$rows timeout 80 $C/lightforce bench --sizes 480x832 --attention lightforcing-hopper --out $W/e2e-hopper-rows$rows.json -q; echo "rc=$?"
done
stamp "bench dense"
timeout 80 $C/lightforce bench --sizes 480x832 --out $W/e2e-dense.json -q; echo "rc=$?"
for f in $W/e2e-*.json; do python3 -c "
import json,sys; d=json.load(open(sys.argv[1])); r=d['rows'][0]
print(sys.argv[1].split('/')[-1], 'dit', round(r['dense_dit_seconds'],4), {k: round(v,2) for k,v in r['op_class_ms'].items()})" $f; done
stamp done
tar czf /tmp/run8.tgz -C $W . && cp /tmp/run8.tgz $OUT/run8.tgz
