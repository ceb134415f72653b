"""The default hull: the MP-20 phases on the DFT convex hull, as formation energies per atom.

``data/mp20_dft_hull.json.gz`` (built by ``scripts/build_dft_hull.py``) holds the 22,988 of MP-20's
45,229 entries (train, validation and test splits) that lie on the hull of their own chemical
system, with Materials Project's formation energies (PBE/PBE+U with MP2020 corrections). Every
element that occurs in MP-20 is added at 0 eV/atom, so any composition of those 89 elements has a
hull. The pruned set gives exactly the hull of all entries (an entry above its own system's hull
never shapes a larger one).
"""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path
from typing import Any

from pymatgen.core import Composition

from pccd_hpc.validate.hull import HullCalculator, ReferenceEnergy

DFT_HULL_FILE = Path(__file__).resolve().parent / "data" / "mp20_dft_hull.json.gz"
ELEMENT_ID_PREFIX = "element:"


@functools.lru_cache(maxsize=1)
def load_dft_hull_data(path: Path = DFT_HULL_FILE) -> dict[str, Any]:
    """The shipped hull file: ``description``, ``elements``, ``entries`` ([id, formula, E_f eV/atom]), provenance."""
    if not path.exists():
        raise FileNotFoundError(f"MP-20 DFT hull missing: {path} (a broken install; reinstall pccd_hpc)")
    with gzip.open(path, "rt") as fh:
        return json.load(fh)


def dft_hull_elements() -> frozenset[str]:
    """The 89 elements that occur in MP-20 (each has a hull)."""
    return frozenset(load_dft_hull_data()["elements"])


def dft_hull_references() -> list[ReferenceEnergy]:
    """Hull phases and every MP-20 element at 0 eV/atom, as formation energies per atom."""
    data = load_dft_hull_data()
    refs = [ReferenceEnergy(f"{ELEMENT_ID_PREFIX}{el}", Composition(el), 0.0) for el in data["elements"]]
    refs += [ReferenceEnergy(str(mid), Composition(formula), float(ef)) for mid, formula, ef in data["entries"]]
    return refs


@functools.lru_cache(maxsize=1)
def dft_hull() -> HullCalculator:
    """The default hull calculator (built once per process)."""
    return HullCalculator(dft_hull_references())


def describe() -> str:
    """One line naming the hull for metrics and reports."""
    data = load_dft_hull_data()
    return (f"MP-20 DFT hull ({len(data['entries'])} hull phases of {data['n_source_entries']} MP-20 entries, "
            "Materials Project formation energies, PBE/PBE+U with MP2020 corrections)")


@functools.lru_cache(maxsize=1)
def known_reduced_formulas() -> frozenset[str]:
    """Reduced formulas of every MP-20 entry (all splits): a candidate outside them has a novel composition."""
    return frozenset(load_dft_hull_data()["known_reduced_formulas"])
