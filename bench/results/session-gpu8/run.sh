#!/usr/bin/env bash
# Written in session 18 (2026-12-07) and NOT RUN there: the device budget was spent. For the next session: rebuild
# the binary from main as build-gpu/c28 (scripts/build-gpu.sh, then the packaging of session-gpu7) and run it.
# c28 = a37cf56 or later (after session-gpu7: the host mmap-threshold pin reverted, the op timer folding its events,
# umT5 attention defaulting to the batched GEMMs).
#   1. every test_gpu_* of c28;
#   2. 60 s of video (240 latents, 80 chunks) on the rolling cache with lightforcing-long: host memory with the
#      profiler's events recycled;
#   3. umT5-XXL 512-token encode with resident bf16 weights (default: GEMM attention);
#   4. a whole 1.3B generation with the umT5-XXL encode (random weights, the test tokenizer): peak device memory
#      against bench's DiT-only 9.045 GiB (session-gpu7);
#   5. lab_sparse --check-only (the Hopper experiments compiled into the lab).
# Carry build-gpu/c28.tar.xz; one archive back.
set -uo pipefail
mkdir -p build-gpu && tar xJf build-gpu/c28.tar.xz -C build-gpu
export W=/tmp/gpu8 && mkdir -p $W/tests $W/umt5
save() { tar czf $OUT/run.tgz -C $W . 2>/dev/null; }
export LF_TEST_TMP=/tmp LF_FIXTURES_DIR=$PWD/tests/fixtures
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee $W/device.txt
C=build-gpu/c28
SECONDS=0
for t in $C/test_gpu_*; do
  n=$(basename $t); LD_LIBRARY_PATH=$PWD/$C timeout 120 $t -s > $W/tests/$n.log 2>&1; echo "$n rc=$? (${SECONDS}s)"
  grep -E "ERROR|FAILED|test cases" $W/tests/$n.log | head -4
done
grep -hE "MESSAGE: (cuDNN conv|per timed op|attention_with_bias|GPU bf16 umT5)" $W/tests/*.log | sed 's/.*MESSAGE: //'
save
mkdir -p $W/long
ROLL="--set pipeline.kv_cache.mode=rolling --set pipeline.kv_cache.window_frames=12 --set pipeline.kv_cache.sink_frames=1 --set pipeline.kv_cache.positions=relative"
LD_LIBRARY_PATH=$PWD/$C timeout 110 $C/lightforce bench --sizes 480x832 --frames 240 --attention lightforcing-long $ROLL -q --out $W/long/lightforcing-long.json > /dev/null 2>$W/long/lightforcing-long.err
python3 - $W/long/lightforcing-long.json <<'PY' || tail -3 $W/long/lightforcing-long.err
import json, sys, statistics
r = json.load(open(sys.argv[1]))['rows'][0]
t = r['per_chunk_seconds']; p = r['per_chunk_peak_gpu_bytes']; h = r['per_chunk_host_rss_bytes']
q = len(t) // 4
print('lightforcing-long chunks', len(t), 'fps', round(r['dit_frames_per_second'], 1),
      'median chunk s by quarter', [round(statistics.median(t[i*q:(i+1)*q]), 4) for i in range(4)],
      'peak GiB at chunk 10/40/79', [round(p[i] / 2**30, 3) for i in (10, 40, len(p) - 1)],
      'host RSS MiB at 10/20/40/60/79', [round(h[i] / 2**20, 1) for i in (10, 20, 40, 60, len(h) - 1)])
PY
echo "(${SECONDS}s)"; save
LD_LIBRARY_PATH=$PWD/$C timeout 90 $C/lightforce bench --sizes none --text-encoder umt5-xxl --tokens 512 --repeat 10 -q --out $W/umt5/gemm.json > /dev/null 2> $W/umt5/gemm.err
python3 -c "import json; d=json.load(open('$W/umt5/gemm.json'))['text_encoder']; print('umt5 default(gemm) median ms', round(d['median_encode_ms'],2), 'encode ms', [round(x,2) for x in d['encode_ms']], 'op ms', {k: round(v,2) for k,v in d['op_class_ms_per_encode'].items()}, 'peak GiB', round(d['peak_gpu_bytes_during_encodes']/2**30,3))" || tail -2 $W/umt5/gemm.err
echo "(${SECONDS}s)"; save
mkdir -p $W/gen
LD_LIBRARY_PATH=$PWD/$C timeout 200 $C/lightforce generate -m wan2.1-t2v-1.3b -w random --t5-weights random --tokenizer tests/fixtures/umt5/test-spiece.model \
  --prompt "a red circle moves right" --device cuda --no-video --save-latents $W/gen/latents.safetensors --json -q > $W/gen/with-umt5.json 2> $W/gen/with-umt5.err
python3 -c "import json; d=json.load(open('$W/gen/with-umt5.json')); print('generate 1.3B + umT5-XXL: device peak GiB', round(d['device_peak_bytes']/2**30,3), 'reserved GiB', round(d['device_reserved_bytes']/2**30,3), 'generation s', round(d['generation_seconds'],3))" || tail -3 $W/gen/with-umt5.err
echo "(${SECONDS}s)"; save
LD_LIBRARY_PATH=$PWD/$C timeout 100 $C/lab_sparse --check-only > $W/tests/lab_sparse_check.log 2>&1; echo "lab_sparse --check-only rc=$? (${SECONDS}s)"
grep -cE "^  ok" $W/tests/lab_sparse_check.log; grep -E "FAIL" $W/tests/lab_sparse_check.log | head -5; tail -2 $W/tests/lab_sparse_check.log
save
echo done
