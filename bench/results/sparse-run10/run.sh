#!/usr/bin/env bash
# Issue 4, run 10 (2026-12-06): run 9 repeated with four pairs, for a tighter estimate of the planner's whole cost in DiT time. lightforcing-hopper as shipped, alternating
# with LF_SPARSE_SKIP_PLANNER=1 (measurement only: every call reuses the last planned mask of its shape, so only
# one call per chunk shape plans; masks wrong, densities the same), four times each, and dense once; one session.
set -uo pipefail
C=${C:-build-gpu/c9}
W=/tmp/run10 && rm -rf $W && mkdir -p $W
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee $W/device.txt
for i in 1 2 3 4; do
  timeout 80 $C/lightforce bench --sizes 480x832 --attention lightforcing-hopper --out $W/e2e-hopper-$i.json -q; echo "rc=$?"
  LF_SPARSE_SKIP_PLANNER=1 timeout 80 $C/lightforce bench --sizes 480x832 --attention lightforcing-hopper --out $W/e2e-hopper-skip-$i.json -q; echo "rc=$?"
done
timeout 80 $C/lightforce bench --sizes 480x832 --out $W/e2e-dense.json -q; echo "rc=$?"
for f in $W/e2e-*.json; do python3 -c "
import json,sys; d=json.load(open(sys.argv[1])); r=d['rows'][0]
print(sys.argv[1].split('/')[-1], 'dit', round(r['dense_dit_seconds'],4), {k: round(v,2) for k,v in r['op_class_ms'].items()})" $f; done
tar czf /tmp/run10.tgz -C $W . && cp /tmp/run10.tgz $OUT/run10.tgz
