#!/usr/bin/env bash
# 2026-12-07, session 16, third GPU call: the umT5 tiled attention with P written over S (114dfb3, c21) beside c20
# (2902379) and the official Wan encoder: test_gpu_umt5 of c21, then 512-token encodes c20 / c21 / official, twice.
# Carry build-gpu/c20.tar.xz, build-gpu/c21.tar.xz and build-gpu/wan_t5.py; one archive back.
set -uo pipefail
mkdir -p build-gpu && tar xJf build-gpu/c20.tar.xz -C build-gpu && tar xJf build-gpu/c21.tar.xz -C build-gpu
export W=/tmp/gpu6 && mkdir -p $W
save() { tar czf $OUT/run.tgz -C $W . 2>/dev/null; }
export LF_TEST_TMP=/tmp LF_FIXTURES_DIR=$PWD/tests/fixtures
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee $W/device.txt
LD_LIBRARY_PATH=$PWD/build-gpu/c21 timeout 200 build-gpu/c21/test_gpu_umt5 -s > $W/test_gpu_umt5.log 2>&1; echo "test_gpu_umt5 rc=$?"
grep -E "ERROR|FAILED|test cases" $W/test_gpu_umt5.log | head -6; grep -hE "MESSAGE: .*rel-L2" $W/test_gpu_umt5.log | sed 's/.*MESSAGE: //'
save
for i in 1 2; do
  for c in c20 c21; do
    LD_LIBRARY_PATH=$PWD/build-gpu/$c timeout 200 build-gpu/$c/lightforce bench --sizes none --text-encoder umt5-xxl --tokens 512 --repeat 10 -q --out $W/bench-512-$c-$i.json
    python3 -c "import json; d=json.load(open('$W/bench-512-$c-$i.json'))['text_encoder']; print('$c $i umt5 median ms', round(d['median_encode_ms'],2), 'op ms', {k: round(v,2) for k,v in d['op_class_ms_per_encode'].items()})"
  done
  timeout 200 python3 bench/official_umt5_time.py --wan-t5 build-gpu/wan_t5.py --tokens 512 --out $W/official-512-$i.json 2>&1 | tail -1
  save
done
echo done
