"""Calibration of the stability verdict on real phases no one here trained on.

    python benchmarks/hull_calibration.py --out RUNDIR [--n 300] [--data ../shared/data/mp_20/val.csv.gz]

Takes ``--n`` structures of the held-out split of MP-20's validation set (``pccd_hpc/data/heldout``,
seeded choice, every chemistry), runs ``validate`` on them exactly as a user would with no flag
(CHGNet relaxation, MP-20 DFT hull, shipped element energies) into ``RUNDIR`` (resumable), and
prints one JSON line: the share of E_hull in [-0.10, +0.15] eV/atom (every MP-20 entry lies within
0.08 eV/atom of the Materials Project hull, so a sound pipeline puts them near 0), how many got no
hull, the formation-energy error against Materials Project (MAE, RMSE) and the extremes.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

from pccd_hpc.data.heldout_split import heldout_ids
from pccd_hpc.validate.config import ValidateConfig
from pccd_hpc.validate.stage import ValidatePaths, run_validate
from pccd_hpc.records import read_results_csv

csv.field_size_limit(sys.maxsize)
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mp_20" / "val.csv.gz"
WINDOW_EV = (-0.10, 0.15)


def write_heldout_sample(data: Path, n: int, seed: int, target: Path) -> dict[str, float]:
    """Write ``n`` seeded held-out rows as a CSV (material_id, cif); return their MP formation energies."""
    held = heldout_ids()
    with gzip.open(data, "rt", newline="") as fh:
        rows = sorted((r for r in csv.DictReader(fh) if r["material_id"] in held), key=lambda r: r["material_id"])
    rows = random.Random(seed).sample(rows, min(n, len(rows)))
    if not target.exists():
        with open(target, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["material_id", "cif"], extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    return {r["material_id"]: float(r["formation_energy_per_atom"]) for r in rows}


def summarise(rows: list[dict], dft: dict[str, float]) -> dict:
    """The calibration figures of a finished validate run."""
    e_hull = np.array([r["e_above_hull_ev_per_atom"] for r in rows if r["e_above_hull_ev_per_atom"] is not None])
    pairs = [(r["formation_energy_ev_per_atom"], dft[r["id"]]) for r in rows
             if r.get("formation_energy_ev_per_atom") is not None and r["id"] in dft]
    err = np.array([a - b for a, b in pairs])
    in_window = (e_hull >= WINDOW_EV[0]) & (e_hull <= WINDOW_EV[1])
    worst = sorted(((r["e_above_hull_ev_per_atom"], r["id"], r["formula"]) for r in rows
                    if r["e_above_hull_ev_per_atom"] is not None), key=lambda t: -abs(t[0]))[:5]
    return {"n": len(rows), "with_e_hull": int(e_hull.size),
            "no_hull": sum(1 for r in rows if r["hull_status"] == "no_hull"),
            "failed_or_unphysical": sum(1 for r in rows if r["hull_status"] in ("failed", "unphysical")),
            "share_in_window_of_all": round(float(in_window.sum()) / max(len(rows), 1), 4),
            "share_in_window_of_scored": round(float(in_window.mean()), 4) if e_hull.size else None,
            "below_window": int((e_hull < WINDOW_EV[0]).sum()), "above_window": int((e_hull > WINDOW_EV[1]).sum()),
            "median_e_hull": round(float(np.median(e_hull)), 4) if e_hull.size else None,
            "formation_mae_ev_per_atom": round(float(np.abs(err).mean()), 4) if err.size else None,
            "formation_rmse_ev_per_atom": round(float(np.sqrt((err**2).mean())), 4) if err.size else None,
            "largest_e_hull": [[round(e, 3), i, f] for e, i, f in worst]}


def main() -> None:
    """Run (or resume) the calibration run and print its figures."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sample = args.out / f"heldout-{args.n}-seed{args.seed}.csv"
    dft = write_heldout_sample(args.data, args.n, args.seed, sample)
    start = time.perf_counter()
    run_validate(ValidateConfig(workers=args.workers), ValidatePaths(input=sample, out_dir=args.out / "validate"))
    rows = read_results_csv(args.out / "validate" / "results.csv")
    metrics = json.loads((args.out / "validate" / "metrics.json").read_text())
    print(json.dumps({"benchmark": "hull calibration, held-out MP-20 phases, no flags", "wall_s": round(time.perf_counter() - start, 1),
                      "load_avg_1min": round(os.getloadavg()[0], 2), "energy_scale": metrics.get("energy_scale"),
                      "hull": metrics.get("hull_reference"), **summarise(rows, dft)}), flush=True)


if __name__ == "__main__":
    main()
