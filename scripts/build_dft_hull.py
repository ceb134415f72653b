"""Build the default hull reference: the MP-20 phases on the DFT convex hull (``pccd_hpc/validate/data/mp20_dft_hull.json.gz``).

    python scripts/build_dft_hull.py ../shared/data/mp_20/energies.csv.gz

Input: every MP-20 entry (train, val and test splits; 45,229 rows) with its Materials Project
formation energy (PBE/PBE+U, MP2020-corrected). An entry is kept when it lies on the hull of its own
chemical system (every entry whose elements are a subset of its own): such an entry is on the hull
of every larger system too, and an entry above its own system's hull never shapes any hull. So the
pruned set gives exactly the hull of all 45,229 entries, for any chemical system. Elements are at
0 eV/atom (added when the file is loaded, for every element that occurs in MP-20). The reduced
formulas of all entries are kept too: a candidate's composition is novel when none of them matches.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import itertools
import json
import sys
from collections import defaultdict
from pathlib import Path

from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition

OUT = Path(__file__).resolve().parents[1] / "pccd_hpc" / "validate" / "data" / "mp20_dft_hull.json.gz"
ON_HULL_TOL_EV = 1e-6


def main(energies_csv: Path) -> None:
    """Prune ``energies_csv`` to the phases on the hull and write the package's data file."""
    rows = list(csv.DictReader(gzip.open(energies_csv, "rt", newline="")))
    elements = sorted({str(el) for r in rows for el in Composition(r["formula"]).elements})
    by_system: dict[frozenset[str], list[PDEntry]] = defaultdict(list)
    for r in rows:
        comp = Composition(r["formula"])
        entry = PDEntry(comp, float(r["formation_energy_per_atom"]) * comp.num_atoms, name=r["material_id"])
        by_system[frozenset(str(el) for el in comp.elements)].append(entry)
    kept: list[list] = []
    for n_done, (system, own) in enumerate(sorted(by_system.items(), key=lambda kv: sorted(kv[0]))):
        members = [PDEntry(Composition(el), 0.0, name=f"element-{el}") for el in system]
        for k in range(1, len(system) + 1):
            for sub in itertools.combinations(sorted(system), k):
                members += by_system.get(frozenset(sub), [])
        diagram = PhaseDiagram(members)
        for entry in own:
            if diagram.get_e_above_hull(entry, allow_negative=True) <= ON_HULL_TOL_EV:
                kept.append([entry.name, entry.composition.formula.replace(" ", ""), round(entry.energy_per_atom, 6)])
        if n_done % 2000 == 0:
            print(f"{n_done}/{len(by_system)} systems, {len(kept)} hull phases", file=sys.stderr)
    kept.sort()
    data = {
        "description": "MP-20 DFT hull: Materials Project formation energies (PBE/PBE+U, MP2020 corrections) of the "
                       "MP-20 entries (train, val, test) on the convex hull of their own chemical system",
        "source_sha256": hashlib.sha256(energies_csv.read_bytes()).hexdigest(),
        "n_source_entries": len(rows),
        "elements": elements,
        "columns": ["material_id", "formula", "formation_energy_ev_per_atom"],
        "entries": kept,
        "known_reduced_formulas": sorted({Composition(r["formula"]).reduced_formula for r in rows}),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(OUT, "wt") as fh:
        json.dump(data, fh, separators=(",", ":"))
    print(f"{OUT}: {len(kept)} of {len(rows)} entries on the hull, {len(elements)} elements, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
