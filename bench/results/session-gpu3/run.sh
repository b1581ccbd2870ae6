#!/usr/bin/env bash
# 2026-12-07, second call of the session on one machine: (1) speed before vs after the restructure on the same card,
# alternating binaries: lightforce-before = commit 0321a73 (structure-baseline's binary), lightforce-presched = commit
# 9c02048 with the scheduler of ad69e2f (so both draw the same timesteps and must give the same latents digests);
# (2) 81-frame 480x832 decodes on the GPU per decoder (the first call of each warms up), video tensor to /dev/null
# (no FFmpeg on the GPU machine). Carry build-gpu/c17.tar.xz; one archive back.
set -uo pipefail
mkdir -p build-gpu && tar xJf build-gpu/c17.tar.xz -C build-gpu
C=build-gpu/c17
W=/tmp/gpu3 && mkdir -p $W/bench $W/decode
save() { tar czf $OUT/run.tgz -C $W . 2>/dev/null; }
export LD_LIBRARY_PATH=$PWD/$C:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee $W/device.txt
for i in 1 2 3; do
  for b in before presched; do
    for a in dense lightforcing-hopper; do
      timeout 60 $C/lightforce-$b bench --sizes 480x832 --attention $a -q --out $W/bench/$a-$b-$i.json; echo "bench $b $a $i rc=$?"
    done
  done
done
python3 - $W/bench <<'PY'
import json, glob, sys, statistics, os
rows = {}
for f in sorted(glob.glob(sys.argv[1] + "/*.json")):
    d = json.load(open(f)); r = d["rows"][0]; b = os.path.basename(f).split("-")[-2]
    rows.setdefault((d["attention"], b), []).append((r["dense_dit_seconds"], r["latents_sha256"][:16], r["peak_gpu_bytes"]))
for k, v in sorted(rows.items()):
    print(k, "median DiT s", round(statistics.median(x[0] for x in v), 4), "all", [round(x[0], 4) for x in v],
          "sha", sorted(set(x[1] for x in v)), "peak GiB", round(v[0][2] / 2**30, 2))
PY
save
for decoder in wan-vae lightvae taehv; do
  for i in 1 2; do
    timeout 90 $C/lightforce decode --latents random:21x16x60x104 --decoder $decoder --vae-weights random \
      --device cuda --chunk-frames 3 --save-video-tensor /dev/null --json -q > $W/decode/$decoder-$i.json 2> $W/decode/$decoder-$i.err
    echo "decode $decoder $i rc=$?"; head -2 $W/decode/$decoder-$i.err
  done
done
for f in $W/decode/*-2.json; do python3 -c "
import json,sys; d=json.load(open(sys.argv[1]))
c=[round(x['seconds'],4) for x in d['per_chunk']]
print(d['decoder'], 'frames', d['video_frames'], 'total_s', round(d['seconds'],4), 'first_frame_s',
      round(d['first_frame_seconds'],4), 'chunk_s', c, 'peak_GiB', round(d['device_peak_bytes']/2**30,3))" $f; done
save; echo done
