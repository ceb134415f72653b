"""Build the bundled hull reference set (``pccd_hpc/validate/data/hull_reference.json.gz``).

Recipe (run once by the maintainers; minutes on one CPU thread)::

    python -m pccd_hpc.validate.reference_build --data ../shared/data --out pccd_hpc/validate/data/hull_reference.json.gz

1. Take every Materials Project structure of the MP-20 files given (``formation_energy_per_atom``
   column) whose elements lie in one chemical system the package generates by default (the
   paper's RE/AE/TM pairs with O, ``generate.systems.expand_system("paper")``).
2. Per chemical system, keep the structures within ``--window`` eV/atom of the MP
   formation-energy hull of that selection (phases far above the DFT hull cannot shape the hull).
3. Add an ASE reference state for every element of those systems that MP-20 has no phase for
   (alpha-Mn, which ASE lacks, from its published Wyckoff positions), and the ground-state binary
   oxides (``prototype_oxides``) that the MP-20 files lack (bixbyite M2O3 has 40 sites, etc.).
4. Relax each with the default backend (CHGNet, one thread) and store the structure, the energy
   per atom and the backend/model version. ``validate`` uses the energies directly when the
   installed backend matches, and relaxes the structures again (cached per user) otherwise.
"""

from __future__ import annotations

import argparse
import ast
import csv
import gzip
import json
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition, Element, Lattice, Structure

from pccd_hpc.io_utils import atomic_path
from pccd_hpc.validate.hull import chemsys, elemental_fallback_structures

log = logging.getLogger(__name__)

MP20_FILES = ("mp_20/val.csv.gz", "mp_20_sample/train.csv", "mp_20_sample/val.csv")


def default_systems() -> set[frozenset[str]]:
    """Chemical systems (element-symbol sets) the package generates by default (``--elements paper``)."""
    from pccd_hpc.generate.systems import expand_system

    return {frozenset(Element.from_Z(z).symbol for z in slots) for slots in expand_system("paper")}


def select_mp20(data_dir: Path, systems: set[frozenset[str]], window_ev: float) -> list[dict[str, Any]]:
    """MP-20 rows inside ``systems`` within ``window_ev`` of their system's formation-energy hull."""
    rows: dict[str, dict[str, Any]] = {}
    for name in MP20_FILES:
        path = data_dir / name
        if not path.exists():
            log.warning("reference build: %s missing, skipped", path)
            continue
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt", newline="") as fh:
            for row in csv.DictReader(fh):
                elements = frozenset(ast.literal_eval(row["elements"]))
                if any(elements <= s for s in systems) and row["material_id"] not in rows:
                    row["_formula"] = Structure.from_str(row["cif"], fmt="cif").composition.formula
                    rows[row["material_id"]] = row
    by_system: dict[frozenset[str], list[dict]] = defaultdict(list)
    for row in rows.values():
        by_system[frozenset(ast.literal_eval(row["elements"]))].append(row)
    keep: dict[str, dict] = {}
    for system in {s for s in systems if any(k <= s for k in by_system)}:
        members = [r for k, rs in by_system.items() if k <= system for r in rs]
        entries = [PDEntry(Composition(_formula(r)), float(r["formation_energy_per_atom"]) * Composition(_formula(r)).num_atoms, name=r["material_id"])
                   for r in members]
        entries += [PDEntry(Composition(el), 0.0, name=f"elem-{el}") for el in system]  # MP formation-energy zero
        diagram = PhaseDiagram(entries)
        for entry, row in zip(entries, members):
            if diagram.get_e_above_hull(entry) <= window_ev:
                keep[row["material_id"]] = row
    return [keep[k] for k in sorted(keep)]


def _formula(row: dict[str, Any]) -> str:
    return row["_formula"]


