#!/usr/bin/env bash
# Runs on the GPU machine (device tool), from the repository root, with build-gpu/carry carried along:
# GPU tests, kernel labs, attention side by side with PyTorch SDPA, and the end-to-end bench. Results under $OUT.
set -uo pipefail
out="${OUT:-out}"
mkdir -p "$out"
bin=build-gpu/carry
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/device.txt"
export LF_TEST_TMP=/tmp
status=0
for test in "$bin"/test_gpu_*; do
  echo "== $test"
  "$test" --reporters=console 2>&1 | tee -a "$out/gpu-tests.log" | tail -25 || status=1
done
for lab in ${LABS:-"$bin"/lab_*}; do
  echo "== $lab"
  timeout 180 "$lab" --json "$out/$(basename "$lab").json" 2>&1 | tee -a "$out/labs.log" | tail -30
done
if [ -f "$bin/liblf_kernels_capi.so" ]; then
  echo "== attention vs SDPA"
  PYTHONUNBUFFERED=1 timeout 240 python3 bench/attention_vs_sdpa.py --lib "$bin/liblf_kernels_capi.so" \
    --out "$out/attention-h200.json" 2>&1 | tail -30
fi
echo "== e2e bench"
timeout 300 "$bin/lightforce" bench --out "$out/e2e-h200.json" 2>&1 | tail -30
exit $status
