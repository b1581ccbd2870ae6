#!/usr/bin/env bash
# A Slurm job array running one `lightforce batch` shard per task, one GPU each (docs/batch.md).
#
#   sbatch --array=0-15 scripts/slurm-batch.sh PROMPTS OUT_DIR [extra lightforce batch flags...]
#   lightforce merge-manifests -o OUT_DIR/merged.jsonl OUT_DIR          # when every task is done
#
# The shard count is the array's size, so --array=0-15 splits the entries 16 ways (entry i goes to task i mod 16).
# OUT_DIR must be on a file system every node sees; each task writes its own manifest there. A task that fails or is
# pre-empted is resubmitted alone (sbatch --array=7 ...; keep the same 0-15 count through LF_SHARDS=16) and resumes
# where it stopped. Model flags go after OUT_DIR, e.g.:
#   sbatch --array=0-15 scripts/slurm-batch.sh prompts.jsonl /shared/eval -m wan2.1-t2v-1.3b \
#     -w /shared/self_forcing_dmd.pt --model-dir /shared/Wan2.1-T2V-1.3B
#SBATCH --job-name=lightforce-batch
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --time=12:00:00
#SBATCH --requeue
#SBATCH --output=slurm-%A_%a.out
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: sbatch --array=0-N scripts/slurm-batch.sh PROMPTS OUT_DIR [lightforce batch flags...]" >&2
  exit 2
fi
prompts=$1
out_dir=$2
shift 2
: "${SLURM_ARRAY_TASK_ID:?run this through sbatch --array=...}"
# A resubmitted single task has SLURM_ARRAY_TASK_COUNT 1: LF_SHARDS keeps the original split.
shards=${LF_SHARDS:-${SLURM_ARRAY_TASK_COUNT:?}}
lightforce=${LIGHTFORCE:-lightforce}

# Slurm gives the task one GPU and hides the others (CUDA_VISIBLE_DEVICES), so it is cuda:0 inside the task
# (LF_DEVICE=cpu tries the script on a machine without a GPU).
device=${LF_DEVICE:-cuda:0}
# Exit code 3 (some entries failed, the rest done) is not a reason to requeue: the manifest says which failed.
status=0
"$lightforce" batch --prompts "$prompts" --out-dir "$out_dir" --shard "$SLURM_ARRAY_TASK_ID/$shards" \
  --device "$device" --quiet "$@" || status=$?
if [ "$status" -eq 3 ]; then
  echo "lightforce batch: shard $SLURM_ARRAY_TASK_ID/$shards finished with failed entries (see $out_dir)" >&2
  exit 0
fi
exit "$status"
