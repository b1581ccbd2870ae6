#!/usr/bin/env bash
# 2026-12-07, after merging issues 16 (attention structure), 17 (umT5) and 18 (decoders) into main: one GPU call.
#   1. every test_gpu_* (the restructured sparse tests, the decoder ops and decoders vs the official fixtures in
#      bf16, the umT5 ops and the XXL-layout encoder vs the official fp32 output, the 512-token encode time);
#   2. `lightforce bench` 480x832 dense and lightforcing-hopper, 3 alternating rounds: latents_sha256 must equal
#      bench/results/structure-baseline (same card kind), DiT medians within noise of it;
#   3. 81-frame 480x832 decodes per decoder (Wan VAE, LightVAE, TAEHV), warm, from `lightforce decode --json`;
#   4. encode-text on cuda vs cpu (umt5-tiny) and Hugging Face's tokenizers vs the pinned ids;
#   5. lab_sparse --check-only.
# Carry build-gpu/c16.tar.xz (scripts/build-gpu.sh output + the SentencePiece shim and its libraries); one archive.
set -uo pipefail
mkdir -p build-gpu && tar xJf build-gpu/c16.tar.xz -C build-gpu
C=build-gpu/c16
W=/tmp/gpu2 && mkdir -p $W/tests $W/bench $W/decode $W/umt5
save() { tar czf $OUT/run.tgz -C $W . 2>/dev/null; }
export LF_TEST_TMP=/tmp LF_FIXTURES_DIR=$PWD/tests/fixtures LD_LIBRARY_PATH=$PWD/$C:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee $W/device.txt
# Which scheduler this binary has (fdd8319 moved timestep 3 from 833.333251953125 to PyTorch's 833.3333129882812).
timeout 60 $C/lightforce generate -m tiny --frames 3 --prompt "a red circle moves right" --no-video \
  --save-latents /tmp/t.safetensors -q --json --device cpu | python3 -c "import json,sys; print('timesteps', json.load(sys.stdin)['timesteps'])" | tee -a $W/device.txt
for t in $C/test_gpu_*; do
  n=$(basename $t); timeout 150 $t -s > $W/tests/$n.log 2>&1; echo "$n rc=$?"
  grep -E "ERROR|FAILED|test cases" $W/tests/$n.log | head -4; grep -E "MESSAGE|rel-L2|ms" $W/tests/$n.log | grep -v "^$" | head -12
done
save
# lightforce-presched: this tree with lib/pipeline/scheduler.cpp as of ad69e2f (before fdd8319 made the sigma
# table bit-identical to PyTorch's), so its digests must equal structure-baseline's; lightforce: the tree as is.
for i in 1 2 3; do
  for a in dense lightforcing-hopper; do
    timeout 60 $C/lightforce-presched bench --sizes 480x832 --attention $a -q --out $W/bench/e2e-$a-presched-$i.json; echo "bench presched $a $i rc=$?"
  done
done
for a in dense lightforcing-hopper; do
  timeout 60 $C/lightforce bench --sizes 480x832 --attention $a -q --out $W/bench/e2e-$a-head.json; echo "bench head $a rc=$?"
done
python3 - $W/bench <<'PY'
import json, glob, sys, statistics
rows = {}
for f in sorted(glob.glob(sys.argv[1] + "/e2e-*.json")):
    d = json.load(open(f)); r = d["rows"][0]
    key = (d["attention"], "head" if f.endswith("-head.json") else "presched")
    rows.setdefault(key, []).append((r["dense_dit_seconds"], r["latents_sha256"][:16], r["peak_gpu_bytes"]))
for a, v in sorted(rows.items()):
    print(a, "median DiT s", round(statistics.median(x[0] for x in v), 4), "all", [round(x[0], 4) for x in v],
          "sha", sorted(set(x[1] for x in v)), "peak GiB", round(v[0][2] / 2**30, 2))
PY
save
for decoder in wan-vae lightvae taehv; do
  for i in 1 2; do
    timeout 60 $C/lightforce decode --latents random:21x16x60x104 --decoder $decoder --vae-weights random \
      --device cuda --chunk-frames 3 --json -q > $W/decode/$decoder-$i.json 2> $W/decode/$decoder-$i.err
    echo "decode $decoder $i rc=$?"
  done
done
for f in $W/decode/*-2.json; do python3 -c "
import json,sys; d=json.load(open(sys.argv[1]))
c=[round(x['seconds'],4) for x in d['per_chunk']]
print(d['decoder'], 'frames', d['video_frames'], 'total_s', round(d['seconds'],4), 'first_frame_s',
      round(d['first_frame_seconds'],4), 'chunk_s', c, 'peak_GiB', round(d['device_peak_bytes']/2**30,3))" $f \
  || head -3 ${f%.json}.err; done
save
T=tests/fixtures/umt5/test-spiece.model
for device in cpu cuda; do
  timeout 60 $C/lightforce encode-text --cache off --encoder umt5-tiny --t5-weights random:5 --tokenizer $T \
    --device $device --prompt "a red circle moves right" -o $W/umt5/tiny-$device.safetensors --json -q > $W/umt5/tiny-$device.json; echo "encode-text $device rc=$?"
done
python3 - $W/umt5 <<'PY'
import json, struct, sys
import numpy as np
def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]; header = json.loads(f.read(n)); data = f.read()
    e = header["context"]; a, b = e["data_offsets"]
    return np.frombuffer(data[a:b], dtype=np.float32).reshape(e["shape"])
cpu, gpu = read(sys.argv[1] + "/tiny-cpu.safetensors"), read(sys.argv[1] + "/tiny-cuda.safetensors")
print("encode-text umt5-tiny cuda vs cpu rel-L2", float(np.linalg.norm(gpu - cpu) / np.linalg.norm(cpu)), cpu.shape)
PY
timeout 90 python3 tools/umt5_hf_tokenizer_ids.py --out $W/umt5/hf-tokenizer-ids.json > $W/umt5/hf-tokenizer.txt 2>&1; echo "hf tokenizer rc=$?"; tail -5 $W/umt5/hf-tokenizer.txt
save
timeout 60 $C/lab_sparse --check-only > $W/lab-check.txt 2>&1; echo "lab_sparse check rc=$?"; grep -E "correctness|FAIL" $W/lab-check.txt | head -5
save; echo done
