#!/usr/bin/env bash
# Train the default design (DiT, v-prediction, min-SNR, canonical order) on one GPU for ~10 minutes and
# export it: one folder with the run, the exported model, its card data and throughput.
#
#   bash scripts/train_gpu.sh TRAIN_SHARDS OUT_DIR [EXTRA train ARGS...]
#
# TRAIN_SHARDS: a folder from `python -m pccd_hpc.launch encode` (e.g. runs/bundled/train-shards made by
# scripts/build_bundled_model.sh). The `dit-gpu` preset: batch 1024 built and augmented on the GPU
# (train.device_batches), bf16 autocast, cosine decay over 8000 steps, a 10-minute wall-clock budget
# (train.max_minutes; running the script again continues the run). Output:
#   OUT_DIR/run/            checkpoints, metrics.jsonl (samples_per_s per log row), config.toml
#   OUT_DIR/model.pt        float16 EMA weights + config + codec (what generate/evaluate load), model.json
#   OUT_DIR/throughput.json median samples/s over the run
# Needs torch with CUDA, h5py, scikit-learn, numpy and pymatgen (see docs/install.md: A cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARDS=${1:?usage: train_gpu.sh TRAIN_SHARDS OUT_DIR [train args]}
OUT=${2:?usage: train_gpu.sh TRAIN_SHARDS OUT_DIR [train args]}
shift 2
PY=${PYTHON:-python}
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible')"
mkdir -p "$OUT"
"$PY" -m pccd_hpc.launch train --data "$SHARDS" --out "$OUT/run" --preset dit-gpu "$@"
"$PY" scripts/export_model.py "$OUT/run" "$OUT/model.pt" --float16
"$PY" - "$OUT" <<'PY'
import json, statistics, sys, pathlib
out = pathlib.Path(sys.argv[1])
rows = [json.loads(l) for l in (out / "run" / "metrics.jsonl").read_text().splitlines() if l.strip()]
rates = [r["samples_per_s"] for r in rows[1:]] or [r["samples_per_s"] for r in rows]
summary = {"steps": rows[-1]["step"], "median_samples_per_s": statistics.median(rates), "final_loss": rows[-1]["loss"]}
(out / "throughput.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary))
PY
