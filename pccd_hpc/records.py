"""The files validation records are known by: each record's path-safe name, and the ``results.csv`` table.

validate writes them; report and followup read them. Kept below the stages so that readers need no stage.
"""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path
from typing import Any, Sequence

from pccd_hpc.io_utils import atomic_write_csv

# Columns of results.csv, in order (records may carry more keys; those stay in the JSON).
CSV_COLUMNS = (
    "id", "formula", "n_sites", "backend", "energy_ev_per_atom", "formation_energy_ev_per_atom",
    "e_above_hull_ev_per_atom", "hull_status", "hull_note", "hull_decomposition", "unphysical", "unphysical_reason", "plausible_initial", "min_bond_ratio_initial",
    "min_bond_ratio_relaxed", "converged", "n_steps", "max_force_ev_per_ang", "wall_s", "imaginary_modes",
    "min_frequency_thz", "is_unique", "is_novel", "is_novel_composition", "error", "space_group_initial",
    "space_group_number_initial", "space_group_relaxed", "space_group_number_relaxed", "relaxed_cif",
)

_TEXT_COLUMNS = frozenset({"id", "formula", "backend", "hull_status", "hull_note", "hull_decomposition", "unphysical_reason",
                           "error", "relaxed_cif", "space_group_initial", "space_group_relaxed"})
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_HASH_SUFFIX = re.compile(r"-[0-9a-f]{8}$")


def record_stem(record_id: str) -> str:
    """The path-safe name of ``record_id``; every file about the record is named from it (``<stem>.json``,
    ``<stem>_bands.png``, VASP folder ``<stem>/``).

    An id that is safe as it is keeps its name; any other id (changed to be made safe, or ending like a
    hash suffix itself) gets ``-`` and 8 hex digits of its sha1, so ``a/b`` and ``a_b-3ec69c85`` stay apart.
    """
    safe = _UNSAFE.sub("_", record_id)[:120]
    if safe != record_id or _HASH_SUFFIX.search(record_id) or not record_id.strip("."):
        safe += "-" + hashlib.sha1(record_id.encode()).hexdigest()[:8]
    return safe


def record_filename(record_id: str) -> str:
    """File name of ``record_id``'s record: ``<stem>.json``."""
    return record_stem(record_id) + ".json"


def write_results_csv(records: Sequence[Any], target: str | Path) -> None:
    """Write ``records`` as ``results.csv`` (``CSV_COLUMNS``) atomically, sorted by id.

    A record is a validation record (anything with ``to_dict()``) or a plain mapping (hand-made rows in tests and
    tools); missing columns stay empty.
    """
    plain = [r.to_dict() if hasattr(r, "to_dict") else dict(r) for r in records]
    rows = [{key: _csv_value(row.get(key)) for key in CSV_COLUMNS} for row in sorted(plain, key=lambda r: r["id"])]
    atomic_write_csv(target, rows, CSV_COLUMNS)


def read_results_csv(path: str | Path) -> list[dict[str, Any]]:
    """Read ``results.csv`` back into dicts with numbers and booleans restored."""
    with open(path, newline="") as fh:
        return [
            {key: value if key in _TEXT_COLUMNS else _parse_value(value) for key, value in row.items()}
            for row in csv.DictReader(fh)
        ]


def _csv_value(value: Any) -> Any:
    return "" if value is None else value


def _parse_value(value: str) -> Any:
    if value == "":
        return None
    if value in ("True", "False"):
        return value == "True"
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value
