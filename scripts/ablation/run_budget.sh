#!/usr/bin/env bash
# run_budget.sh NAME MINUTES PRESET TOML MAX_STEPS: one ablation candidate, trained for at most MINUTES of wall time
# (TOML e.g. scripts/ablation/E-unet-recipe.toml; runs go to ABL_DIR, default runs/ablation; shards in
# TRAIN_SHARDS, default runs/bundled/train-shards). Example: bash scripts/ablation/run_budget.sh E 30 cpu scripts/ablation/E-unet-recipe.toml 700
set -u
name=$1; minutes=$2; preset=$3; toml=$4; steps=$5
cd "$(dirname "$0")/../.."
mkdir -p "${ABL_DIR:-runs/ablation}"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
start=$(date +%s)
timeout $((minutes*60)) .venv/bin/python -m pccd_hpc.launch train --data "${TRAIN_SHARDS:-runs/bundled/train-shards}" \
  --out "${ABL_DIR:-runs/ablation}"/$name --preset $preset --config "$toml" --max-steps $steps --seed 0 \
  > "${ABL_DIR:-runs/ablation}"/$name.log 2>&1
echo "rc=$? wall_s=$(( $(date +%s) - start ))" >> "${ABL_DIR:-runs/ablation}"/$name.log
