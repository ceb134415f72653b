"""Read the structures validate works on: CIF files (every data block), POSCAR/``*.vasp`` files,
folders of them, HDF5 shard folders, CDVAE-style CSVs, and (for references) JSON lists of
ComputedStructureEntries.

Every input that cannot be used becomes a named ``InputRejection`` (file, record, reason,
message): truncated or binary files, FIFOs (never opened), folders named ``x.cif``, dangling or
looping symlinks, unknown elements, impossible cells, duplicate ids, unreadable shards. A bad
input never stops the batch.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from pymatgen.core import Structure
from pymatgen.entries.computed_entries import ComputedStructureEntry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputRejection:
    """One input that validate could not use, and why."""

    source: str
    """The file (and row or block) it came from."""
    record_id: str
    reason: str
    """Short machine-readable key (``bad_structure_file``, ``special_file``, ``unknown_element``, ...)."""
    message: str


def read_input_structures(path: str | Path) -> tuple[list[tuple[str, Structure]], list[InputRejection]]:
    """Read ``path`` into ``([(record_id, Structure)], [InputRejection])``; only a missing ``path`` raises.

    Overlapping atoms are *not* a rejection here: such candidates are kept and flagged
    ``unphysical`` by the runner (their count belongs in the metrics).
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise FileNotFoundError(f"validate input not found: {path}")
    if path.is_dir() and sorted(path.glob("shard-*.h5")):
        good, rejected = _read_shards(path)
    else:
        good, rejected = _read_files(path)
    seen: set[str] = set()
    unique = []
    for record_id, structure in good:
        if record_id in seen:
            rejected.append(InputRejection(str(path), record_id, "duplicate_id", f"record id {record_id!r} appears again in {path}"))
            continue
        seen.add(record_id)
        unique.append((record_id, structure))
    for rej in rejected:
        log.warning("validate input rejected (%s): %s", rej.reason, rej.message)
    return unique, rejected


def iter_input_structures(path: str | Path) -> Iterator[tuple[str, Structure]]:
    """Yield ``(record_id, Structure)`` for every usable structure of ``path`` (rejections are logged)."""
    yield from read_input_structures(path)[0]


def _read_files(path: Path) -> tuple[list[tuple[str, Structure]], list[InputRejection]]:
    from pccd_hpc.data.codec import RecordError
    from pccd_hpc.data.readers import check_structure_sanity, enumerate_records, parse_record

    good: list[tuple[str, Structure]] = []
    rejected: list[InputRejection] = []
    try:
        records = enumerate_records([path])
    except (FileNotFoundError, ValueError, OSError) as err:  # e.g. a CSV without a cif column
        return [], [InputRejection(str(path), path.name, "bad_input", f"{path}: {err}")]
    for raw in records:
        record_id = _record_id(raw)
        try:
            structure = parse_record(raw)
            check_structure_sanity(structure, record_id, raw.source, min_bond_factor=0.0)
            if not structure.is_ordered:
                raise RecordError("partial_occupancy", f"{raw.source}: partially occupied sites cannot be relaxed", record_id)
        except RecordError as err:
            rejected.append(InputRejection(raw.source, record_id, err.reason, str(err)))
            continue
        except Exception as err:  # noqa: BLE001 - batch boundary: one unreadable input is a rejection
            rejected.append(InputRejection(raw.source, record_id, "bad_structure_file", f"{raw.source}: {type(err).__name__}: {err}"))
            continue
        good.append((record_id, structure))
    return good, rejected


def _record_id(raw) -> str:
    """The id a candidate keeps in results: the file stem, ``stem:block`` for a block of a
    multi-block CIF, the material_id (or ``file.csv:row``) for a CSV row."""
    if raw.path is None and raw.cif is not None and ".csv" in raw.source:
        return raw.record_id
    if raw.path is None and raw.cif is not None:
        file_name, _, block = raw.record_id.partition(":")
        return f"{Path(file_name).stem}:{block}"
    return Path(raw.record_id).stem if raw.skip_reason is None else raw.record_id


def _read_shards(folder: Path) -> tuple[list[tuple[str, Structure]], list[InputRejection]]:
    from pccd_hpc.data.shards import list_shards, read_structures

    good: list[tuple[str, Structure]] = []
    rejected: list[InputRejection] = []
    for shard in list_shards(folder):
        try:
            good.extend(read_structures(shard))
        except Exception as err:  # noqa: BLE001 - h5py raises OSError/KeyError/ValueError on damaged files
            rejected.append(InputRejection(str(shard), shard.name, "bad_shard", f"cannot read shard {shard}: {type(err).__name__}: {err}"))
    return good, rejected


def load_reference(path: str | Path) -> tuple[list[tuple[str, Structure]], list[ComputedStructureEntry]]:
    """Return ``(structures_to_compute, ready_entries)`` for a reference set.

    A ``.json`` file is a list of ComputedStructureEntry dicts used as given (their energies must be
    on the backend's scale, e.g. Materials Project entries for VASP/MP2020); anything else is read
    as structures that validate relaxes with the backend and caches.
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".json":
        return [], read_entries_json(path)
    return list(iter_input_structures(path)), []


def read_entries_json(path: str | Path) -> list[ComputedStructureEntry]:
    """Read a JSON list of ComputedStructureEntry (or ComputedEntry-with-structure) dicts."""
    with open(path) as fh:
        data = json.load(fh)
    if isinstance(data, dict) and "entries" in data:
        data = data["entries"]
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of ComputedStructureEntry dicts")
    entries = []
    for i, item in enumerate(data):
        try:
            entries.append(ComputedStructureEntry.from_dict(item))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: entry {i} is not a ComputedStructureEntry ({err})") from err
    return entries
