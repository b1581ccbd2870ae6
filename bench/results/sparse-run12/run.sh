#!/usr/bin/env bash
# Issue 4, run 12 (2026-12-06): the planner on a second stream beside the KV-cache write
# (attention.plan_beside_cache_write, default true). GPU tests, then three rounds of lightforcing-hopper e2e:
#   beside   - as shipped (planner on the side stream while k/v are copied into the cache)
#   one      - plan_beside_cache_write=false (one stream, as runs 9-10)
#   none     - LF_SPARSE_SKIP_PLANNER=1 and fused_rope_pooling=false: no planner launches and no pooling in the
#              RoPE pass (measurement only: masks reused by shape), i.e. the run without any planner cost
# and dense once; one session, same binary.
set -uo pipefail
C=${C:-build-gpu/c12}
W=/tmp/run12 && rm -rf $W && mkdir -p $W
export LF_TEST_TMP=/tmp
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee $W/device.txt
timeout 200 $C/test_gpu_model > $W/test-gpu-model.log 2>&1; echo "test_gpu_model rc=$?"; grep -E "ERROR|FAILED|test cases" $W/test-gpu-model.log | head
timeout 100 $C/test_gpu_sparse > $W/test-gpu-sparse.log 2>&1; echo "test_gpu_sparse rc=$?"; grep -E "ERROR|FAILED|test cases" $W/test-gpu-sparse.log | head
B="$C/lightforce bench --sizes 480x832 --attention lightforcing-hopper -q"
for i in 1 2 3; do
  timeout 80 $B --out $W/e2e-beside-$i.json; echo "rc=$?"
  timeout 80 $B --set attention.plan_beside_cache_write=false --out $W/e2e-one-$i.json; echo "rc=$?"
  LF_SPARSE_SKIP_PLANNER=1 timeout 80 $B --set attention.fused_rope_pooling=false --out $W/e2e-none-$i.json; echo "rc=$?"
done
timeout 80 $C/lightforce bench --sizes 480x832 --out $W/e2e-dense.json -q; echo "rc=$?"
for f in $W/e2e-*.json; do python3 -c "
import json,sys; d=json.load(open(sys.argv[1])); r=d['rows'][0]
print(sys.argv[1].split('/')[-1], 'dit', round(r['dense_dit_seconds'],4), {k: round(v,2) for k,v in r['op_class_ms'].items()})" $f; done
tar czf /tmp/run12.tgz -C $W . && cp /tmp/run12.tgz $OUT/run12.tgz
