#!/usr/bin/env bash
# 2026-12-07, session 18, first GPU call: c27 = c02bdd4 (bd6d16d: the Hopper kernel's lab fields moved out of
# FlashKernelArgs into lab_sparse; d081036: bench's per-chunk memory; ecd0007: no latents kept unless needed, heap
# threshold pinned; 14d67bc: cuDNN decoder convs batched over a call's frames; then umT5's attention as batched GEMMs behind
# LF_T5_ATTENTION) beside c22 = 5e7e1fc (main before).
#   1. every test_gpu_* of c27;
#   2. 81-frame 480x832 decodes per decoder, c27 with LF_CONV_BATCH=0 / 1 alternating (issue 18);
#   2b. umT5-XXL 512-token encode, resident bf16 weights, LF_T5_ATTENTION=kernel / gemm (issue 17);
#   3. what cuDNN can do for the decoders' conv shapes (bench/conv_layouts_torch.py: per frame vs batched, NCHW vs
#      NHWC; issue 18's choice of what to build next);
#   4. lightforce bench --sizes 480x832 (21 latents), dense and lightforcing-hopper, c22 / c27 alternating, twice:
#      same digests and speed within noise (issue 16's check);
#   5. 60 s of video at 480x832 (240 latents = 960 frames, 80 chunks) on the rolling cache, lightforcing-long and
#      dense, c27: per-chunk time and memory (issue 21 item 4);
#   5b. peak device memory of a whole 1.3B generation with the umT5-XXL encode (random weights, the test tokenizer)
#      against bench's DiT-only peak above (issue 17);
#   6. lab_sparse --check-only of c27 (its experiments now compiled into the lab).
# Carry build-gpu/c22.tar.xz and build-gpu/c27.tar.xz; one archive back.
set -uo pipefail
mkdir -p build-gpu && tar xJf build-gpu/c22.tar.xz -C build-gpu && tar xJf build-gpu/c27.tar.xz -C build-gpu
export W=/tmp/gpu7 && mkdir -p $W/tests $W/bench $W/long $W/decode
save() { tar czf $OUT/run.tgz -C $W . 2>/dev/null; }
export LF_TEST_TMP=/tmp LF_FIXTURES_DIR=$PWD/tests/fixtures
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee $W/device.txt
C=build-gpu/c27
SECONDS=0
for t in $C/test_gpu_*; do
  n=$(basename $t); LD_LIBRARY_PATH=$PWD/$C timeout 150 $t -s > $W/tests/$n.log 2>&1; echo "$n rc=$? (${SECONDS}s)"
  grep -E "ERROR|FAILED|test cases" $W/tests/$n.log | head -4
done
grep -hE "MESSAGE: (cuDNN conv|attention_with_bias|GPU bf16 umT5)" $W/tests/test_gpu_conv.log $W/tests/test_gpu_umt5.log | sed 's/.*MESSAGE: //'
save
for decoder in taehv lightvae wan-vae; do
  for batch in 0 1; do
    LF_CONV_BATCH=$batch LD_LIBRARY_PATH=$PWD/$C timeout 60 $C/lightforce decode --latents random:21x16x60x104 --decoder $decoder --vae-weights random \
      --device cuda --chunk-frames 3 --save-video-tensor /dev/null --json --op-times -q > $W/decode/$decoder-b$batch.json 2> $W/decode/$decoder-b$batch.err
    python3 -c "
import json,sys; d=json.load(open(sys.argv[1])); c=[x['seconds'] for x in d['per_chunk']]
print(sys.argv[2], 'sum', round(sum(c),4), 'chunk0', round(c[0],3), 'chunks1..', round(sum(c[1:]),4), 'peak GiB', round(d['device_peak_bytes']/2**30,3), 'op_ms', {k: round(v) for k,v in d.get('op_class_ms',{}).items()})" $W/decode/$decoder-b$batch.json "$decoder batch=$batch" || tail -2 $W/decode/$decoder-b$batch.err
  done
