"""Per-structure result records: one JSON file each, written atomically (merged into ``results.csv`` by
:mod:`pccd_hpc.records`).

A re-run skips records already on disk; a killed task loses at most the structures in flight.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

from pccd_hpc.io_utils import atomic_write_json, read_json
from pccd_hpc.records import record_filename, record_stem
from pccd_hpc.validate.record import ValidationRecord

log = logging.getLogger(__name__)


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
