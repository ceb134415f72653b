#!/usr/bin/env bash
# Evaluate a checkpoint the way the model card reports it (default: the bundled model).
# Usage: bash scripts/evaluate_bundled_model.sh [CHECKPOINT] [OUT_DIR]
# Needs runs/bundled/{train,heldout}-shards from scripts/build_bundled_model.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
CKPT=${1:-pccd_hpc/weights/pccd-cpu.pt}
OUT=${2:-runs/bundled/eval}
mkdir -p "$OUT"
run() { python -m pccd_hpc.launch --log-level WARNING "$@"; }
for t in 300 1000; do
  run reconstruct --checkpoint "$CKPT" --data runs/bundled/heldout-shards --n 1280 --t "$t" --label held-out --out "$OUT/rec-heldout-t$t" > /dev/null
  run reconstruct --checkpoint "$CKPT" --data runs/bundled/train-shards --n 256 --t "$t" --label training --out "$OUT/rec-train-t$t" > /dev/null
done
python - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
print(f"{'run':22s} {'protocol':18s} {'n':>5s} {'valid%':>7s} {'count%':>7s} {'match%':>7s}  a/b/c box%           x/y/z box%")
for path in sorted(out.glob("rec-*/reconstruct.json")):
    m = json.loads(path.read_text())
    b = m["box_fraction_pct"]
    print(f"{path.parent.name:22s} {m['protocol']:18s} {m['n']:5d} {100*m['valid_fraction']:7.1f} {m['atom_count_accuracy_pct']:7.1f} "
          f"{m['match_rate_pct']:7.1f}  {b['a']:5.1f}/{b['b']:5.1f}/{b['c']:5.1f}    {b['x']:5.1f}/{b['y']:5.1f}/{b['z']:5.1f}")
print("paper (t = T, training set)                  67.8            88.5/ 90.6/ 89.4    70.8/ 71.6/ 72.0")
PY