done
echo "(${SECONDS}s)"; save
mkdir -p $W/umt5
for i in 1; do
  for path in kernel gemm; do
    LF_T5_ATTENTION=$path LD_LIBRARY_PATH=$PWD/$C timeout 60 $C/lightforce bench --sizes none --text-encoder umt5-xxl --tokens 512 --repeat 10 -q --out $W/umt5/$path-$i.json > /dev/null 2> $W/umt5/$path-$i.err
    python3 -c "import json; d=json.load(open('$W/umt5/$path-$i.json'))['text_encoder']; print('umt5 $path $i median ms', round(d['median_encode_ms'],2), 'op ms', {k: round(v,2) for k,v in d['op_class_ms_per_encode'].items()})" || tail -2 $W/umt5/$path-$i.err
  done
done
echo "(${SECONDS}s)"; save
timeout 120 python3 bench/conv_layouts_torch.py --reps 10 --out $W/conv_layouts.json 2>&1 | tail -14; echo "(${SECONDS}s)"; save
for i in 1 2; do
  for a in dense lightforcing-hopper; do
    for c in c22 c27; do
      LD_LIBRARY_PATH=$PWD/build-gpu/$c timeout 100 build-gpu/$c/lightforce bench --sizes 480x832 --attention $a -q --out $W/bench/$a-$c-$i.json > /dev/null 2>$W/bench/$a-$c-$i.err
      python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['rows'][0]; print(sys.argv[2], 'DiT', round(r['dense_dit_seconds'],4), 'peak GiB', round(r['peak_gpu_bytes']/2**30,3), r['latents_sha256'][:8])" $W/bench/$a-$c-$i.json "$a $c $i" || tail -2 $W/bench/$a-$c-$i.err
    done
  done
done
echo "(${SECONDS}s)"; save
ROLL="--set pipeline.kv_cache.mode=rolling --set pipeline.kv_cache.window_frames=12 --set pipeline.kv_cache.sink_frames=1 --set pipeline.kv_cache.positions=relative"
for a in lightforcing-long dense; do
  LD_LIBRARY_PATH=$PWD/$C timeout 110 $C/lightforce bench --sizes 480x832 --frames 240 --attention $a $ROLL -q --out $W/long/$a.json > /dev/null 2>$W/long/$a.err
  python3 - $W/long/$a.json $a <<'PY' || tail -3 $W/long/$a.err
import json, sys, statistics
r = json.load(open(sys.argv[1]))['rows'][0]
t = r['per_chunk_seconds']; p = r['per_chunk_peak_gpu_bytes']; v = r['per_chunk_reserved_gpu_bytes']; h = r['per_chunk_host_rss_bytes']
q = len(t) // 4
print(sys.argv[2], 'chunks', len(t), 'frames', r['frames'], 'fps', round(r['dit_frames_per_second'], 1),
      'median chunk s by quarter', [round(statistics.median(t[i*q:(i+1)*q]), 4) for i in range(4)],
      'peak GiB at chunk 10/40/79', [round(p[i] / 2**30, 3) for i in (10, 40, len(p) - 1)],
      'reserved GiB', [round(v[i] / 2**30, 3) for i in (10, 40, len(v) - 1)],
      'host RSS MiB', [round(h[i] / 2**20, 1) for i in (10, 40, len(h) - 1)])
PY
  echo "(${SECONDS}s)"; save
done
mkdir -p $W/gen
LD_LIBRARY_PATH=$PWD/$C timeout 150 $C/lightforce generate -m wan2.1-t2v-1.3b -w random --t5-weights random --tokenizer tests/fixtures/umt5/test-spiece.model \
  --prompt "a red circle moves right" --device cuda --no-video --save-latents $W/gen/latents.safetensors --json -q > $W/gen/with-umt5.json 2> $W/gen/with-umt5.err
python3 -c "import json; d=json.load(open('$W/gen/with-umt5.json')); print('generate 1.3B + umT5-XXL: device peak GiB', round(d['device_peak_bytes']/2**30,3), 'reserved GiB', round(d['device_reserved_bytes']/2**30,3), 'generation s', round(d['generation_seconds'],3))" || tail -3 $W/gen/with-umt5.err
echo "(${SECONDS}s)"; save
LD_LIBRARY_PATH=$PWD/$C timeout 100 $C/lab_sparse --check-only > $W/tests/lab_sparse_check.log 2>&1; echo "lab_sparse --check-only rc=$? (${SECONDS}s)"
grep -cE "^  ok" $W/tests/lab_sparse_check.log; grep -E "FAIL" $W/tests/lab_sparse_check.log | head -5; tail -2 $W/tests/lab_sparse_check.log
save
echo done
