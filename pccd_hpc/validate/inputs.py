"""Read the structures validate works on: CIF folders, HDF5 shard folders, CDVAE-style CSVs,
and (for references) JSON lists of ComputedStructureEntries."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterator

from pymatgen.core import Structure
from pymatgen.entries.computed_entries import ComputedStructureEntry

log = logging.getLogger(__name__)

CIF_SUFFIXES = (".cif", ".mcif")


def iter_input_structures(path: str | Path) -> Iterator[tuple[str, Structure]]:
    """Yield ``(record_id, Structure)`` from a CIF file/folder, a shard folder, or a CSV with a ``cif`` column.

    Unreadable CIFs are logged with their file name and skipped (a bad input never stops a batch).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"validate input not found: {path}")
    if path.is_file():
        if path.suffix.lower() in CIF_SUFFIXES:
            yield from _read_cifs([path])
        elif path.name.endswith((".csv", ".csv.gz")):
            yield from _read_csv(path)
        else:
            raise ValueError(f"unsupported structure file {path} (expected .cif, .csv or .csv.gz)")
        return
    if sorted(path.glob("shard-*.h5")):
        from pccd_hpc.data.shards import iter_structures  # the data stage owns the shard format

        yield from iter_structures(path)
        return
    cifs = sorted(p for p in path.iterdir() if p.suffix.lower() in CIF_SUFFIXES)
    csvs = sorted(p for p in path.iterdir() if p.name.endswith((".csv", ".csv.gz")))
    if cifs:
        yield from _read_cifs(cifs)
    for csv_path in csvs:
        yield from _read_csv(csv_path)
    if not cifs and not csvs:
        raise ValueError(f"{path} holds no shard-*.h5, *.cif or *.csv files")


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


def _read_cifs(paths: list[Path]) -> Iterator[tuple[str, Structure]]:
    for cif in paths:
        try:
            yield cif.stem, Structure.from_file(cif)
        except (ValueError, KeyError, IndexError) as err:
            log.warning("skipping unreadable CIF %s: %s", cif, err)


def _read_csv(path: Path) -> Iterator[tuple[str, Structure]]:
    import pandas as pd

    frame = pd.read_csv(path)
    if "cif" not in frame.columns:
        raise ValueError(f"{path}: no 'cif' column (CDVAE layout expected)")
    id_column = "material_id" if "material_id" in frame.columns else None
    for row_index, row in frame.iterrows():
        record_id = str(row[id_column]) if id_column else f"{path.stem}-{row_index}"
        try:
            yield record_id, Structure.from_str(row["cif"], fmt="cif")
        except (ValueError, KeyError, IndexError) as err:
            log.warning("skipping unreadable CIF in %s row %s (%s): %s", path, row_index, record_id, err)
