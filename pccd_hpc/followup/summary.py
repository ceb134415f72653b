"""Per-candidate ``summary.json`` + Fig. 4 from whatever steps finished, and the campaign's ``summary.json``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pymatgen.core import Structure

from pccd_hpc.followup.figure import fig4
from pccd_hpc.followup.steps import FAILED, load_result
from pccd_hpc.io_utils import atomic_write_json, read_json

log = logging.getLogger(__name__)

FIGURE = "fig4.png"
SUMMARY = "summary.json"


def finalize_candidate(cand_dir: Path) -> dict[str, Any]:
    """Write ``fig4.png`` and ``summary.json`` for one candidate from its verified step results.

    Values of steps that did not finish are None (JSON null) with the reason under ``errors``;
    nothing is invented.
    """
    info = read_json(cand_dir / "input.json", "candidate input")
    validation_path = cand_dir / "validation.json"
    validation = read_json(validation_path, "candidate validation") if validation_path.exists() else {}
    results = {step: load_result(cand_dir, step) for step in ("relax", "static", "bands", "phonons")}
    errors = {}
    for step, result in results.items():
        failed = cand_dir / step / FAILED
        if result is None:
            errors[step] = read_json(failed, "step failure record")["error"] if failed.exists() else "not run (or not finished)"
    relax, static, bands, phonons = (results[s] for s in ("relax", "static", "bands", "phonons"))
    structure = Structure.from_dict((static or relax or info)["structure"])
    summary: dict[str, Any] = {
        "id": info["id"],
        "formula": structure.composition.reduced_formula,
        "n_sites": len(structure),
        "backend": (static or relax or {}).get("backend"),
        "e_above_hull_ev_per_atom": validation.get("e_above_hull_ev_per_atom"),
        "e_above_hull_source": validation.get("source"),
        "dft_relax_converged": None if relax is None else relax["converged"],
        "dft_energy_ev_per_atom": None if static is None else static["energy_ev_per_atom"],
        "band_gap_ev": None if bands is None else bands["band_gap_ev"],
        "gap_is_direct": None if bands is None else bands["gap_is_direct"],
        "gap_transition": None if bands is None else bands["gap_transition"],
        "direct_gap_ev": None if bands is None else bands["direct_gap_ev"],
        "is_metal": None if bands is None else bands["is_metal"],
        "lowest_phonon_frequency_thz": None if phonons is None else phonons["lowest_frequency_thz"],
        "imaginary_modes": None if phonons is None else phonons["imaginary_modes"],
        "phonon_supercell_matrix": None if phonons is None else phonons["supercell_matrix"],
        "wall_s": {**{s: r["wall_s"] for s, r in results.items() if r is not None},
                   "phonon-forces": _forces_wall_s(cand_dir)},
        "errors": errors,
        "figure": FIGURE,
    }
    fig4(structure, bands, phonons, cand_dir / FIGURE, title=_title(summary))
    atomic_write_json(cand_dir / SUMMARY, summary)
    return summary


def _forces_wall_s(cand_dir: Path) -> float | None:
    """Summed wall time of the displacement force runs (None when any of them did not record one)."""
    times = []
    for path in sorted(cand_dir.glob("phonons/disp-*/forces.json")):
        times.append(read_json(path, "displacement forces").get("wall_s"))
    return None if not times or None in times else float(sum(times))


def _title(s: dict[str, Any]) -> str:
    ehull = s["e_above_hull_ev_per_atom"]
    parts = [f"{s['id']}: {s['formula']}", f"E_hull {ehull:.3f} eV/atom" if ehull is not None else "E_hull n/a",
             f"{s['backend']} PBE" if s["backend"] else ""]
    return "  ·  ".join(p for p in parts if p)


def write_campaign_summary(out_dir: Path, summaries: list[dict[str, Any]]) -> Path:
    """``FDIR/summary.json``: one entry per candidate, sorted by id."""
    target = out_dir / SUMMARY
    atomic_write_json(target, {"candidates": sorted(summaries, key=lambda s: s["id"])})
    return target
