#!/usr/bin/env bash
# Issue 4, run 5 (2026-12-06): GPU tests at the run-4 build plus the L2 experiment: is the sparse kernel's fixed cost
# at low density the cold DRAM read of K/V/Q (every block of a head is touched by some row even at density 0.1)?
# Same shapes cold (input sets > 3x L2, as in the engine) and warm (one set, K/V resident in L2 at Lk 4680).
set -uo pipefail
C=${C:-build-gpu/c4}
export LF_TEST_TMP=/tmp
W=/tmp/run5 && rm -rf $W && mkdir -p $W
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee $W/device.txt
stamp test_gpu_sparse
timeout 90 $C/test_gpu_sparse > $W/test-gpu-sparse.log 2>&1; echo "rc=$?"; grep -E "ERROR|FAILED|test cases" $W/test-gpu-sparse.log | head
stamp test_gpu_attention
timeout 60 $C/test_gpu_attention > $W/test-gpu-attention.log 2>&1; echo "rc=$?"; grep -E "ERROR|FAILED|test cases" $W/test-gpu-attention.log | head
L="$C/lab_sparse --bench-only --no-planner --hopper-default --reps 10"
for lk in 4680 32760; do
  for mode in cold warm; do
    flag=""; [ $mode = warm ] && flag="--warm"
    stamp "lab lk $lk $mode"
    timeout 60 $L --lk $lk $flag --json $W/lab-$lk-$mode.json > $W/lab-$lk-$mode.txt 2>&1; echo "rc=$?"
    timeout 30 $L --lk $lk $flag --density 0.025 > $W/lab-$lk-$mode-1block.txt 2>&1
    grep -E "dense hopper|persistent\+packed" $W/lab-$lk-$mode.txt $W/lab-$lk-$mode-1block.txt | sed 's/.*\.txt://'
  done
done
if command -v ncu >/dev/null; then
  for mode in cold warm; do
    flag=""; [ $mode = warm ] && flag="--warm"
    timeout 45 ncu --clock-control none --cache-control none --kernel-name-base demangled -k "regex:FrameAligned" --launch-skip 10 --launch-count 1 \
      --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,lts__t_sector_hit_rate.pct,lts__throughput.avg.pct_of_peak_sustained_elapsed,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_elapsed \
      $L --lk 4680 $flag --density 0.1 > $W/ncu-4680-$mode.txt 2>&1
    echo "ncu $mode rc=$?"; grep -E "dram__|lts__|gpu__time|sm__pipe" $W/ncu-4680-$mode.txt
  done
fi
stamp done
tar czf $OUT/run5.tgz -C $W .
