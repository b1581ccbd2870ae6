#!/usr/bin/env bash
# Installs lightforce's build dependencies from Debian 12 packages (idempotent, non-interactive) and builds it.
#   scripts/setup.sh              install + configure + build into ./build
#   LF_BUILD_DIR=dir scripts/setup.sh   another build directory
#   LF_CMAKE_ARGS="-DLF_SANITIZE=ON" scripts/setup.sh   extra CMake options
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config git
  libcxxopts-dev libyaml-cpp-dev libfmt-dev doctest-dev nlohmann-json3-dev
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev
  libopencv-dev
  ffmpeg  # ffprobe: test_stream pipes `generate -o -` into it
  chromium  # test_html_report opens the --report html pages headless (docs/reports.md)
  libsentencepiece-dev
  clang libclang-rt-14-dev libomp-dev  # the fuzz harnesses (tests/fuzz, -DLF_FUZZ=ON; docs/fuzzing.md)
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

build_dir="${LF_BUILD_DIR:-build}"
# shellcheck disable=SC2086
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release ${LF_CMAKE_ARGS:-} >/dev/null
cmake --build "$build_dir"
echo "setup: built $build_dir/lightforce"
