"""The structure sample bundled with the package (see PROVENANCE.md)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pymatgen.core import Structure

SAMPLE_CSV = "structures.csv"


def sample_csv_path() -> Path:
    """Path of the bundled sample CSV (CDVAE layout: material_id, ..., cif)."""
    return Path(__file__).with_name(SAMPLE_CSV)


def sample_structures(n: int, max_sites: int = 16, max_elements: int = 3) -> list["Structure"]:
    """The first ``n`` ordered structures of the sample with at most ``max_sites`` sites and ``max_elements`` elements."""
    from pymatgen.core import Structure

    out = []
    with open(sample_csv_path(), newline="") as fh:
        for row in csv.DictReader(fh):
            structure = Structure.from_str(row["cif"], fmt="cif")
            if len(structure) <= max_sites and len(structure.composition.elements) <= max_elements and structure.is_ordered:
                out.append(structure)
            if len(out) == n:
                break
    return out
