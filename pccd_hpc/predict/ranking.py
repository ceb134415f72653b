"""Rank a composition's candidates by relaxed energy per atom (the validation backend, CHGNet by default).

Each candidate's relaxation is saved as ``relaxed/<id>.json`` (+ ``relaxed/<id>.cif``) as soon as it
finishes, so a killed ranking resumes at the next candidate. A relaxation that fails (diverged, timed
out) is recorded with its reason and ranked last; it never stops the others.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Callable, Sequence

from pymatgen.core import Structure

from pccd_hpc.data.symmetry import space_group
from pccd_hpc.io_utils import atomic_write_json, atomic_write_text, read_json
# The one place predict relaxes structures (the validation backends and their relaxation settings).
from pccd_hpc.validate.backends.registry import get_backend
from pccd_hpc.validate.config import RelaxConfig
from pccd_hpc.validate.errors import ValidationFailure

log = logging.getLogger(__name__)

RANKING_COLUMNS = ("rank", "id", "formula", "formula_units", "n_sites", "energy_ev_per_atom", "converged",
                   "n_steps", "space_group", "space_group_number", "relaxed_cif", "candidate_cif", "reason")
"""Columns of ``ranking.csv``: rank 1 is the best guess (lowest relaxed energy per atom)."""

Relaxer = Callable[[Structure, str], "tuple[Structure | None, float | None]"]


def make_relaxer(backend: str = "chgnet", max_steps: int = 500, fmax_ev_per_ang: float = 0.05,
                 details: dict[str, Any] | None = None) -> Relaxer:
    """``relax(structure, id) -> (relaxed structure, energy per atom)``, (None, None) when the relaxation failed;
    with ``details`` the last call's converged / n_steps / reason are left in it."""
    engine = get_backend(backend)
    config = RelaxConfig(max_steps=max_steps, fmax_ev_per_ang=fmax_ev_per_ang)

    def relax(structure: Structure, record_id: str) -> tuple[Structure | None, float | None]:
        info = details if details is not None else {}
        info.clear()
        try:
            result = engine.relax(structure, config, record_id)
        except ValidationFailure as err:
            log.warning("relaxation of %s failed: %s", record_id, err.message)
            info.update(converged=False, n_steps=None, reason=f"{err.kind}: {err.message}")
            return None, None
        info.update(converged=bool(result.converged), n_steps=int(result.n_steps), reason="")
        energy = float(result.energy_ev_per_atom)
        return (result.structure, energy) if math.isfinite(energy) else (None, None)

    return relax


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
    ordered = sorted(records, key=lambda r: (r.get("energy_ev_per_atom") is None, r.get("energy_ev_per_atom") or 0.0,
                                             r["id"]))
    return [{**r, "rank": i + 1} for i, r in enumerate(ordered)]
