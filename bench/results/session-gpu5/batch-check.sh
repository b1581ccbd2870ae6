#!/usr/bin/env bash
# batch --device cuda:N on the GPU machine (helper-written check, run in session-gpu5): cuda:0 works, cuda:1 is refused
# on a one-GPU machine, batch bytes == generate bytes on the GPU, resume skips, two shards on one GPU + merge.
set -u
C=build-gpu/c20; export LD_LIBRARY_PATH=$PWD/$C LF_TEXT_CACHE=off; L=$C/lightforce; T=/tmp/b
mkdir -p $T; nvidia-smi -L
printf 'a red circle moves right\na blue square falls\na green triangle moves left\n' > $T/p.txt
echo "== tiny batch cuda:0"; $L batch -m tiny --frames 3 --prompts $T/p.txt --out-dir $T/g0 --device cuda:0 --no-video --save-latents --save-summary --json; echo rc=$?
grep -o '"device": "[^"]*"' $T/g0/00001-a-blue-square-falls.json
echo "== cuda:1 on this machine"; $L batch -m tiny --frames 3 --prompts $T/p.txt --out-dir $T/g1 --device cuda:1 --no-video --save-latents; echo rc=$?; ls $T/g1 2>&1
echo "== cuda:x"; $L batch -m tiny --prompts $T/p.txt --out-dir $T/g1 --device cuda:x --no-video --save-latents; echo rc=$?
echo "== video on a no-ffmpeg build"; $L batch -m tiny --frames 3 --prompts $T/p.txt --out-dir $T/g2 --device cuda:0; echo rc=$?
echo "== generate, same entry"; $L generate -m tiny --frames 3 --seed 1 --prompt 'a blue square falls' --device cuda:0 --no-video --save-latents $T/gen.st -q; echo rc=$?
sha256sum $T/gen.st $T/g0/00001-a-blue-square-falls.latents.safetensors
echo "== testbed batch vs generate on cuda"; $L batch --frames 3 --seed 5 --prompts $T/p.txt --out-dir $T/t0 --device cuda --no-video --save-latents -q; echo rc=$?
$L generate --frames 3 --seed 7 --prompt 'a green triangle moves left' --device cuda --no-video --save-latents $T/tgen.st -q
sha256sum $T/tgen.st $T/t0/00002-a-green-triangle-moves-left.latents.safetensors
echo "== resume"; $L batch --frames 3 --seed 5 --prompts $T/p.txt --out-dir $T/t0 --device cuda:0 --no-video --save-latents 2>&1 | tail -4
echo "== same dir on the cpu: the key holds the device"; $L batch --frames 3 --seed 5 --prompts $T/p.txt --out-dir $T/t0 --device cpu --no-video --save-latents 2>&1 | tail -1
echo "== two shards, two processes on cuda:0"; for s in 0 1; do $L batch -m tiny --frames 3 --prompts $T/p.txt --out-dir $T/s --shard $s/2 --device cuda:0 --no-video --save-latents -q & done; wait
$L merge-manifests -o $T/s/merged.jsonl $T/s; echo rc=$?
cp $T/t0/manifest.jsonl $W/testbed-manifest.jsonl 2>/dev/null
