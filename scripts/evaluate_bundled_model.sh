#!/usr/bin/env bash
# The one evaluation of the bundled model (or any checkpoint) on the shipped held-out split:
# de novo quality over the held-out chemical systems (validity, plausibility, SMACT, uniqueness,
# COV-R/COV-P, Wasserstein distances), reconstruction at t = 300 and t = T on held-out items and
# t = T on training items, wall time of each part. Writes EDIR/evaluate.json and EDIR/evaluate.md.
#
# Usage: bash scripts/evaluate_bundled_model.sh [CHECKPOINT [EDIR [EVALUATE_OPTION ...]]]
#   CHECKPOINT  default pccd_hpc/weights/pccd-cpu.pt
#   EDIR        default runs/bundled/eval
#   further arguments go to `evaluate` unchanged (e.g. --skip-coverage, --steps 20)
# Environment: SHARED_DATA (default ../shared/data), DATA (default runs/bundled: heldout-shards and
# train-shards are made there from SHARED_DATA when missing), N_SAMPLES (1000), N_RECONSTRUCT (1280),
# N_TRAIN_RECONSTRUCT (256), THREADS (torch threads; default torch's choice).
# Re-running the same command resumes: finished parts with the same checkpoint and settings are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
CKPT=${1:-pccd_hpc/weights/pccd-cpu.pt}
EDIR=${2:-runs/bundled/eval}
shift $(( $# < 2 ? $# : 2 ))
SHARED=${SHARED_DATA:-../shared/data}
DATA=${DATA:-runs/bundled}
PY=${PYTHON:-python}

if [ ! -f "$DATA/heldout-shards/manifest.json" ] || [ ! -f "$DATA/train-shards/manifest.json" ]; then
  "$PY" scripts/prepare_bundled_data.py "$SHARED" "$DATA"
  "$PY" -m pccd_hpc.launch encode --input "$DATA/heldout.csv" --out "$DATA/heldout-shards" > /dev/null
  "$PY" -m pccd_hpc.launch encode --input "$DATA/train.csv" --out "$DATA/train-shards" > /dev/null
fi

args=(evaluate --checkpoint "$CKPT" --data "$DATA/heldout-shards" --train-data "$DATA/train-shards" --out "$EDIR"
      --n-samples "${N_SAMPLES:-1000}" --n-reconstruct "${N_RECONSTRUCT:-1280}"
      --n-train-reconstruct "${N_TRAIN_RECONSTRUCT:-256}")
if [ -n "${THREADS:-}" ]; then args+=(--threads "$THREADS"); fi
"$PY" -m pccd_hpc.launch "${args[@]}" "$@"
echo "page: $EDIR/evaluate.md"
