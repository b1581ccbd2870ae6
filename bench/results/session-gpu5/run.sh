#!/usr/bin/env bash
# 2026-12-07, session 16, second GPU call: commit 753f184 (c20: + the batch merge) beside 0f83443 (c18, session-gpu4's
# binary).
#   1. every test_gpu_* of c20 (t5_ops.cu and conv_ops.cu changed: vectorised staging in the umT5 attention,
#      clamp_affine);
#   2. umT5-XXL 512-token encode, resident bf16 weights: c18 then c20 (`lightforce bench --sizes none
#      --text-encoder umt5-xxl`), then the official Wan T5Encoder (bench/official_umt5_time.py, t5.py carried as
#      build-gpu/wan_t5.py, not committed);
#   3. 81-frame 480x832 decodes, LF_CONV=auto, per decoder: c18 then c20, twice each, alternating;
#   4. c20 `lightforce bench --sizes 480x832`: dense + --decoder wan-vae, lightforcing-hopper + --decoder taehv and
#      + --decoder lightvae (DiT digests must stay b6a63bb2... / 19996cd8...).
# Carry build-gpu/c18.tar.xz, build-gpu/c20.tar.xz and build-gpu/wan_t5.py; one archive back.
set -uo pipefail
mkdir -p build-gpu && tar xJf build-gpu/c18.tar.xz -C build-gpu && tar xJf build-gpu/c20.tar.xz -C build-gpu
export W=/tmp/gpu5 && mkdir -p $W/tests $W/bench $W/decode $W/umt5
save() { tar czf $OUT/run.tgz -C $W . 2>/dev/null; }
export LF_TEST_TMP=/tmp LF_FIXTURES_DIR=$PWD/tests/fixtures
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee $W/device.txt
C=build-gpu/c20
for t in $C/test_gpu_*; do
  n=$(basename $t); LD_LIBRARY_PATH=$PWD/$C timeout 200 $t -s > $W/tests/$n.log 2>&1; echo "$n rc=$?"
  grep -E "ERROR|FAILED|test cases" $W/tests/$n.log | head -6
done
grep -hE "MESSAGE: .*(rel-L2|cuDNN)" $W/tests/test_gpu_conv.log $W/tests/test_gpu_umt5.log | sed 's/.*MESSAGE: //' | head -40
save
for c in c18 c20; do
  LD_LIBRARY_PATH=$PWD/build-gpu/$c timeout 200 build-gpu/$c/lightforce bench --sizes none --text-encoder umt5-xxl --tokens 512 --repeat 10 --out $W/umt5/bench-512-$c.json 2>&1 | tail -1
  python3 -c "import json; d=json.load(open('$W/umt5/bench-512-$c.json'))['text_encoder']; print('$c umt5 median ms', round(d['median_encode_ms'],2), 'op ms', {k: round(v,2) for k,v in d['op_class_ms_per_encode'].items()}, 'upload GB/s', round(d['upload_gb_per_second'],2))"
  save
done
timeout 200 python3 bench/official_umt5_time.py --wan-t5 build-gpu/wan_t5.py --tokens 512 --out $W/umt5/official-512.json 2>&1 | tail -2
save
for decoder in wan-vae lightvae taehv; do
  for i in 1 2; do
    for c in c18 c20; do
      LD_LIBRARY_PATH=$PWD/build-gpu/$c timeout 90 build-gpu/$c/lightforce decode --latents random:21x16x60x104 --decoder $decoder --vae-weights random \
        --device cuda --chunk-frames 3 --save-video-tensor /dev/null --json --op-times -q > $W/decode/$decoder-$c-$i.json 2> $W/decode/$decoder-$c-$i.err
      echo "decode $decoder $c $i rc=$?"; head -2 $W/decode/$decoder-$c-$i.err
      python3 -c "
import json,sys; d=json.load(open(sys.argv[1]))
c=[x['seconds'] for x in d['per_chunk']]
print(sys.argv[2], d['decoder'], 'frames', d['video_frames'], 'chunks_sum_s', round(sum(c),4), 'total_s', round(d['seconds'],4), 'first_frame_s',
      round(d['first_frame_seconds'],4), 'chunk_s', [round(x,3) for x in c], 'peak_GiB', round(d['device_peak_bytes']/2**30,3), 'op_ms', {k: round(v) for k,v in d.get('op_class_ms',{}).items()})" $W/decode/$decoder-$c-$i.json $c
    done
  done
done
save
C=build-gpu/c20
for ad in dense:wan-vae lightforcing-hopper:taehv lightforcing-hopper:lightvae; do
  a=${ad%%:*}; d=${ad##*:}
  LD_LIBRARY_PATH=$PWD/$C timeout 90 $C/lightforce bench --sizes 480x832 --attention $a --decoder $d -q --out $W/bench/$a-$d.json; echo "bench $a $d rc=$?"
  python3 -c "import json; r=json.load(open('$W/bench/$a-$d.json'))['rows'][0]; print('$a DiT s', round(r['dense_dit_seconds'],4), 'sha', r['latents_sha256'][:16], '$d decode s', round(r['decode']['seconds'],3), 'first frame s', round(r['first_frame_seconds'],3), 'fps with decode', round(r['frames_per_second_with_decode'],1), 'decode op ms', {k: round(v) for k,v in r['decode']['op_class_ms'].items()})"
done
save
W=$W bash bench/results/session-gpu5/batch-check.sh > $W/batch-check.log 2>&1; echo "batch check rc=$?"; tail -30 $W/batch-check.log
save; echo done
