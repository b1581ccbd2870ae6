#!/usr/bin/env bash
# Runs every libFuzzer harness of tests/fuzz, one after the other, each on a corpus seeded from tests/fixtures.
#
#   tests/fuzz/run.sh [--runs N] [--seconds S] [--only "NAME ..."]  (default --runs 1000000; docs/fuzzing.md)
#
# Builds build-fuzz (clang, -DLF_FUZZ=ON) if needed. Per harness it prints "name executions crashes seconds";
# logs go to build-fuzz/fuzz-logs/, crashing inputs to build-fuzz/fuzz-crashes/ (turn each into a file under
# tests/fixtures/fuzz-regressions/<harness>/, replayed by test_fuzz_regressions). Exits non-zero on any finding.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=1000000
runs_given=""
seconds=""
only=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) runs="$2"; runs_given=1; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    *) echo "usage: tests/fuzz/run.sh [--runs N] [--seconds S] [--only NAME]" >&2; exit 2 ;;
  esac
done
# --seconds alone: a time budget; --runs and --seconds together: whichever ends first.
[[ -n $seconds && -z $runs_given ]] && runs=""
budget=()
[[ -n $runs ]] && budget+=(-runs="$runs")
[[ -n $seconds ]] && budget+=(-max_total_time="$seconds")
build=${LF_FUZZ_BUILD_DIR:-build-fuzz}
if [[ ! -f $build/build.ninja ]]; then
  CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLF_FUZZ=ON -DLF_CUDA=OFF \
    -DLF_WITH_FFMPEG=OFF -DLF_WITH_OPENCV=OFF -DBUILD_TESTING=OFF >/dev/null
fi
harnesses=(fuzz_pickle fuzz_checkpoint fuzz_safetensors fuzz_zip fuzz_config fuzz_noise fuzz_text_embeddings)
[[ -n $only ]] && read -ra harnesses <<< "$only"  # --only "fuzz_zip fuzz_pickle"
ninja -C "$build" "${harnesses[@]}" >/dev/null

fixtures=tests/fixtures
corpus_root=$build/fuzz-corpus
mkdir -p "$corpus_root" "$build/fuzz-logs" "$build/fuzz-crashes"
seed() {  # seed HARNESS FILES...: copies seeds into the harness's corpus (kept between runs)
  local dir=$corpus_root/$1
  shift
  mkdir -p "$dir"
  for file in "$@"; do cp -n "$file" "$dir/" 2>/dev/null || true; done
}
# The pickles inside the .pt fixtures, extracted with Python's zipfile (data.pkl of each archive).
pickles=$corpus_root/.pickles
mkdir -p "$pickles"
/usr/bin/python3 - "$fixtures/io" "$pickles" <<'PY'
import pathlib, sys, zipfile
source, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for path in sorted(source.glob("*.pt")):
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith("/data.pkl"):
                    (target / (path.stem + ".pkl")).write_bytes(archive.read(name))
    except (zipfile.BadZipFile, KeyError, OSError, NotImplementedError):
        pass  # the damaged fixtures: seeds for the zip harnesses only
PY
seed fuzz_pickle "$pickles"/*.pkl "$fixtures"/io/*.pkl
seed fuzz_checkpoint "$fixtures"/io/* tests/fuzz/seeds/noise/* tests/fuzz/seeds/text_embeddings/*
seed fuzz_safetensors "$fixtures"/io/*.safetensors tests/fuzz/seeds/noise/* tests/fuzz/seeds/text_embeddings/*
seed fuzz_zip "$fixtures"/io/*.pt
seed fuzz_config configs/models/*.yaml configs/attention/*.yaml tests/fuzz/seeds/config/*
seed fuzz_noise tests/fuzz/seeds/noise/*
seed fuzz_text_embeddings tests/fuzz/seeds/text_embeddings/*
for harness in fuzz_pickle fuzz_checkpoint fuzz_safetensors fuzz_zip fuzz_config fuzz_noise fuzz_text_embeddings; do
  # Regression inputs join the corpus too, so each run starts from every input that once crashed.
  [[ -d $fixtures/fuzz-regressions/$harness ]] && seed "$harness" "$fixtures/fuzz-regressions/$harness"/*
done

status=0
printf '%-22s %12s %8s %8s\n' harness executions crashes seconds
for harness in "${harnesses[@]}"; do
  extra=()
  [[ $harness == fuzz_safetensors || $harness == fuzz_checkpoint ]] && extra=(-dict=tests/fuzz/safetensors.dict)
  log=$build/fuzz-logs/$harness.log
  started=$(date +%s)
  # -max_len 16384: every seed is smaller; -timeout 10 s per input and -rss_limit_mb 2048 turn hangs and runaway
  # allocations into findings; leak detection is on (ASan's default).
  if "$build/tests/fuzz/$harness" "${budget[@]}" -max_len=16384 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$build/fuzz-crashes/$harness-" "${extra[@]}" "$corpus_root/$harness" >"$log" 2>&1; then
    crashes=0
  else
    crashes=1
    status=1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  printf '%-22s %12s %8s %8s\n' "$harness" "$runs" "$crashes" "$(( $(date +%s) - started ))"
done
exit $status
