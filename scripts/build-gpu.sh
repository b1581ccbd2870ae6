#!/usr/bin/env bash
# Builds the CUDA binary that runs on the GPU machine (which has no FFmpeg/OpenCV and yaml-cpp 0.8): FFmpeg and
# OpenCV off, yaml-cpp static. Output: build-gpu/ (lightforce, tests/test_gpu_*, kernels/lab_*, the C ABI .so).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DLF_CUDA=ON -DLF_CUDA_ARCHS="${LF_CUDA_ARCHS:-90a}" \
  -DLF_WITH_FFMPEG=OFF -DLF_WITH_OPENCV=OFF -DLF_STATIC_YAML=ON >/dev/null
targets=(lightforce)
for target in $(ninja -C build-gpu -t targets all | grep -oE '^(test_gpu_[a-z0-9_]+|lab_[a-z0-9_]+|lf_kernels_capi):' | tr -d ':' | sort -u); do
  targets+=("$target")
done
ninja -C build-gpu "${targets[@]}"
# Only what the GPU machine needs travels (the carry limit is 64 MiB).
rm -rf build-gpu/carry && mkdir -p build-gpu/carry
cp build-gpu/lightforce build-gpu/carry/
find build-gpu/tests build-gpu/kernels -maxdepth 1 -type f \( -name 'test_gpu_*' -o -name 'lab_*' -o -name '*.so' \) \
  -perm -u+x -exec cp {} build-gpu/carry/ \; 2>/dev/null || true
cp build-gpu/kernels/*.so build-gpu/carry/ 2>/dev/null || true
# The tokenizer: our SentencePiece shim (found beside the executable) and Debian's libsentencepiece, which the
# GPU machine lacks (the shim's RPATH is $ORIGIN).
cp build-gpu/liblf_sentencepiece_shim.so build-gpu/carry/
cp -L "$(pkg-config --variable=libdir sentencepiece)/libsentencepiece.so.0" build-gpu/carry/
du -sh build-gpu/carry
