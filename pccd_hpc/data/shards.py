"""Sharded HDF5 storage of encoded crystals (schema below), written atomically, read lazily.

One shard ``shard-KKKKK.h5`` holds up to ``shard_size`` records:

==================  ====================  ==========================================
dataset             shape, dtype          meaning
==================  ====================  ==========================================
tensors             (N, 3, 128, 3) f4     codec tensors (chunked, gzip)
element_z           (N, 3) i2             atomic numbers of the element slots
n_sites             (N,) i2               number of sites
atomic_numbers      (N, 16) i2            site species, 0-padded
frac_coords         (N, 16, 3) f8         site fractional coordinates, 0-padded
lattice_params      (N, 6) f8             a, b, c (A), alpha, beta, gamma (deg)
record_id           (N,) str              material id (or file:row)
source              (N,) str              input file and row
input_index         (N,) i8               position among all inputs
properties/<name>   (N,) f8 or str        other input columns (NaN / "" when missing)
==================  ====================  ==========================================

File attributes: ``schema_version``, ``codec`` (JSON of the codec settings).
The structure arrays are the cell that was encoded (Niggli-reduced by default), so later stages
compare against exactly what the model saw.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import h5py
import numpy as np
from pymatgen.core import Lattice, Structure

from pccd_hpc.io_utils import atomic_write_bytes

SCHEMA_VERSION = 1
SHARD_GLOB = "shard-*.h5"
_STR = h5py.string_dtype(encoding="utf-8")


def shard_name(index: int, suffix: str = ".h5") -> str:
    """File name of shard ``index`` (``suffix`` names its sidecar files: ``.json`` summary, ``.cif`` structures)."""
    return f"shard-{index:05d}{suffix}"


@dataclass
class ShardRecord:
    """One encoded record, ready to be written to a shard."""

    record_id: str
    source: str
    input_index: int
    tensor: np.ndarray
    element_z: np.ndarray
    atomic_numbers: np.ndarray
    frac_coords: np.ndarray
    lattice_params: np.ndarray
    properties: dict[str, float | str] = field(default_factory=dict)


def write_shard(
    path: str | Path,
    records: Sequence[ShardRecord],
    codec: dict,
    max_sites: int = 16,
    extra: dict[str, np.ndarray | list[str]] | None = None,
    attrs: dict[str, str | int | float] | None = None,
) -> None:
    """Write ``records`` to an HDF5 shard atomically (temp name, then rename).

    ``extra`` adds per-record datasets (arrays, or lists of str), ``attrs`` file attributes
    (the generate stage stores ``valid``/``reason`` and its provenance this way). The file is built
    in memory and written in one go, so a full disk is a :class:`~pccd_hpc.io_utils.DiskFullError`
    naming the folder (HDF5 itself crashed while closing a file on a full disk).
    """
    n = len(records)
    n_points = records[0].tensor.shape[1] if records else 128
    atomic_numbers = np.zeros((n, max_sites), dtype=np.int16)
    frac = np.zeros((n, max_sites, 3), dtype=np.float64)
    for i, rec in enumerate(records):
        atomic_numbers[i, : len(rec.atomic_numbers)] = rec.atomic_numbers
        frac[i, : len(rec.atomic_numbers)] = rec.frac_coords
    chunk = (max(1, min(n, 64)),)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        h5.attrs["schema_version"] = SCHEMA_VERSION
        h5.attrs["codec"] = json.dumps(codec, sort_keys=True)
        tensors = np.stack([r.tensor for r in records]) if n else np.zeros((0, 3, n_points, 3), np.float32)
        h5.create_dataset("tensors", data=tensors.astype(np.float32), chunks=chunk + (3, n_points, 3) if n else None, compression="gzip" if n else None, shuffle=bool(n))
        h5.create_dataset("element_z", data=np.array([r.element_z for r in records], dtype=np.int16).reshape(n, 3))
        h5.create_dataset("n_sites", data=np.array([len(r.atomic_numbers) for r in records], dtype=np.int16))
        h5.create_dataset("atomic_numbers", data=atomic_numbers, compression="gzip" if n else None)
        h5.create_dataset("frac_coords", data=frac, compression="gzip" if n else None)
        h5.create_dataset("lattice_params", data=np.array([r.lattice_params for r in records], dtype=np.float64).reshape(n, 6))
        h5.create_dataset("record_id", data=[r.record_id for r in records], dtype=_STR)
        h5.create_dataset("source", data=[r.source for r in records], dtype=_STR)
        h5.create_dataset("input_index", data=np.array([r.input_index for r in records], dtype=np.int64))
        for name, values in (extra or {}).items():
            if isinstance(values, list):
                h5.create_dataset(name, data=[str(v) for v in values], dtype=_STR)
            else:
                h5.create_dataset(name, data=np.asarray(values))
        for key, value in (attrs or {}).items():
            h5.attrs[key] = value
        group = h5.create_group("properties")
        for name in sorted({key for r in records for key in r.properties}):
            values = [r.properties.get(name, math.nan) for r in records]
            if all(isinstance(v, float) for v in values):
                group.create_dataset(name, data=np.array(values, dtype=np.float64))
            else:
                group.create_dataset(name, data=["" if isinstance(v, float) and math.isnan(v) else str(v) for v in values], dtype=_STR)
    atomic_write_bytes(path, buffer.getvalue())


def list_shards(folder: str | Path) -> list[Path]:
    """Sorted shard files of a folder."""
    return sorted(Path(folder).glob(SHARD_GLOB))


def structure_from_arrays(atomic_numbers: np.ndarray, frac_coords: np.ndarray, lattice_params: np.ndarray) -> Structure:
    """Build a ``Structure`` from 0-padded shard arrays."""
    n = int(np.count_nonzero(atomic_numbers))
    return Structure(Lattice.from_parameters(*lattice_params), atomic_numbers[:n].tolist(), frac_coords[:n])


def read_structures(shard: str | Path) -> list[tuple[str, Structure]]:
    """Return (record id, Structure) for every record of one shard that holds a structure.

    Rows flagged ``valid = False`` (generated tensors that did not decode) are skipped.
    """
    with h5py.File(shard, "r") as h5:
        ids = [v.decode() if isinstance(v, bytes) else str(v) for v in h5["record_id"][:]]
        z, frac, params = h5["atomic_numbers"][:], h5["frac_coords"][:], h5["lattice_params"][:]
        valid = h5["valid"][:] if "valid" in h5 else np.ones(len(ids), dtype=bool)
    return [(ids[i], structure_from_arrays(z[i], frac[i], params[i])) for i in range(len(ids)) if valid[i]]


def iter_structures(folder: str | Path) -> Iterator[tuple[str, Structure]]:
    """Yield (record id, Structure) for every record of every shard in ``folder``."""
    shards = list_shards(folder)
    if not shards:
        raise FileNotFoundError(f"no {SHARD_GLOB} files in {folder}")
    for shard in shards:
        yield from read_structures(shard)


def shard_record_count(shard: str | Path) -> int:
    """Number of records in a shard (raises ``OSError`` for unreadable files)."""
    with h5py.File(shard, "r") as h5:
        return int(h5["n_sites"].shape[0])
