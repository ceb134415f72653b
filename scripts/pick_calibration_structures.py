"""Pick MP-20 validation-split structures (never the held-out split) to fit element reference energies.

    python scripts/pick_calibration_structures.py ../shared/data/mp_20/val.csv.gz fit.csv [--per-element 20] [--total 1600]

Rows are shuffled with a fixed seed; a row is taken while one of its elements has fewer than
``--per-element`` structures, then random rows fill up to ``--total``. Writes material_id,
formation_energy_per_atom and cif.
"""

from __future__ import annotations

import argparse
import ast
import csv
import gzip
import random
import sys
from collections import Counter
from pathlib import Path

from pccd_hpc.data.heldout_split import heldout_ids

csv.field_size_limit(sys.maxsize)


def main() -> None:
    """Select and write the fit set."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("val_csv", type=Path)
    p.add_argument("out_csv", type=Path)
    p.add_argument("--per-element", type=int, default=20)
    p.add_argument("--total", type=int, default=1600)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    held = heldout_ids()
    with gzip.open(args.val_csv, "rt", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["material_id"] not in held]
    random.Random(args.seed).shuffle(rows)
    counts: Counter[str] = Counter()
    chosen, rest = [], []
    for row in rows:
        elements = ast.literal_eval(row["elements"])
        if any(counts[el] < args.per_element for el in elements):
            chosen.append(row)
            counts.update(elements)
        else:
            rest.append(row)
    chosen += rest[: max(0, args.total - len(chosen))]
    with open(args.out_csv, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["material_id", "formation_energy_per_atom", "cif"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(chosen)
    print(f"{args.out_csv}: {len(chosen)} structures of {len(rows)} (held-out split excluded), {len(counts)} elements")


if __name__ == "__main__":
    main()
