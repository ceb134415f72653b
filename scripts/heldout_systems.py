"""Write the chemical systems of the held-out split (one per line, for ``generate --systems``).

    python scripts/heldout_systems.py ../shared/data/mp_20/val.csv.gz heldout_systems.txt

A system is kept when one of its held-out structures fits the codec (at most 3 elements and 16
sites), so the generator is asked only for what it can make; the order is sorted, so runs repeat.
"""

from __future__ import annotations

import csv
import gzip
import sys
from pathlib import Path

from pymatgen.core import Structure

from pccd_hpc.data.heldout_split import heldout_ids

csv.field_size_limit(sys.maxsize)


def main(val_csv: Path, target: Path) -> None:
    """Collect and write the systems."""
    held = heldout_ids()
    systems = set()
    with gzip.open(val_csv, "rt", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["material_id"] not in held:
                continue
            structure = Structure.from_str(row["cif"], fmt="cif")
            if len(structure) <= 16 and len(structure.composition.elements) <= 3:
                systems.add(",".join(sorted(str(el) for el in structure.composition.elements)))
    target.write_text("".join(f"{s}\n" for s in sorted(systems)))
    print(f"{target}: {len(systems)} held-out chemical systems")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
