#!/usr/bin/env bash
# The testbed fidelity table (docs/testbed.md): every sparse backend at about 10 / 20 / 30 % density against dense
# on the built-in testbed model, CPU, recall on every 4th query row (RECALL_STRIDE=1: exact, much slower); then the
# prompt-following rate of each backend at ~20 % density.
#   bench/testbed/fidelity.sh [OUT_DIR]     (default bench/results/testbed-fidelity; ~30 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-bench/results/testbed-fidelity}"
bin="${BIN:-build/lightforce}"
prompt="${PROMPT:-a white circle falls}"
mkdir -p "$out"
sweep() {  # name, preset, sweep axis, extra flags...
  local name=$1 preset=$2 axis=$3
  shift 3
  "$bin" compare-dense -q --device cpu --prompt "$prompt" --attention "$preset" "$@" --recall-row-stride "${RECALL_STRIDE:-4}" \
    --sweep "$axis" --out-dir "$out/$name"
}
sweep lightforcing lightforcing-short attention.sparsity=0.9,0.8,0.7
sweep block-topk block-topk attention.sparsity=0.9,0.8,0.7
sweep block-topp block-topp attention.top_p=0.5,0.7,0.85
sweep sliding-tile sliding-tile attention.window_blocks=1,2,3 --set attention.window_frames=0
sweep radial radial attention.radial_window_blocks=1,2,4
# Prompt following over the 16 evaluation prompts (seed 0) at ~20 % density, and dense for reference.
check() {  # name, preset, overrides...
  local name=$1 preset=$2
  shift 2
  "$bin" check-prompts -q --device cpu --seeds 1 --attention "$preset" "$@" --out "$out/prompts-$name.json"
}
check dense dense
check lightforcing lightforcing-short --set attention.sparsity=0.8
check block-topk block-topk --set attention.sparsity=0.8
check block-topp block-topp --set attention.top_p=0.7
check sliding-tile sliding-tile --set attention.window_frames=0 --set attention.window_blocks=2
check radial radial --set attention.radial_window_blocks=2
echo "wrote $out"
