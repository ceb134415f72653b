"""Build the sample bundled in pccd_hpc/data/sample/ from ../shared/data (run once, output committed).

Usage: python scripts/make_sample.py ../shared/data pccd_hpc/data/sample/structures.csv
"""

from __future__ import annotations

import csv
import random
import sys
from pathlib import Path

from pccd_hpc.io_utils import atomic_write_csv

csv.field_size_limit(sys.maxsize)
TAKE = {"mp_20_sample/train.csv": 240, "carbon_24/train.csv": 40, "perov_5/train.csv": 40}
COLUMNS = ["material_id", "source_set", "band_gap", "formation_energy_per_atom", "e_above_hull", "cif"]


def main(shared: Path, out: Path) -> None:
    rng = random.Random(20261125)
    rows = []
    for name, n in TAKE.items():
        with open(shared / name, newline="") as fh:
            data = list(csv.DictReader(fh))
        for row in rng.sample(data, n):
            gap = row.get("band_gap", row.get("ind_gap", ""))
            rows.append({
                "material_id": row["material_id"] if name.startswith("mp") else f"{name.split('/')[0]}-{row['material_id']}",
                "source_set": name,
                "band_gap": gap,
                "formation_energy_per_atom": row.get("formation_energy_per_atom", ""),
                "e_above_hull": row.get("e_above_hull", ""),
                "cif": row["cif"],
            })
    atomic_write_csv(out, rows, COLUMNS)
    print(f"wrote {len(rows)} rows to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
