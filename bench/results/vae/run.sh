#!/usr/bin/env bash
# Issue 18, run 1: the decoders' GPU path. Run from the repository root on the GPU machine with the CUDA build
# carried (scripts/build-gpu.sh -> build-gpu/carry; C overrides). What it checks and times:
#   1. test_gpu_conv: every decoder op on the GPU against its CPU reference (ragged and decoder-sized shapes, one
#      conv spanning two im2col tiles), and the three decoders in bf16 against the official fp32 fixtures
#      (rel-L2 <= 1e-2) with streaming == one call; the measured rel-L2 values are printed (MESSAGE lines).
#   2. An 81-frame 480x832 decode (21 latents, random weights, random:21x16x60x104 latents) per decoder, twice
#      (the first warms cuBLASLt plans and the allocator): total seconds, seconds per chunk, time to the first
#      frame and peak device memory, from `lightforce decode --json`. Targets (issue 18): Wan VAE <= 0.6 s,
#      LightVAE <= 0.2 s, TAEHV <= 0.04 s, memory <= 2 GiB.
# Results: $OUT/vae-run1.tgz (device.txt, tests.txt, decode-<decoder>-<i>.json, summary.txt).
set -uo pipefail
C=${C:-build-gpu/carry}
W=/tmp/vae-run1 && rm -rf $W && mkdir -p $W
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee $W/device.txt
git rev-parse HEAD 2>/dev/null | tee -a $W/device.txt
timeout 300 $C/test_gpu_conv -s 2>&1 | grep -E "MESSAGE|ERROR|FAILED|test cases|assertions|Status|rel-L2" | tee $W/tests.txt
echo "test_gpu_conv rc=${PIPESTATUS[0]}" | tee -a $W/tests.txt
for decoder in wan-vae lightvae taehv; do
  for i in 1 2; do
    timeout 120 $C/lightforce decode --latents random:21x16x60x104 --decoder $decoder --vae-weights random \
      --device cuda --chunk-frames 3 --json -q > $W/decode-$decoder-$i.json 2> $W/decode-$decoder-$i.err
    echo "$decoder run $i rc=$?"
  done
done
for f in $W/decode-*-2.json; do python3 -c "
import json,sys; d=json.load(open(sys.argv[1]))
c=[round(x['seconds'],4) for x in d['per_chunk']]
print(d['decoder'], d['device'], 'frames', d['video_frames'], 'total_s', round(d['seconds'],4),
      'first_frame_s', round(d['first_frame_seconds'],4), 'chunk_s', c, 'peak_GiB', round(d['device_peak_bytes']/2**30,3))" $f \
  || cat ${f%.json}.err; done | tee $W/summary.txt
tar czf /tmp/vae-run1.tgz -C $W . && cp /tmp/vae-run1.tgz $OUT/vae-run1.tgz
