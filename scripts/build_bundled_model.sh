#!/usr/bin/env bash
# The recipe of the bundled model (pccd_hpc/weights/pccd-cpu.pt); see pccd_hpc/weights/MODEL_CARD.md.
# Usage: bash scripts/build_bundled_model.sh [SHARED_DATA_DIR] [MAX_STEPS]
# MAX_STEPS (default 6000) is the length of the cosine learning-rate schedule; the shipped model is the
# step-5500 checkpoint of such a run (the run was ended there), so this recipe trains 500 steps further.
# Re-running resumes: encode keeps finished shards, train continues from its last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${1:-../shared/data}
STEPS=${2:-6000}
OUT=runs/bundled
python scripts/prepare_bundled_data.py "$SHARED" "$OUT"
python -m pccd_hpc.launch encode --input "$OUT/train.csv" --out "$OUT/train-shards"
python -m pccd_hpc.launch encode --input "$OUT/heldout.csv" --out "$OUT/heldout-shards"
python -m pccd_hpc.launch train --data "$OUT/train-shards" --out "$OUT/run" --preset cpu --seed 0 \
    --config pccd_hpc/weights/pccd-cpu.train.toml --max-steps "$STEPS"
python scripts/export_model.py "$OUT/run" "$OUT/pccd-cpu.pt"
