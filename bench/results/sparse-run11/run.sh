#!/usr/bin/env bash
# Issue 4, run 11 (2026-12-06): GPU tests after the review refactor (shared pooling segments, one HSA rule helper,
# planner kind from MaskPlanner::plans_from_pooled_blocks, GPU-only rope_apply_pooled): behaviour unchanged.
set -uo pipefail
C=${C:-build-gpu/c11}
export LF_TEST_TMP=/tmp
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/device.txt
timeout 120 $C/test_gpu_sparse > $OUT/test-gpu-sparse.log 2>&1; echo "rc=$?"; grep -E "ERROR|FAILED|test cases" $OUT/test-gpu-sparse.log | head
timeout 150 $C/test_gpu_model > $OUT/test-gpu-model.log 2>&1; echo "rc=$?"; grep -E "ERROR|FAILED|test cases" $OUT/test-gpu-model.log | head
