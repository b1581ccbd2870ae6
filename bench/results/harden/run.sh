#!/usr/bin/env bash
# Issue 19 (hardening) on the GPU machine, from the repo root with the CUDA build carried as build-gpu/carry:
#  1. test_gpu_model with the tightened GPU-vs-CPU tolerance (3e-2 for the sparse backends, was 0.2; measured
#     3.5e-3 .. 1.2e-2) and radial added to the backend list: prints every backend's rel-L2, fails above 3e-2;
#  2. the non-finite checks on the GPU path: a noise file with a NaN draw is refused naming the tensor (on load);
#     text embeddings of 3e38 (finite, so they pass the load check) overflow inside the model, and the per-chunk
#     latents check (latents copied to the host and scanned) must stop the run at chunk 0 with exit 1, no file;
#  3. -o /dev/null on the GPU machine (root there too): written in place, /dev/null still a character device.
# Logs (with the commit) go to $OUT.
set -uo pipefail
C=${C:-build-gpu/carry}
W=$OUT
git rev-parse HEAD > $W/commit.txt 2>/dev/null || true
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $W/device.txt
timeout 400 $C/test_gpu_model -s 2>&1 | tee $W/test_gpu_model.log | grep -E "rel-L2|test cases|assertions|ERROR"
echo "test_gpu_model rc=${PIPESTATUS[0]}"
# A noise file whose first re-noise draw holds a NaN (made with the binary's own --save-noise, then patched in
# place by Python's struct; safetensors data is little-endian f32).
timeout 120 $C/lightforce generate -m tiny --quiet --prompt 'a red circle moves right' --frames 6 --device cuda \
  --no-video --save-noise $W/noise.safetensors --save-latents $W/good.safetensors; echo "good run rc=$?"
python3 - $W/noise.safetensors <<'PY'
import json, struct, sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
n = struct.unpack("<Q", data[:8])[0]
header = json.loads(data[8:8 + n])
begin = header["renoise_c0_s1"]["data_offsets"][0] + 8 + n
data[begin + 40:begin + 44] = struct.pack("<f", float("nan"))
open(path.replace(".safetensors", "_nan.safetensors"), "wb").write(data)
PY
timeout 120 $C/lightforce generate -m tiny --quiet --prompt 'a red circle moves right' --frames 6 --device cuda \
  --no-video --noise $W/noise_nan.safetensors --save-latents $W/nan.safetensors 2>&1 | tee $W/nan-run.log
echo "nan run rc=${PIPESTATUS[0]} (expect 1, a line naming renoise_c0_s1); latents file present: $(test -e $W/nan.safetensors && echo yes || echo no)"
python3 - $W/huge.safetensors <<'PY'
import json, struct, sys
values = struct.pack("<%df" % (5 * 64), *([3e38] * (5 * 64)))
header = json.dumps({"context": {"dtype": "F32", "shape": [5, 64], "data_offsets": [0, len(values)]}}).encode()
header += b" " * ((8 - len(header) % 8) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(header)) + header + values)
PY
timeout 120 $C/lightforce generate -m tiny --set model.text_encoder=embeddings --text-embeddings $W/huge.safetensors \
  --quiet --frames 6 --device cuda --no-video --save-latents $W/diverged.safetensors 2>&1 | tee $W/diverged-run.log
echo "diverging run rc=${PIPESTATUS[0]} (expect 1, 'chunk 0: the latents hold a NaN or Inf'); file present: $(test -e $W/diverged.safetensors && echo yes || echo no)"
timeout 120 $C/lightforce generate -m tiny --quiet --prompt 'a red circle moves right' --frames 6 --device cuda \
  --no-video --save-latents /dev/null; echo "/dev/null run rc=$? ; /dev/null is a char device: $(test -c /dev/null && echo yes || echo NO)"
rm -f $W/*.safetensors
