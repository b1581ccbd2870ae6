#!/usr/bin/env bash
# Issue 16 items 1-6 and 8 (attention structure: one block geometry, one backend registry, block-sparse attention
# as an op, shared types at the bottom, speed switches in one struct, kernels/ as a leaf, docs and file splits).
# Behaviour must not change. This run checks it on the GPU machine, from the repository root:
#   1. every test_gpu_* binary (test_gpu_sparse is now three: test_gpu_sparse, _planner, _paths); each must pass;
#   2. latent bytes: `lightforce generate` on the GPU (tiny model, fixed seed, dense and lightforcing-hopper)
#      with --save-latents; with BASE set (a carry of the previous build, e.g. main before the merge) the same
#      commands run with BASE's binary and the sha256 of each latents file must be equal;
#   3. speed: `lightforce bench --json` dense and --attention lightforcing-hopper at 480x832, three rounds
#      (alternating with BASE's binary when given), to compare with bench/results/sparse-run12/ (H100:
#      lightforcing-hopper 1.2615 s, dense 2.013 s DiT).
# Usage (device tool): C=build-gpu/carry [BASE=build-gpu/base] bash bench/results/structure-gpu/run.sh
set -uo pipefail
C=${C:-build-gpu/carry}
BASE=${BASE:-}
out="${OUT:-out}"
W=/tmp/structure-gpu && rm -rf $W && mkdir -p $W
export LF_TEST_TMP=/tmp
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee $W/device.txt
status=0
for test in "$C"/test_gpu_*; do
  name=$(basename "$test")
  timeout 200 "$test" > "$W/$name.log" 2>&1
  rc=$?
  echo "$name rc=$rc"; grep -E "ERROR|FAILED|test cases" "$W/$name.log" | head -5
  [ $rc -eq 0 ] || status=1
done
# Latent bytes of a short GPU generation, per binary and backend.
for bin in "$C" ${BASE:+"$BASE"}; do
  tag=$([ "$bin" = "$C" ] && echo new || echo base)
  for attention in dense lightforcing-hopper; do
    timeout 120 "$bin/lightforce" generate -m tiny --device cuda --seed 7 --attention $attention --quiet \
      --prompt "a red circle moves right" --no-video --save-latents "$W/latents-$tag-$attention.safetensors"
    echo "generate $tag $attention rc=$?"
  done
done
(cd $W && sha256sum latents-*.safetensors | tee latents.sha256)
if [ -n "$BASE" ]; then
  for attention in dense lightforcing-hopper; do
    if cmp -s "$W/latents-new-$attention.safetensors" "$W/latents-base-$attention.safetensors"; then
      echo "latents $attention: identical bytes"
    else
      echo "latents $attention: DIFFER"; status=1
    fi
  done
fi
# Speed: the bench's JSON, three rounds, the two binaries alternating when BASE is given.
for i in 1 2 3; do
  for bin in "$C" ${BASE:+"$BASE"}; do
    tag=$([ "$bin" = "$C" ] && echo new || echo base)
    timeout 90 "$bin/lightforce" bench --sizes 480x832 --attention lightforcing-hopper -q --json \
      > "$W/bench-$tag-hopper-$i.json"; echo "bench $tag hopper $i rc=$?"
    timeout 90 "$bin/lightforce" bench --sizes 480x832 -q --json > "$W/bench-$tag-dense-$i.json"
    echo "bench $tag dense $i rc=$?"
  done
done
for f in $W/bench-*.json; do python3 -c "
import json,sys; d=json.load(open(sys.argv[1])); r=d['rows'][0]
print(sys.argv[1].split('/')[-1], 'dit', round(r['dense_dit_seconds'],4), {k: round(v,2) for k,v in r['op_class_ms'].items()})" $f; done
mkdir -p "$out" && tar czf "$out/structure-gpu.tgz" -C $W .
exit $status
