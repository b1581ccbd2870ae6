#!/usr/bin/env bash
# Issue 4, run 7 (2026-12-06): run 6's build plus batched key loads in the fused score + select launch and the
# pooled keys of a chunk's refresh pass carried to the next chunk (fixed per-head stride in the layer cache).
# GPU tests (all of test_gpu_sparse and test_gpu_model, incl. fused-vs-plain RoPE pooling bytes), the lab planner
# breakdown, e2e lightforcing-hopper with everything on (fused), without the RoPE pooling (norope), and dense.
set -uo pipefail
C=${C:-build-gpu/c7}
export LF_TEST_TMP=/tmp
W=/tmp/run7 && rm -rf $W && mkdir -p $W
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee $W/device.txt
stamp test_gpu_sparse
timeout 120 $C/test_gpu_sparse > $W/test-gpu-sparse.log 2>&1; echo "rc=$?"; grep -E "ERROR|FAILED|test cases" $W/test-gpu-sparse.log | head -20
stamp test_gpu_attention
timeout 60 $C/test_gpu_attention > $W/test-gpu-attention.log 2>&1; echo "rc=$?"; grep -E "ERROR|FAILED|test cases" $W/test-gpu-attention.log | head
stamp "test_gpu_model sparse"
timeout 150 $C/test_gpu_model > $W/test-gpu-model-sparse.log 2>&1; echo "rc=$?"; grep -E "ERROR|FAILED|test cases" $W/test-gpu-model-sparse.log | head
stamp "lab_sparse --planner-only"
timeout 150 $C/lab_sparse --planner-only --json $W/planner.json > $W/planner.txt 2>&1; echo "rc=$?"
tail -50 $W/planner.txt
for a in fused norope dense; do
  stamp "bench $a"
  case $a in
    fused) timeout 80 $C/lightforce bench --sizes 480x832 --attention lightforcing-hopper --out $W/e2e-hopper-fused.json -q ;;
    norope) timeout 80 $C/lightforce bench --sizes 480x832 --attention lightforcing-hopper --set attention.fused_rope_pooling=false --out $W/e2e-hopper-norope.json -q ;;
    unfused) LF_SPARSE_FUSED=0 timeout 80 $C/lightforce bench --sizes 480x832 --attention lightforcing-hopper --set attention.fused_rope_pooling=false --out $W/e2e-hopper-unfused.json -q ;;
    dense) timeout 80 $C/lightforce bench --sizes 480x832 --out $W/e2e-dense.json -q ;;
  esac
  echo "rc=$?"
done
for f in $W/e2e-*.json; do python3 -c "
import json,sys; d=json.load(open(sys.argv[1])); r=d['rows'][0]
print(sys.argv[1].split('/')[-1], 'dit', round(r['dense_dit_seconds'],4), {k: round(v,2) for k,v in r['op_class_ms'].items()})" $f; done
stamp done
# Few files come back: one archive, written outside $OUT first.
tar czf /tmp/run7.tgz -C $W . && cp /tmp/run7.tgz $OUT/run7.tgz && ls -la $OUT
