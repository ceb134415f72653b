"""Make the fixed held-out split: 10 % of MP-20's validation split, chosen by material id.

A material id is held out when sha256(id) mod 10 == 0, so the choice depends on nothing but the id
(no seed, no file order). The list is shipped as ``pccd_hpc/data/heldout/mp20_val_heldout_ids.txt``
and every training recipe removes these ids; evaluation uses only them.

Usage: python scripts/make_heldout_split.py ../shared/data/mp_20/val.csv.gz
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import sys
from pathlib import Path

from pccd_hpc.data.heldout_split import HELDOUT_IDS_FILE

csv.field_size_limit(sys.maxsize)
OUT = HELDOUT_IDS_FILE


def is_held_out(material_id: str, fraction_denominator: int = 10) -> bool:
    """True for the ids of the held-out tenth (sha256 of the id, mod 10 == 0)."""
    return int(hashlib.sha256(material_id.encode()).hexdigest(), 16) % fraction_denominator == 0


def main(val_csv: Path) -> None:
    with gzip.open(val_csv, "rt", newline="") as fh:
        ids = sorted({row["material_id"] for row in csv.DictReader(fh)})
    held = [mid for mid in ids if is_held_out(mid)]
    header = (f"# Held-out split: material ids of MP-20's validation split with sha256(id) mod 10 == 0\n"
              f"# ({len(held)} of {len(ids)}; made by scripts/make_heldout_split.py). Never train on these.\n")
    OUT.write_text(header + "".join(f"{mid}\n" for mid in held))
    print(f"{OUT}: {len(held)} of {len(ids)} ids")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
