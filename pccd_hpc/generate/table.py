"""What a generation run made, in the forms a scientist opens first: a table, one CIF per structure, one extended XYZ.

Written into the run folder ``DIR`` beside the shards (the shards stay the record)::

    structures.csv      one row per sample, decoded or not (TABLE_COLUMNS; ``reason`` says why a sample failed)
    cifs/<id>.cif       one CIF per valid structure, as written, with its space group (written by its task)
    structures.extxyz   every valid structure; ``ase.io.read(path, index=":")`` returns them all
    structures.png      pictures of up to PICTURE_COUNT of them (spread over the run), a glance at what was made

Space groups are spglib's at :data:`pccd_hpc.data.symmetry.SYMPREC_ANG` (the ``symprec_ang`` column).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Sequence

import h5py
from pymatgen.core import Structure

from pccd_hpc.data.shards import read_structures, shard_name
from pccd_hpc.data.symmetry import SYMPREC_ANG, SpaceGroup, cif_with_space_group, non_p1_fraction, space_group
from pccd_hpc.generate.plan import GeneratePlan
from pccd_hpc.io_utils import atomic_path, atomic_write_csv, atomic_write_text

log = logging.getLogger(__name__)

STRUCTURES_CSV = "structures.csv"
EXTXYZ_NAME = "structures.extxyz"
CIF_DIR = "cifs"
PICTURE_NAME = "structures.png"
PICTURE_COUNT = 12

TABLE_COLUMNS = (
    "id", "task", "system", "valid", "formula", "n_sites", "space_group", "space_group_number", "symprec_ang",
    "density_g_cm3", "volume_per_atom_ang3", "min_bond_ratio_sampled", "min_bond_ratio", "plausible",
    "push_max_shift_ang", "cif", "reason",
)
"""Columns of ``structures.csv``: ``min_bond_ratio_sampled`` is min d_ij / (r_i + r_j) as the model sampled it,
``min_bond_ratio`` as written (after the push-apart), ``push_max_shift_ang`` how far the push-apart moved the
furthest atom; ``reason`` is why a sample was not kept (empty for a valid one)."""


def structure_cif_path(out_dir: str | Path, record_id: str) -> Path:
    """Where the CIF of sample ``record_id`` lives: ``DIR/cifs/<id>.cif``."""
    if not record_id or "/" in record_id or record_id.startswith("."):
        raise ValueError(f"not a sample id usable as a file name: {record_id!r}")
    return Path(out_dir) / CIF_DIR / f"{record_id}.cif"


def write_structure_cifs(out_dir: str | Path, written: Sequence[tuple[str, Structure, SpaceGroup | None]]) -> None:
    """Write ``cifs/<id>.cif`` (atomically) for every ``(id, structure, space group)``."""
    if not written:
        return
    (Path(out_dir) / CIF_DIR).mkdir(parents=True, exist_ok=True)
    for record_id, structure, group in written:
        atomic_write_text(structure_cif_path(out_dir, record_id), cif_with_space_group(structure, record_id, group))


def _column(h5: h5py.File, name: str, n: int) -> list[Any]:
    """A per-sample dataset as plain values (strings decoded); None for each sample when an older shard lacks it."""
    if name not in h5:
        return [None] * n
    return [v.decode() if isinstance(v, bytes) else v.item() if hasattr(v, "item") else v for v in h5[name][:]]


def _number(value: Any, digits: int = 4) -> Any:
    """A float rounded for the table; empty for NaN or missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return round(float(value), digits)


