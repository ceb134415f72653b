"""Per-structure result records: one JSON file each, written atomically, merged into a CSV.

A re-run skips records already on disk; a killed task loses at most the structures in flight.
"""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from pccd_hpc.io_utils import atomic_write_csv, atomic_write_json, read_json
from pccd_hpc.validate.record import ValidationRecord

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


def record_stem(record_id: str) -> str:
    """The path-safe name of ``record_id`` (plus a short hash when making it safe changed it); every
    file about the record is named from it (``<stem>.json``, ``<stem>_bands.png``, VASP folder ``<stem>/``)."""
    safe = _UNSAFE.sub("_", record_id)[:120]
    if safe != record_id:
        safe += "-" + hashlib.sha1(record_id.encode()).hexdigest()[:8]
    return safe


def record_filename(record_id: str) -> str:
    """File name of ``record_id``'s record: ``<stem>.json``."""
    return record_stem(record_id) + ".json"


class RecordStore:
    """A folder of ``<id>.json`` records (``VDIR/records`` or a reference cache)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, record_id: str) -> Path:
        """Where ``record_id``'s record lives."""
        return self.folder / record_filename(record_id)

    def has(self, record_id: str) -> bool:
        """True when a finished record for ``record_id`` exists."""
        return self.path(record_id).exists()

    def get(self, record_id: str) -> ValidationRecord | None:
        """Return the record for ``record_id`` or None (``ValueError`` naming the file when it is damaged)."""
        path = self.path(record_id)
        if not path.exists():
            return None
        return ValidationRecord.from_dict(read_json(path, "validation record"), str(path))

    def put(self, record: ValidationRecord) -> None:
        """Write ``record`` atomically, replacing any earlier version."""
        atomic_write_json(self.path(record.id), record.to_dict())

    def __iter__(self) -> Iterator[ValidationRecord]:
        for path in sorted(self.folder.glob("*.json")):
            yield ValidationRecord.from_dict(read_json(path, "validation record"), str(path))

    def __len__(self) -> int:
        return sum(1 for _ in self.folder.glob("*.json"))


def write_results_csv(records: Sequence[ValidationRecord | Mapping[str, Any]], target: str | Path) -> None:
    """Write ``records`` as ``results.csv`` (``CSV_COLUMNS``) atomically, sorted by id.

    Plain mappings (e.g. hand-made rows in tests and tools) are accepted too; missing columns stay empty.
    """
    plain = [r.to_dict() if isinstance(r, ValidationRecord) else dict(r) for r in records]
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
