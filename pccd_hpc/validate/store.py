"""Per-structure result records: one JSON file each, written atomically, merged into a CSV.

A re-run skips records already on disk; a killed task loses at most the structures in flight.
"""

from __future__ import annotations

import csv
import hashlib
import logging
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
_HASH_SUFFIX = re.compile(r"-[0-9a-f]{8}$")

log = logging.getLogger(__name__)


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


class RecordStore:
    """A folder of ``<id>.json`` records (``VDIR/records`` or a reference cache)."""

    def __init__(self, folder: str | Path, settings_sha256: str | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.settings_sha256 = settings_sha256
        """Stamped on records written without one (fresh results of this run's settings)."""

    def path(self, record_id: str) -> Path:
        """Where ``record_id``'s record lives."""
        return self.folder / record_filename(record_id)

    def has(self, record_id: str) -> bool:
        """True when a finished record for ``record_id`` exists."""
        return self.path(record_id).exists()

    def load(self, record_id: str) -> tuple[ValidationRecord | None, str | None]:
        """``(record, None)``, ``(None, None)`` when there is none, or ``(None, why)`` naming the file when it is
        damaged, edited (its checksum fails) or belongs to another id."""
        path = self.path(record_id)
        if not path.exists():
            return None, None
        record, problem = _read_record(path)
        if record is not None and record.id != record_id:
            return None, f"{path} holds record {record.id!r}, not {record_id!r}"
        return record, problem

    def get(self, record_id: str) -> ValidationRecord | None:
        """Return the record for ``record_id``, or None when there is none or it is damaged (logged, naming the file)."""
        record, problem = self.load(record_id)
        if problem is not None:
            log.warning("%s: not used", problem)
        return record

    def put(self, record: ValidationRecord) -> None:
        """Write ``record`` atomically with its checksum (and this store's settings hash when it has none), replacing any earlier version."""
        if record.settings_sha256 is None:
            record.settings_sha256 = self.settings_sha256
        record.checksum = record.content_checksum()
        atomic_write_json(self.path(record.id), record.to_dict())

    def __iter__(self) -> Iterator[ValidationRecord]:
        for path in sorted(self.folder.glob("*.json")):
            record, problem = _read_record(path)
            if problem is not None:
                log.warning("%s: skipped", problem)
                continue
            yield record

    def __len__(self) -> int:
        return sum(1 for _ in self.folder.glob("*.json"))


def _read_record(path: Path) -> tuple[ValidationRecord | None, str | None]:
    try:
        data = read_json(path, "validation record")
        if not isinstance(data, dict):
            raise ValueError(f"{path}: not a validation record (holds a {type(data).__name__})")
        record = ValidationRecord.from_dict(data, str(path))
    except (OSError, ValueError) as err:
        return None, f"{path} is damaged ({err})"
    if record.checksum is None:
        return None, f"{path} has no checksum (written by an older version or by hand)"
    if record.checksum != record.content_checksum():
        return None, f"{path} does not match its checksum (edited or damaged after it was written)"
    return record, None


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
