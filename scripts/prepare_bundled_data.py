"""Assemble the training and held-out CSVs for the bundled model from ../shared/data.

Held-out: the MP-20 validation rows whose material id is in the shipped list
``pccd_hpc/data/heldout/mp20_val_heldout_ids.txt`` (10 % of MP-20 validation by id, see
``scripts/make_heldout_split.py``). Training: MP-20 sample (train split), MP-20 validation split,
MPTS-52 validation split and Perov-5, deduplicated by material_id, without any held-out id.
The encode stage then filters both to PCCD's limits (<= 16 sites, <= 3 elements).

Usage: python scripts/prepare_bundled_data.py ../shared/data OUT_DIR
"""

from __future__ import annotations

import csv
import gzip
import sys
from pathlib import Path

from pccd_hpc.data.heldout_split import heldout_ids
from pccd_hpc.io_utils import atomic_write_csv

csv.field_size_limit(sys.maxsize)
TRAIN_SETS = ("mp_20_sample/train.csv", "mp_20/val.csv.gz", "mpts_52/val.csv.gz", "perov_5/train.csv")
HELD_OUT_SOURCE = "mp_20/val.csv.gz"
COLUMNS = ["material_id", "source_set", "band_gap", "cif"]


def _rows(path: Path) -> list[dict]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", newline="") as fh:
        return list(csv.DictReader(fh))


def _row(row: dict, name: str) -> dict:
    mid = row["material_id"] if not name.startswith("perov") else f"perov_5-{row['material_id']}"
    return {"material_id": mid, "source_set": name, "band_gap": row.get("band_gap", row.get("ind_gap", "")), "cif": row["cif"]}


def main(shared: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    held_ids = heldout_ids()
    held = [_row(r, HELD_OUT_SOURCE) for r in _rows(shared / HELD_OUT_SOURCE) if r["material_id"] in held_ids]
    seen, train = set(held_ids), []
    for name in TRAIN_SETS:
        for raw in _rows(shared / name):
            row = _row(raw, name)
            if row["material_id"] not in seen:
                seen.add(row["material_id"])
                train.append(row)
    for rows, fname in ((train, "train.csv"), (held, "heldout.csv")):
        atomic_write_csv(out / fname, rows, COLUMNS)
        print(f"{out / fname}: {len(rows)} rows")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
