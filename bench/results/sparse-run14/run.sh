#!/usr/bin/env bash
# Issue 4, run 14 (2026-12-06): where a work item's time goes in the Hopper block-sparse kernel. lab_sparse --trace
# (clock64 stamps per item phase, FlashKernelArgs::trace), then the kernel checks and the Hopper-default bench rows
# at Lk 4680 and 32760 (the stamps compiled in but off), and test_gpu_sparse. Each trace case and bench row also runs
# with the experimental early turn hand-over (consumer 1 passes its last turn of an item; "handover" rows) and with
# two Q tiles (the next item's Q loads under this one; a 2-stage K/V ring at head_dim 128; "2q" rows).
# Run 13 (the same without 2q) never got a machine. Last, the same bench rows with --shared-rows (every query block
# of a head selects the same blocks: the L2 best case), to size what the random masks' K/V working set costs.
set -uo pipefail
C=${C:-build-gpu/c14}
W=${OUT:-/tmp}/run14 && mkdir -p $W  # under $OUT: what finished comes back even if the call runs out of time
export LF_TEST_TMP=/tmp
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee $W/device.txt
timeout 60 $C/lab_sparse --trace 2>&1 | tee $W/trace.txt
timeout 100 $C/lab_sparse --check-only > $W/check.txt 2>&1; echo "check rc=$?"; grep -E "correctness|FAIL" $W/check.txt | head
timeout 240 $C/lab_sparse --bench-only --quick --hopper-default --no-planner --json $W/lab-quick.json > $W/lab-quick.txt 2>&1; echo "bench rc=$?"; grep -E "dense hopper|hopper q128 k128" $W/lab-quick.txt | head -20
timeout 100 $C/test_gpu_sparse > $W/test-gpu-sparse.log 2>&1; echo "test_gpu_sparse rc=$?"; grep -E "ERROR|FAILED|test cases" $W/test-gpu-sparse.log | head
timeout 150 $C/lab_sparse --bench-only --quick --hopper-default --no-planner --shared-rows --json $W/lab-shared.json > $W/lab-shared.txt 2>&1; echo "shared bench rc=$?"; grep -E "hopper q128 k128" $W/lab-shared.txt | head -8
echo "run14 done"
