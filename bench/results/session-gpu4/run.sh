#!/usr/bin/env bash
# 2026-12-07, session 16, one GPU call: the umT5 tensor-core attention + device-built position bias, and the
# decoders' convolutions through cuDNN (LF_CONV).
#   1. every test_gpu_* (conv ops and decoders under both LF_CONV=im2col and cudnn; the umT5 ops incl. the new
#      tiled attention shapes and relative_position_bias; the rest unchanged, run because speed_switches.h changed);
#   2. Hugging Face's tokenizers vs the pinned ids (tools/umt5_hf_tokenizer_ids.py, now for transformers 5), and
#      `lightforce bench --sizes none --text-encoder umt5-xxl --tokens 512` (resident bf16 weights, median of 10);
#   3. 81-frame 480x832 decodes per decoder, LF_CONV=im2col then cudnn (auto) in the same call, warm;
#   4. `lightforce bench --sizes 480x832` dense (+ --decoder wan-vae) and lightforcing-hopper (+ --decoder taehv):
#      latents_sha256 must stay b6a63bb2... / 19996cd8... (session-gpu2's digests with the current scheduler).
# Carry build-gpu/c18.tar.xz; one archive back.
set -uo pipefail
mkdir -p build-gpu && tar xJf build-gpu/c18.tar.xz -C build-gpu
C=build-gpu/c18
W=/tmp/gpu4 && mkdir -p $W/tests $W/bench $W/decode $W/umt5
save() { tar czf $OUT/run.tgz -C $W . 2>/dev/null; }
export LF_TEST_TMP=/tmp LF_FIXTURES_DIR=$PWD/tests/fixtures LD_LIBRARY_PATH=$PWD/$C:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee $W/device.txt
for t in $C/test_gpu_*; do
  n=$(basename $t); timeout 200 $t -s > $W/tests/$n.log 2>&1; echo "$n rc=$?"
  grep -E "ERROR|FAILED|test cases" $W/tests/$n.log | head -6
done
grep -hE "MESSAGE: .*(rel-L2|cuDNN)" $W/tests/test_gpu_conv.log $W/tests/test_gpu_umt5.log | sed 's/.*MESSAGE: //' | head -40
save
timeout 120 python3 tools/umt5_hf_tokenizer_ids.py --out $W/umt5/hf-tokenizer.json 2>&1 | tail -30
timeout 240 $C/lightforce bench --sizes none --text-encoder umt5-xxl --tokens 512 --repeat 10 --out $W/umt5/bench-512.json 2>&1 | tail -2
python3 -c "import json; d=json.load(open('$W/umt5/bench-512.json'))['text_encoder']; print('umt5 op ms', {k: round(v,2) for k,v in d['op_class_ms_per_encode'].items()})"
save
for decoder in wan-vae lightvae taehv; do
  for conv in im2col auto auto; do
    LF_CONV=$conv timeout 90 $C/lightforce decode --latents random:21x16x60x104 --decoder $decoder --vae-weights random \
      --device cuda --chunk-frames 3 --save-video-tensor /dev/null --json --op-times -q > $W/decode/$decoder-$conv.json 2> $W/decode/$decoder-$conv.err
    echo "decode $decoder $conv rc=$?"; head -2 $W/decode/$decoder-$conv.err
    python3 -c "
import json,sys; d=json.load(open(sys.argv[1]))
print(sys.argv[2], d['decoder'], 'frames', d['video_frames'], 'total_s', round(d['seconds'],4), 'first_frame_s',
      round(d['first_frame_seconds'],4), 'chunk_s', [round(x['seconds'],3) for x in d['per_chunk']], 'peak_GiB', round(d['device_peak_bytes']/2**30,3), 'op_ms', {k: round(v) for k,v in d.get('op_class_ms',{}).items()})" $W/decode/$decoder-$conv.json $conv
  done
done
save
for ad in dense:wan-vae lightforcing-hopper:taehv; do
  a=${ad%%:*}; d=${ad##*:}
  timeout 90 $C/lightforce bench --sizes 480x832 --attention $a --decoder $d -q --out $W/bench/$a.json; echo "bench $a $d rc=$?"
  python3 -c "import json; r=json.load(open('$W/bench/$a.json'))['rows'][0]; print('$a DiT s', round(r['dense_dit_seconds'],4), 'sha', r['latents_sha256'][:16], '$d decode s', round(r['decode']['seconds'],3), 'first frame s', round(r['first_frame_seconds'],3), 'fps with decode', round(r['frames_per_second_with_decode'],1))"
done
save; echo done