def _task_rows(out_dir: Path, task: int) -> tuple[list[dict[str, Any]], list[tuple[str, Structure, SpaceGroup | None]]]:
    """The table rows of one task's shard and its valid ``(id, structure, space group)``."""
    path = out_dir / shard_name(task)
    with h5py.File(path, "r") as h5:
        n = len(h5["record_id"])
        cols = {name: _column(h5, name, n) for name in (
            "record_id", "system", "valid", "reason", "min_bond_ratio_sampled", "min_bond_ratio", "plausible",
            "push_max_shift_ang", "space_group", "space_group_number")}
    structures = dict(read_structures(path))
    rows, written = [], []
    for i in range(n):
        rid = cols["record_id"][i]
        row: dict[str, Any] = {"id": rid, "task": task, "system": cols["system"][i], "valid": bool(cols["valid"][i]),
                               "min_bond_ratio_sampled": _number(cols["min_bond_ratio_sampled"][i]),
                               "reason": cols["reason"][i] or ""}
        structure = structures.get(rid) if row["valid"] else None
        if structure is not None:
            number = cols["space_group_number"][i]
            if number is None:  # a shard written before space groups were recorded
                group = space_group(structure)
            else:
                group = SpaceGroup(cols["space_group"][i], int(number)) if number else None
            row.update(formula=structure.composition.reduced_formula, n_sites=len(structure),
                       space_group="" if group is None else group.symbol,
                       space_group_number="" if group is None else group.number, symprec_ang=SYMPREC_ANG,
                       density_g_cm3=_number(structure.density), volume_per_atom_ang3=_number(structure.volume / len(structure), 3),
                       min_bond_ratio=_number(cols["min_bond_ratio"][i]), plausible=cols["plausible"][i],
                       push_max_shift_ang=_number(cols["push_max_shift_ang"][i]),
                       cif=f"{CIF_DIR}/{rid}.cif")
            written.append((rid, structure, group))
        rows.append(row)
    return rows, written


def write_run_table(out_dir: str | Path, plan: GeneratePlan) -> dict[str, Any]:
    """Write ``structures.csv`` and ``structures.extxyz`` from every task shard (and any missing ``cifs/<id>.cif``);
    return the figures the run summary keeps (counts of space groups, share of non-P1)."""
    out_dir = Path(out_dir)
    rows: list[dict[str, Any]] = []
    written: list[tuple[str, Structure, SpaceGroup | None]] = []
    for task in range(plan.n_tasks):
        task_rows, task_written = _task_rows(out_dir, task)
        rows += task_rows
        written += task_written
    atomic_write_csv(out_dir / STRUCTURES_CSV, rows, TABLE_COLUMNS)
    missing = [w for w in written if not structure_cif_path(out_dir, w[0]).exists()]
    write_structure_cifs(out_dir, missing)
    _write_extxyz(out_dir / EXTXYZ_NAME, written)
    _write_picture_grid(out_dir / PICTURE_NAME, written)
    groups = [g for _, _, g in written]
    counts: dict[str, int] = {}
    for g in groups:
        if g is not None:
            counts[g.symbol] = counts.get(g.symbol, 0) + 1
    log.info("generate: wrote %s (%d rows), %s and %d CIFs under %s/", out_dir / STRUCTURES_CSV, len(rows),
             EXTXYZ_NAME, len(written), CIF_DIR)
    return {"space_group_symprec_ang": SYMPREC_ANG, "non_p1_fraction": non_p1_fraction(groups),
            "space_group_counts": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:30])}


def _write_extxyz(target: Path, written: Sequence[tuple[str, Structure, SpaceGroup | None]]) -> None:
    """Every structure as one frame of an extended-XYZ file (id, formula and space group in each frame's info)."""
    import ase.io
    from pymatgen.io.ase import AseAtomsAdaptor

    frames = []
    for record_id, structure, group in written:
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.info.clear()
        atoms.info.update(id=record_id, formula=structure.composition.reduced_formula,
                          space_group="" if group is None else group.symbol,
                          space_group_number=0 if group is None else group.number, symprec_ang=SYMPREC_ANG)
        frames.append(atoms)
    with atomic_path(target) as tmp:
        if frames:
            ase.io.write(tmp, frames, format="extxyz")
        else:
            Path(tmp).write_text("")


def _write_picture_grid(target: Path, written: Sequence[tuple[str, Structure, SpaceGroup | None]]) -> None:
    """``structures.png``: up to PICTURE_COUNT structures spread evenly over the run (a drawing problem is logged, not raised)."""
    from pccd_hpc.pictures import picture_grid

    if not written:
        return
    picks = sorted({round(k * (len(written) - 1) / max(PICTURE_COUNT - 1, 1)) for k in range(PICTURE_COUNT)})
    items = [(s, f"{rid}: {s.composition.reduced_formula}" + ("" if g is None else f", {g.symbol}"))
             for rid, s, g in (written[k] for k in picks)]
    try:
        picture_grid(items, target)
    except (ValueError, RuntimeError, MemoryError) as err:
        log.warning("generate: no %s (%s: %s)", target.name, type(err).__name__, err)