def alpha_mn() -> tuple[Structure, str]:
    """alpha-Mn (I-43m, 29 atoms in the primitive cell; Lawson et al. 1994 positions), the ground state
    of Mn, which neither MP-20 (> 20 sites) nor ASE's reference states provide."""
    coords = [[0, 0, 0], [0.31787, 0.31787, 0.31787], [0.35706, 0.35706, 0.03457], [0.08958, 0.08958, 0.28194]]
    conventional = Structure.from_spacegroup(217, Lattice.cubic(8.911), ["Mn"] * 4, coords)
    return conventional.get_primitive_structure(), "Mn: alpha-Mn from its published Wyckoff positions (no MP-20 or ASE phase)"


BIXBYITE_A_ANG = {"Sc": 9.845, "Y": 10.604, "Gd": 10.813, "Tb": 10.73, "Dy": 10.667, "Ho": 10.606, "Tm": 10.488, "Lu": 10.391}
"""Cubic lattice constants of the bixbyite sesquioxides M2O3 (40 atoms per primitive cell, so absent from MP-20)."""


def prototype_oxides() -> list[tuple[str, Structure, str]]:
    """Ground-state binary oxides of default-system cations that MP-20 (<= 20 sites, val split and
    sample only) lacks, built from their published prototypes; CHGNet relaxes them.

    Without them a whole cation-O edge of the hull is empty (e.g. no Sc-O phase at all put a
    generated Mg2ScO4 1.2 eV/atom "below the hull").
    """
    out = []
    for symbol, a in BIXBYITE_A_ANG.items():
        s = Structure.from_spacegroup(206, Lattice.cubic(a), [symbol, symbol, "O"],
                                      [[0.25, 0.25, 0.25], [-0.0326, 0.0, 0.25], [0.3911, 0.1519, 0.3806]])
        out.append((f"proto-{symbol}2O3-bixbyite", s.get_primitive_structure(), f"{symbol}2O3 bixbyite prototype (Ia-3)"))
    for symbol, a in (("Ca", 4.81), ("Mg", 4.21)):  # MP-20's files here hold only a wurtzite-like MgO
        rocksalt = Structure.from_spacegroup(225, Lattice.cubic(a), [symbol, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
        out.append((f"proto-{symbol}O-rocksalt", rocksalt.get_primitive_structure(), f"{symbol}O rock-salt prototype"))
    rutile = Structure.from_spacegroup(136, Lattice.tetragonal(4.737, 3.186), ["Sn", "O"], [[0, 0, 0], [0.307, 0.307, 0]])
    out.append(("proto-SnO2-rutile", rutile, "SnO2 rutile prototype"))
    baddeleyite = Structure.from_spacegroup(14, Lattice.monoclinic(5.117, 5.175, 5.291, 99.22), ["Hf", "O", "O"],
                                            [[0.276, 0.040, 0.208], [0.074, 0.332, 0.347], [0.449, 0.758, 0.480]])
    out.append(("proto-HfO2-baddeleyite", baddeleyite, "HfO2 baddeleyite prototype (P2_1/c)"))
    pdo = Structure.from_spacegroup(131, Lattice.tetragonal(3.043, 5.337), ["Pd", "O"], [[0, 0.5, 0], [0, 0, 0.25]])
    out.append(("proto-PdO", pdo, "PdO prototype (P4_2/mmc)"))
    return out


def build(data_dir: Path, out: Path, window_ev: float = 0.05, max_steps: int = 200, resume: bool = False) -> dict[str, Any]:
    """Select, relax with CHGNet and write the bundled reference set to ``out``; return its header.

    ``resume``: keep the entries already in ``out`` and relax only the missing ones.
    """
    import chgnet
    import torch
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    from pccd_hpc.validate.config import RelaxConfig
    from pccd_hpc.validate.relax import relax_structure

    torch.set_num_threads(1)
    systems = default_systems()
    selected = []
    for row in select_mp20(data_dir, systems, window_ev):
        selected.append((row["material_id"], Structure.from_str(row["cif"], fmt="cif"), "MP-20", float(row["formation_energy_per_atom"])))
    have = {str(s.composition.elements[0]) for _, s, _, _ in selected if len(s.composition.elements) == 1}
    needed = set().union(*systems)
    fallbacks = elemental_fallback_structures(needed - have)
    if "Mn" in needed - have - set(fallbacks):
        fallbacks["Mn"] = alpha_mn()
    for symbol, (structure, note) in fallbacks.items():
        selected.append((f"ase-{symbol}" if not note.startswith("Mn: alpha") else "alpha-Mn", structure, note, None))
    for rid, structure, note in prototype_oxides():  # ground states: harmless where MP-20 has them too
        selected.append((rid, structure, note, None))
    previous: dict[str, dict] = {}
    previous_wall_s = 0.0
    if resume and out.exists():
        with gzip.open(out, "rt") as fh:
            old = json.load(fh)
        previous = {e["id"]: e for e in old["entries"]}
        previous_wall_s = float(old.get("build_wall_s") or 0.0)
    log.info("reference build: %d structures to relax", len(selected))
    model = CHGNet.load(verbose=False)
    calculator = CHGNetCalculator(model=model, use_device="cpu")
    relax = RelaxConfig(fmax_ev_per_ang=0.05, max_steps=max_steps, timeout_s=600.0)
    entries, started = [], time.perf_counter()
    for i, (rid, structure, source, e_form) in enumerate(selected):
        if rid in previous:
            entries.append(previous[rid])
            continue
        try:
            result = relax_structure(structure, calculator, relax, rid)
        except Exception as err:  # noqa: BLE001 - a reference that fails is left out, with a log line
            log.warning("reference %s failed: %s", rid, err)
            continue
        s = result.structure
        entries.append({
            "id": rid, "source": source, "formula": s.composition.reduced_formula,
            "energy_ev_per_atom": round(float(result.energy_ev_per_atom), 6), "converged": bool(result.converged),
            "mp_formation_energy_per_atom": e_form,
            "lattice": np.round(s.lattice.matrix, 5).tolist(), "species": [site.specie.symbol for site in s],
            "frac_coords": np.round(s.frac_coords, 5).tolist(),
        })
        if (i + 1) % 25 == 0:
            log.info("reference build: %d/%d relaxed (%.1f s)", i + 1, len(selected), time.perf_counter() - started)
    header = {
        "backend": "chgnet", "backend_version": chgnet.__version__, "model": f"CHGNet pretrained weights {getattr(model, 'version', None) or '(bundled)'}",
        "relax": {"optimizer": relax.optimizer, "fmax_ev_per_ang": relax.fmax_ev_per_ang, "max_steps": relax.max_steps, "cell": True},
        "selection": f"MP-20 rows ({', '.join(MP20_FILES)}) in the default generation systems (paper RE/AE/TM oxides), "
                     f"within {window_ev} eV/atom of the MP formation-energy hull; ASE reference states (alpha-Mn from its "
                     "Wyckoff positions) for elements MP-20 lacks",
        "n_entries": len(entries), "build_wall_s": round(previous_wall_s + time.perf_counter() - started, 1),
    }
    with atomic_path(out) as tmp, gzip.open(tmp, "wt") as fh:
        json.dump({**header, "entries": entries}, fh, separators=(",", ":"))
    return header


def main() -> None:
    """Command line of the builder."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder (holds mp_20/, mp_20_sample/)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--window", type=float, default=0.05, help="eV/atom above the MP formation-energy hull to keep")
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--dry-run", action="store_true", help="only count the selection")
    parser.add_argument("--resume", action="store_true", help="keep the entries already in --out, relax the missing ones")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.dry_run:
        rows = select_mp20(args.data, default_systems(), args.window)
        print(len(rows))
        return
    print(json.dumps(build(args.data, args.out, args.window, args.max_steps, args.resume), indent=1))


if __name__ == "__main__":
    main()
