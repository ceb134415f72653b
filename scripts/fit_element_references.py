"""Fit a backend's element reference energies from relaxed MP-20 structures and ship them.

Recipe (run by the maintainers once per backend version; minutes to an hour on one core):

    python scripts/pick_calibration_structures.py ../shared/data/mp_20/val.csv.gz fit.csv          # not the held-out split
    python -m pccd_hpc.launch validate --input fit.csv --out FITDIR --no-finalize --workers 1      # relax with the backend
    python scripts/fit_element_references.py --structures fit.csv --records FITDIR/records

It reads each record's relaxed energy (converged, physical relaxations only), pairs it with the row's
MP formation energy, fits ``pccd_hpc.validate.formation.fit_element_references`` and adds the fit
(with its provenance) to ``pccd_hpc/validate/data/element_references.json``, replacing an earlier
fit of the same backend and version. It also writes the shipped calibration structures
(``calibration_structures.json.gz``): a subset covering every fitted element, which a backend
without shipped values relaxes to fit its own.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import sys
from collections import Counter
from pathlib import Path

from pymatgen.core import Composition, Structure

from pccd_hpc.io_utils import read_json
from pccd_hpc.validate.formation import (CALIBRATION_STRUCTURES, SHIPPED_REFERENCES, CalibrationSample,
                                         fit_element_references, installed_backend_version)

csv.field_size_limit(sys.maxsize)


def load_samples(structures_csv: Path, records: Path) -> tuple[list[CalibrationSample], dict[str, dict], str]:
    """Pair every converged, physical record with its row's DFT formation energy; also the rows and the backend."""
    rows = {r["material_id"]: r for r in csv.DictReader(open(structures_csv, newline=""))}
    samples, backend = [], ""
    for path in sorted(records.glob("*.json")):
        rec = read_json(path, "validation record")
        row = rows.get(rec["id"].split(":")[-1])
        backend = rec["backend"]
        if row is None or rec.get("energy_ev_per_atom") is None or not rec.get("converged") or rec.get("unphysical"):
            continue
        samples.append(CalibrationSample(rec["id"], Composition(rec["composition"]), float(rec["energy_ev_per_atom"]),
                                         float(row["formation_energy_per_atom"])))
    return samples, rows, backend


def calibration_subset(rows: dict[str, dict], per_element: int) -> list[dict]:
    """The first rows (file order) that bring every element to ``per_element`` structures."""
    counts: Counter[str] = Counter()
    chosen = []
    for row in rows.values():
        structure = Structure.from_str(row["cif"], fmt="cif")
        elements = [str(el) for el in structure.composition.elements]
        if any(counts[el] < per_element for el in elements):
            counts.update(elements)
            chosen.append({"id": row["material_id"], "formation_energy_ev_per_atom": float(row["formation_energy_per_atom"]),
                           "lattice": [[round(x, 6) for x in v] for v in structure.lattice.matrix.tolist()],
                           "species": [site.species_string for site in structure],
                           "frac_coords": [[round(x, 6) for x in c] for c in structure.frac_coords.tolist()]})
    return chosen


def main() -> None:
    """Fit, report and write the shipped files."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--structures", type=Path, required=True, help="CSV with material_id, formation_energy_per_atom, cif")
    p.add_argument("--records", type=Path, required=True, help="the validate run's records/ folder")
    p.add_argument("--per-element", type=int, default=4, help="calibration structures per element to ship")
    args = p.parse_args()
    samples, rows, backend = load_samples(args.structures, args.records)
    version = installed_backend_version(backend)
    fit = fit_element_references(samples, backend, version, source=(
        f"{len(samples)} MP-20 validation-split structures (held-out split excluded), relaxed with {backend} {version} "
        "by validate's default relaxation (FrechetCellFilter + BFGS, fmax 0.05 eV/A, 500 steps)"))
    print(json.dumps(fit.provenance["fit"]), len(fit.energies_ev_per_atom), "elements")
    shipped = json.loads(SHIPPED_REFERENCES.read_text()) if SHIPPED_REFERENCES.exists() else {"fits": []}
    shipped["fits"] = [f for f in shipped["fits"] if (f["backend"], f.get("backend_version")) != (backend, version)]
    shipped["fits"].append(fit.to_dict())
    SHIPPED_REFERENCES.write_text(json.dumps(shipped, indent=1) + "\n")
    subset = calibration_subset(rows, args.per_element)
    with gzip.open(CALIBRATION_STRUCTURES, "wt") as fh:
        json.dump({"description": "MP-20 validation-split structures (not the held-out split) covering every element "
                                  f"{args.per_element} times, with their MP formation energies", "entries": subset}, fh)
    print(f"{SHIPPED_REFERENCES}; {CALIBRATION_STRUCTURES}: {len(subset)} structures")


if __name__ == "__main__":
    main()
