"""Candidates for followup, read from a validation folder (the one place that knows validate's layout).

``validate`` writes ``VDIR/results.csv`` (one row per structure: id, formula, E_hull, relaxed CIF,
error, and, once geometry checks exist, an ``unphysical`` flag). Everything followup needs from it
goes through ``read_validation_candidates`` so a change of that layout touches this file only.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from pymatgen.core import Structure

log = logging.getLogger(__name__)

# Columns validate may use to mark a geometry no DFT run should start from (True = skip).
_UNPHYSICAL_FLAGS = ("unphysical", "implausible")
# Columns that say the opposite (False = skip).
_PLAUSIBLE_FLAGS = ("plausible", "geometry_ok")


@dataclass(frozen=True)
class Candidate:
    """One structure chosen for followup."""

    record_id: str
    """The validation record id."""
    structure: Structure
    """The validation's relaxed structure (ML potential or DFT)."""
    e_above_hull_ev_per_atom: float | None
    """E_hull from the validation (None when it had no hull)."""
    formula: str
    """Reduced formula."""
    source: str
    """Where the candidate came from (file and row), for messages."""


def read_validation_candidates(val_dir: str | Path) -> tuple[list[Candidate], list[str]]:
    """Read every usable candidate of ``val_dir``; return ``(candidates, skipped)``.

    ``skipped`` holds one line per row left out (no relaxed structure, an error, flagged
    unphysical, atoms closer than 0.7 x the sum of covalent radii), naming the row and the reason.
    """
    from pccd_hpc.records import read_results_csv

    val_dir = Path(val_dir)
    results = val_dir / "results.csv"
    if not results.exists():
        raise FileNotFoundError(f"no results.csv in validation folder {val_dir}: run `validate` (with its finalize step) first")
    candidates: list[Candidate] = []
    skipped: list[str] = []
    for line_no, row in enumerate(read_results_csv(results), start=2):
        source = f"{results}:{line_no}"
        record_id = str(row.get("id") or "")
        reason = _skip_reason(row)
        structure = None
        if reason is None:
            try:
                structure = Structure.from_str(row["relaxed_cif"], fmt="cif")
            except (ValueError, KeyError, IndexError, ZeroDivisionError) as err:
                reason = f"relaxed_cif unreadable ({type(err).__name__}: {err})"
        if reason is None and structure is not None:
            reason = _geometry_reason(structure)
        if reason is not None:
            skipped.append(f"{record_id or '?'} ({source}): {reason}")
            continue
        candidates.append(Candidate(record_id, structure, _float_or_none(row.get("e_above_hull_ev_per_atom")),
                                    structure.composition.reduced_formula, source))
    return candidates, skipped


def select_candidates(candidates: Sequence[Candidate], ids: Sequence[str] = (), top: int | None = None) -> list[Candidate]:
    """Pick by ``ids`` (in the order given; unknown ids raise ``ValueError`` naming them) or the
    ``top`` lowest-E_hull candidates (those without E_hull last); both given: ids first, then top-up."""
    if top is not None and top < 1:
        raise ValueError(f"--top must be >= 1, got {top}")
    if not ids and top is None:
        raise ValueError("choose candidates with --ids or --top")
    by_id = {c.record_id: c for c in candidates}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise ValueError(f"candidate id(s) not usable in the validation folder: {missing} "
                         "(absent, failed or flagged unphysical; see the log for skipped rows)")
    chosen = [by_id[i] for i in dict.fromkeys(ids)]
    if top is not None:
        ranked = sorted(candidates, key=lambda c: (c.e_above_hull_ev_per_atom is None, c.e_above_hull_ev_per_atom or 0.0, c.record_id))
        for c in ranked:
            if len(chosen) >= top + len(ids):
                break
            if c not in chosen:
                chosen.append(c)
    return chosen


def _skip_reason(row: dict[str, Any]) -> str | None:
    if not row.get("id"):
        return "row has no id"
    if row.get("error"):
        return f"validation failed: {row['error']}"
    if not row.get("relaxed_cif"):
        return "no relaxed structure"
    for key in _UNPHYSICAL_FLAGS:
        if _truthy(row.get(key)):
            return f"flagged {key} by validate"
    for key in _PLAUSIBLE_FLAGS:
        if key in row and row[key] is not None and not _truthy(row[key]):
            return f"validate says {key} = False"
    return None


def _geometry_reason(structure: Structure) -> str | None:
    from pccd_hpc.data.geometry import PLAUSIBLE_BOND_FACTOR, min_bond_ratio

    ratio = min_bond_ratio(structure)
    if ratio < PLAUSIBLE_BOND_FACTOR:
        return f"atoms too close for DFT (shortest distance {ratio:.2f} x sum of covalent radii < {PLAUSIBLE_BOND_FACTOR})"
    return None


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value) if value is not None else False


def _float_or_none(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
