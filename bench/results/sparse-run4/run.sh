#!/usr/bin/env bash
# Issue 4, run 4 (2026-12-05): queued kernel timing, the new GPU planner (breakdown), e2e dense vs hopper.
# shared memory. Tests, lab (grid vs persistent vs persistent+packed, dense grid vs persistent), e2e dense vs hopper.
set -uo pipefail
C=${C:-build-gpu/c4}
export LF_TEST_TMP=/tmp
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee $OUT/device.txt
stamp "test_gpu_sparse"
timeout 90 $C/test_gpu_sparse > $OUT/test-gpu-sparse.log 2>&1; echo "rc=$?"; grep -E "ERROR|FAILED|test cases" $OUT/test-gpu-sparse.log | head -20
stamp "test_gpu_attention"
timeout 60 $C/test_gpu_attention > $OUT/test-gpu-attention.log 2>&1; echo "rc=$?"; tail -3 $OUT/test-gpu-attention.log
stamp "lab_sparse"
timeout 200 $C/lab_sparse --reps 10 --json $OUT/lab-sparse.json ${LAB_ARGS:-} > $OUT/lab-sparse.txt 2>&1; echo "rc=$?"
grep -E "correctness|FAIL|HANG|persistent launch|dense " $OUT/lab-sparse.txt | head -40
grep -E "hopper q128 k128   persistent\+packed|hopper q128 k128   grid" $OUT/lab-sparse.txt | grep -E "lk  4680|lk 18720|lk 32760" | head -40
grep -iE "planner|breakdown" $OUT/lab-sparse.txt | tail -40
stamp "lab_sparse --planner-only"
timeout 120 $C/lab_sparse --planner-only --json $OUT/planner.json > $OUT/planner.txt 2>&1; echo "rc=$?"
tail -45 $OUT/planner.txt
stamp "bench lightforcing-hopper"
timeout 75 $C/lightforce bench --sizes 480x832 --attention lightforcing-hopper --out $OUT/e2e-lightforcing-hopper.json -q; echo "rc=$?"
stamp "bench dense"
timeout 75 $C/lightforce bench --sizes 480x832 --out $OUT/e2e-dense.json -q; echo "rc=$?"
for f in $OUT/e2e-*.json; do python3 -c "
import json,sys; d=json.load(open(sys.argv[1])); r=d['rows'][0]
print(sys.argv[1].split('/')[-1], 'dit', round(r['dense_dit_seconds'],4), {k: round(v,2) for k,v in r['op_class_ms'].items()})" $f; done
stamp "profile-sparsity tiny (GPU stats path)"
timeout 30 $C/lightforce profile-sparsity -m tiny --prompt "a red circle moves right" --device cuda --attention lightforcing-hopper --recall-row-stride 4 --out-dir /tmp/prof -q; echo "rc=$?"
cp /tmp/prof/sparsity.json $OUT/profile-sparsity-tiny-cuda.json 2>/dev/null
stamp done
stamp "ncu: L2 hit rate and DRAM bytes of the sparse kernel (density 0.1) and dense, Lk 32760 and 4680"
if command -v ncu >/dev/null && [ $(( $(date +%s) - t0 )) -lt 420 ]; then
  for lk in 32760 4680; do
    for k in FrameAligned DenseKeyBlocks; do
      [ $(( $(date +%s) - t0 )) -lt 530 ] || continue
      timeout 45 ncu --clock-control none --kernel-name-base demangled -k "regex:$k" --launch-count 2 \
        --metrics gpu__time_duration.sum,dram__bytes_read.sum,lts__t_sector_hit_rate.pct,lts__t_bytes.sum,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_elapsed \
        $C/lab_sparse --bench-only --no-planner --hopper-default --lk $lk --density 0.1 --reps 5 > $OUT/ncu-$lk-$k.txt 2>&1
      echo "ncu lk $lk $k rc=$?"; grep -E "dram__|lts__|gpu__time|sm__pipe" $OUT/ncu-$lk-$k.txt | head -10
    done
  done
fi
stamp done-ncu
# At most 8 files come back: one archive.
# In the real run this tar failed ("file changed as we read it": ncu was still writing), so only the first 8
# files came back; planner.txt was copied by hand from the command's output.
(cd $OUT && tar czf run4.tgz --exclude=run4.tgz . && find . -type f ! -name run4.tgz -delete)
