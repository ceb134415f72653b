"""Small real structures and a validation folder written with validate's own writer (imported as a sibling)."""

from __future__ import annotations

import csv
from pathlib import Path

from pymatgen.core import Lattice, Structure

from pccd_hpc.records import CSV_COLUMNS, write_results_csv


def diamond_si(a: float = 5.43) -> Structure:
    """Primitive diamond Si (2 sites)."""
    return Structure.from_spacegroup("Fd-3m", Lattice.cubic(a), ["Si"], [[0, 0, 0]]).get_primitive_structure()


def rocksalt_mgo(a: float = 4.21) -> Structure:
    """Primitive rock-salt MgO (2 sites)."""
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]).get_primitive_structure()


def overlapping_mgo() -> Structure:
    """MgO with the O atom 0.4 Å from Mg: validate's relaxation 'converged' on such cells in the wild."""
    return Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.1, 0, 0]])


def write_validation(vdir: Path, rows: list[dict]) -> Path:
    """A validation folder whose results.csv holds ``rows`` (id, structure, e_hull, optional error/flags)."""
    records = []
    for row in rows:
        structure = row.get("structure")
        record = {"id": row["id"], "formula": structure.composition.reduced_formula if structure else "",
                  "n_sites": len(structure) if structure else 0, "backend": "chgnet",
                  "e_above_hull_ev_per_atom": row.get("e_hull"), "error": row.get("error"),
                  "relaxed_cif": structure.to(fmt="cif") if structure is not None else None}
        record.update(row.get("extra", {}))
        records.append(record)
    vdir.mkdir(parents=True, exist_ok=True)
    write_results_csv(records, vdir / "results.csv")
    extra_columns = sorted({key for row in rows for key in row.get("extra", {})})
    if extra_columns:  # columns a newer validate writes (e.g. ``unphysical``): append them
        with open(vdir / "results.csv", newline="") as fh:
            table = list(csv.DictReader(fh))
        by_id = {r["id"]: r for r in records}
        with open(vdir / "results.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=[*CSV_COLUMNS, *extra_columns])
            writer.writeheader()
            for line in table:
                writer.writerow({**line, **{k: by_id[line["id"]].get(k, "") for k in extra_columns}})
    return vdir
