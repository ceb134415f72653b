"""One composition's candidates: sample with the element channel inpainted, decode with its sites, write them.

Layout inside ``DIR/compositions/<label>/``::

    cifs/<id>.cif        one CIF per decoded candidate, with its space group
    candidates.csv       one row per candidate (CANDIDATE_COLUMNS), decoded or not (``reason`` says why not)
    candidates.json      written last: the sampling settings and the sha256 of every file above
    relaxed/, ranking.csv, ranking.json   with --relax (:mod:`pccd_hpc.predict.ranking`)

A composition counts as done when ``candidates.json`` names the run's sampling settings and every file
still has its sha256 (a changed or truncated file makes it be done again: its seed is fixed, so it
gives the same candidates).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from pymatgen.core import Structure

from pccd_hpc.data.composition import CellComposition, decode_candidate
from pccd_hpc.data.geometry import min_bond_ratio
from pccd_hpc.data.symmetry import cif_with_space_group, space_group
from pccd_hpc.io_utils import atomic_write_csv, atomic_write_json, atomic_write_text, read_json, sha256_file
from pccd_hpc.model.inpainting import sample_cell_candidates

log = logging.getLogger(__name__)

COMPOSITIONS_DIR = "compositions"
CANDIDATE_COLUMNS = ("id", "formula", "formula_units", "n_sites", "valid", "space_group", "space_group_number",
                     "density_g_cm3", "volume_per_atom_ang3", "min_bond_ratio", "cif", "reason")
"""Columns of ``candidates.csv``."""
_LABEL = re.compile(r"^[A-Z][A-Za-z0-9]{0,62}(-Z[0-9]{1,3})?$")


def composition_label(cells: Sequence[CellComposition], fixed_units: bool) -> str:
    """Folder name of a composition: its reduced formula, with ``-Z<n>`` when the number of formula units is fixed."""
    cell = cells[0]
    return cell.label if fixed_units else cell.reduced_formula


def check_label(label: str) -> str:
    """``label`` when it is a plain formula label usable as a folder name, else ``ValueError`` naming it."""
    if not _LABEL.match(label):
        raise ValueError(f"{label!r} is not usable as a folder name (letters and digits of a formula only)")
    return label


def composition_folder(out_dir: Path, label: str) -> Path:
    """``DIR/compositions/<label>``, refusing a label that is not a plain formula (it becomes a folder name)."""
    return Path(out_dir) / COMPOSITIONS_DIR / check_label(label)


def composition_seed(seed: int, label: str) -> int:
    """The seed of a composition's candidates: from the base seed and its label, whatever else the run holds."""
    digest = int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "little")
    return int(np.random.SeedSequence([seed, digest]).generate_state(1, dtype=np.uint64)[0] % (2**63))


def candidates_problem(folder: Path, settings: dict[str, Any]) -> str | None:
    """Why ``folder``'s candidates are not (or no longer) done, naming the file; None when they verify."""
    return marker_problem(folder, "candidates.json", settings)


def marker_problem(folder: Path, marker_name: str, settings: dict[str, Any]) -> str | None:
    """Why ``folder/marker_name`` does not vouch for ``settings`` and its files (naming the file); None when it does."""
    marker = folder / marker_name
    if not marker.exists():
        return f"{marker} missing (not finished)"
    try:
        record = read_json(marker, "completion record")
    except ValueError as err:
        return f"{marker} unreadable ({err})"
    if record.get("settings") != settings:
        return f"{marker} was made with other settings"
    for name, digest in (record.get("files") or {}).items():
        path = folder / name
        if not path.exists():
            return f"{path} missing"
        if sha256_file(path) != digest:
            return f"{path} does not match its sha256 in {marker.name} (truncated or changed)"
    return None


def write_marker(folder: Path, marker_name: str, settings: dict[str, Any], files: Sequence[str],
                 extra: dict[str, Any]) -> None:
    """Write ``folder/marker_name`` (last): the settings, the sha256 of ``files`` and ``extra``."""
    atomic_write_json(folder / marker_name, {"settings": settings, **extra,
                                             "files": {name: sha256_file(folder / name) for name in files}})


def make_candidates(folder: Path, formula: str, cells: Sequence[CellComposition], k: int, checkpoint_sampler,
                    codec, seed: int, push_apart_factor: float | None) -> list[tuple[str, Structure]]:
    """Sample ``k`` candidates spread evenly over ``cells`` (the first cells take one more when k does not divide), write their CIFs and ``candidates.csv``;
    return the decoded ``(id, structure)``."""
    label = folder.name
    generator = torch.Generator().manual_seed(seed)
    per_cell = [len(range(i, k, len(cells))) for i in range(len(cells))]
    rows: list[dict[str, Any]] = []
    decoded: list[tuple[str, Structure]] = []
    (folder / "cifs").mkdir(parents=True, exist_ok=True)
    index = 0
    for cell, count in zip(cells, per_cell):
        if count == 0:
            continue
        tensors = sample_cell_candidates(checkpoint_sampler, cell, count, generator)
        for tensor in tensors.numpy():
            record_id = f"{label}-{index:03d}"
            index += 1
            result = decode_candidate(tensor, cell, codec, push_apart_factor)
            row: dict[str, Any] = {"id": record_id, "formula": cell.reduced_formula, "formula_units": cell.formula_units,
                                   "n_sites": cell.n_sites, "valid": result.valid, "reason": result.reason or ""}
            if result.structure is not None:
                s = result.structure
                group = space_group(s)
                atomic_write_text(folder / "cifs" / f"{record_id}.cif", cif_with_space_group(s, record_id, group))
                row.update(space_group="" if group is None else group.symbol,
                           space_group_number="" if group is None else group.number,
                           density_g_cm3=round(float(s.density), 4), volume_per_atom_ang3=round(s.volume / len(s), 3),
                           min_bond_ratio=round(float(min_bond_ratio(s)), 4), cif=f"cifs/{record_id}.cif")
                decoded.append((record_id, s))
            rows.append(row)
    atomic_write_csv(folder / "candidates.csv", rows, CANDIDATE_COLUMNS)
    log.info("%s: %d of %d candidates decoded", formula, len(decoded), k)
    return decoded


def read_candidate_rows(folder: Path) -> list[dict[str, str]]:
    """The rows of a composition folder's ``candidates.csv``."""
    with open(folder / "candidates.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def read_candidates(folder: Path) -> list[tuple[str, Structure]]:
    """The decoded ``(id, structure)`` of a finished composition folder, from its CIFs."""
    return [(row["id"], Structure.from_file(folder / row["cif"])) for row in read_candidate_rows(folder) if row["cif"]]
