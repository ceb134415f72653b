#!/usr/bin/env bash
# The recipe of the bundled model (pccd_hpc/weights/pccd-cpu.pt); see docs/experiments/bundled-model-recipe.md.
# Usage: bash scripts/build_bundled_model.sh [SHARED_DATA_DIR] [MAX_STEPS]
# Nine stages: recipe E for MAX_STEPS (default 6000, the length of its cosine learning-rate schedule), then
# a 3,000-step fine-tune of its last checkpoint with pccd-cpu.finetune.toml (the ablation's G0), then 5,000
# more steps from that with the same TOML and --max-steps 5000 (the ablation's G1), then 5,000 more with
# min-SNR's cap raised to 20 (pccd-cpu.finetune-gamma20.toml, the ablation's G2g), then 5,000 more with the
# cap at 100 (pccd-cpu.finetune-gamma100.toml, G3), then 2,500 more with the same TOML (G4), then 4,000 more
# with the number of sites added as a condition (pccd-cpu.finetune-sites.toml, S), then 5,000 more with the
# same TOML and --max-steps 5000 (S3), then 4,000 more at half the learning rate with a longer weight average
# (pccd-cpu.finetune-anneal.toml, S4), exported.
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
python -m pccd_hpc.launch train --data "$OUT/train-shards" --out "$OUT/run-finetune" --preset cpu --seed 0 \
    --config pccd_hpc/weights/pccd-cpu.finetune.toml --init-from "$OUT/run"
python -m pccd_hpc.launch train --data "$OUT/train-shards" --out "$OUT/run-finetune2" --preset cpu --seed 0 \
    --config pccd_hpc/weights/pccd-cpu.finetune.toml --max-steps 5000 --init-from "$OUT/run-finetune"
python -m pccd_hpc.launch train --data "$OUT/train-shards" --out "$OUT/run-finetune3" --preset cpu --seed 0 \
    --config pccd_hpc/weights/pccd-cpu.finetune-gamma20.toml --init-from "$OUT/run-finetune2"
python -m pccd_hpc.launch train --data "$OUT/train-shards" --out "$OUT/run-finetune4" --preset cpu --seed 0 \
    --config pccd_hpc/weights/pccd-cpu.finetune-gamma100.toml --init-from "$OUT/run-finetune3"
python -m pccd_hpc.launch train --data "$OUT/train-shards" --out "$OUT/run-finetune5" --preset cpu --seed 0 \
    --config pccd_hpc/weights/pccd-cpu.finetune-gamma100.toml --max-steps 2500 --init-from "$OUT/run-finetune4"
python -m pccd_hpc.launch train --data "$OUT/train-shards" --out "$OUT/run-finetune6" --preset cpu --seed 0 \
    --config pccd_hpc/weights/pccd-cpu.finetune-sites.toml --init-from "$OUT/run-finetune5"
python -m pccd_hpc.launch train --data "$OUT/train-shards" --out "$OUT/run-finetune7" --preset cpu --seed 0 \
    --config pccd_hpc/weights/pccd-cpu.finetune-sites.toml --max-steps 5000 --init-from "$OUT/run-finetune6"
python -m pccd_hpc.launch train --data "$OUT/train-shards" --out "$OUT/run-finetune8" --preset cpu --seed 0 \
    --config pccd_hpc/weights/pccd-cpu.finetune-anneal.toml --init-from "$OUT/run-finetune7"
python scripts/export_model.py "$OUT/run-finetune8" "$OUT/pccd-cpu.pt"
