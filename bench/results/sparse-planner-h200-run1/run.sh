#!/usr/bin/env bash
# One H200 session for issue 4's planner work (commit afbdd44): tests, e2e benches, lab, stats path, model test.
set -uo pipefail
C=build-gpu/carry
export LF_TEST_TMP=/tmp
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
stamp "test_gpu_sparse"
timeout 45 $C/test_gpu_sparse > $OUT/test-gpu-sparse.log 2>&1; echo "rc=$?"; tail -4 $OUT/test-gpu-sparse.log
stamp "bench lightforcing-hopper"
timeout 75 $C/lightforce bench --sizes 480x832 --attention lightforcing-hopper --out $OUT/e2e-lightforcing-hopper-h200.json -q; echo "rc=$?"
stamp "bench dense"
timeout 75 $C/lightforce bench --sizes 480x832 --out $OUT/e2e-dense-h200.json -q; echo "rc=$?"
for f in $OUT/e2e-*.json; do python3 -c "
import json,sys; d=json.load(open(sys.argv[1])); r=d['rows'][0]
print(sys.argv[1].split('/')[-1], 'dit', round(r['dense_dit_seconds'],4), {k: round(v,2) for k,v in r['op_class_ms'].items()})" $f; done
stamp "lab_sparse"
timeout 90 $C/lab_sparse --reps 10 --json $OUT/lab-sparse.json --commit afbdd44 > $OUT/lab-sparse.txt 2>&1; echo "rc=$?"
grep -E "planner block|correctness|FAIL|HANG" $OUT/lab-sparse.txt
stamp "profile-sparsity tiny"
timeout 30 $C/lightforce profile-sparsity -m tiny --prompt "a red circle moves right" --device cuda --attention lightforcing-hopper --recall-row-stride 4 --out-dir /tmp/prof -q; echo "rc=$?"
cp /tmp/prof/sparsity.json $OUT/profile-sparsity-tiny-cuda.json 2>/dev/null
python3 -c "
import json; d=json.load(open('/tmp/prof/sparsity.json'))
for c in d['chunks']: print(c)" 2>&1 | head -8
stamp "test_gpu_model sparse"
timeout 45 $C/test_gpu_model -tc='sparse backends*' > $OUT/test-gpu-model-sparse.log 2>&1; echo "rc=$?"
grep -E "rel-L2|Status|test cases" $OUT/test-gpu-model-sparse.log
stamp done
