"""Rank a composition's candidates by relaxed energy per atom (:mod:`pccd_hpc.materials.energy_ranking`).

Each candidate's relaxation is saved as ``relaxed/<id>.json`` (+ ``relaxed/<id>.cif``) as soon as it
finishes, so a killed ranking resumes at the next candidate. A relaxation that fails (diverged, timed
out) is recorded with its reason and ranked last; it never stops the others.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from pymatgen.core import Structure

from pccd_hpc.data.symmetry import space_group
from pccd_hpc.io_utils import atomic_write_json, atomic_write_text, read_json
from pccd_hpc.materials.energy_ranking import Relaxer, energy_order

log = logging.getLogger(__name__)

RANKING_COLUMNS = ("rank", "id", "formula", "formula_units", "n_sites", "energy_ev_per_atom", "converged",
                   "n_steps", "space_group", "space_group_number", "relaxed_cif", "candidate_cif", "reason")
"""Columns of ``ranking.csv``: rank 1 is the best guess (lowest relaxed energy per atom)."""


def relax_candidates(folder: Path, candidates: Sequence[tuple[str, Structure]], relax: Relaxer,
                     details: dict[str, Any]) -> list[dict[str, Any]]:
    """Relax each ``(id, structure)`` not relaxed yet in ``folder/relaxed/``; return one record per candidate."""
    relaxed_dir = folder / "relaxed"
    relaxed_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for record_id, structure in candidates:
        path = relaxed_dir / f"{record_id}.json"
        record = _stored(path, record_id)
        if record is None:
            final, energy = relax(structure, record_id)
            record = {"id": record_id, "energy_ev_per_atom": energy, "converged": details.get("converged", False),
                      "n_steps": details.get("n_steps"), "reason": details.get("reason", ""), "relaxed_cif": ""}
            if final is not None:
                group = space_group(final)
                record.update(space_group="" if group is None else group.symbol,
                              space_group_number="" if group is None else group.number,
                              relaxed_cif=f"relaxed/{record_id}.cif")
                atomic_write_text(relaxed_dir / f"{record_id}.cif", final.to(fmt="cif"))
            atomic_write_json(path, record)  # last: the candidate counts as relaxed once this exists
        records.append(record)
    return records


def _stored(path: Path, record_id: str) -> dict[str, Any] | None:
    """A finished relaxation record (its CIF present when it names one), else None."""
    if not path.exists():
        return None
    try:
        record = read_json(path, "relaxation record")
    except ValueError:
        return None
    if record.get("id") != record_id:
        return None
    if record.get("relaxed_cif") and not (path.parent.parent / record["relaxed_cif"]).exists():
        return None
    return record


def rank_records(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records by energy per atom, lowest first (failed relaxations last), each with its ``rank`` (1 = best)."""
    order = energy_order([r.get("energy_ev_per_atom") for r in records])
    return [{**records[i], "rank": rank + 1} for rank, i in enumerate(order)]
