"""Input readers: CDVAE-style CSV (``cif`` column), folders of CIF/POSCAR files, and lists of such.

Reading is split in two so that MPI ranks and array tasks can share one cheap enumeration:
``enumerate_records`` lists every record (its id, where it comes from, its properties and the
raw text or file) in a fixed order; ``parse_record`` turns one into a pymatgen ``Structure``.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from pymatgen.core import Lattice, Structure

from pccd_hpc.data.codec import RecordError

CSV_SUFFIXES = (".csv", ".csv.gz")
STRUCTURE_SUFFIXES = (".cif", ".vasp", ".poscar")
STRUCTURE_NAMES = ("POSCAR", "CONTCAR")
LIST_SUFFIXES = (".txt", ".list")

csv.field_size_limit(sys.maxsize)


@dataclass
class RawRecord:
    """One input record before parsing."""

    index: int
    """Position in the enumeration of all inputs (stable across runs and rank counts)."""
    record_id: str
    """material_id when the input has one, else ``file:row`` or the file name."""
    source: str
    """Where it came from (``path`` or ``path:row``)."""
    cif: str | None = None
    """CIF text (CSV inputs)."""
    path: Path | None = None
    """Structure file (folder inputs)."""
    properties: dict[str, float | str] = field(default_factory=dict)
    """Other CSV columns: numbers as float (NaN when empty), the rest as text."""


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", newline="")
    return open(path, newline="")


def _is_structure_file(path: Path) -> bool:
    name = path.name
    return path.is_file() and (
        name.lower().endswith(STRUCTURE_SUFFIXES) or any(name.startswith(stem) for stem in STRUCTURE_NAMES)
    )


def _as_property(value: str) -> float | str:
    text = value.strip()
    if text == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        return text


def expand_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Resolve input arguments into an ordered list of CSV files and structure files.

    A folder contributes its CSV and structure files (sorted by name); a ``.txt``/``.list`` file
    contributes the paths it lists (one per line, relative to the list's folder). Missing paths
    raise ``FileNotFoundError`` naming them.
    """
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"input not found: {raw}")
        path = path.resolve()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.name.endswith(CSV_SUFFIXES) or _is_structure_file(p))
            if not found:
                raise FileNotFoundError(f"input folder holds no CSV, CIF or POSCAR files: {raw}")
            files.extend(found)
        elif path.name.endswith(LIST_SUFFIXES):
            lines = [line.strip() for line in path.read_text().splitlines()]
            listed = [path.parent / line if not Path(line).is_absolute() else Path(line) for line in lines if line and not line.startswith("#")]
            files.extend(expand_inputs(listed))
        else:
            files.append(path)
    return files


def enumerate_records(paths: Iterable[str | Path]) -> list[RawRecord]:
    """List every record of the inputs, in a fixed order, without parsing structures."""
    records: list[RawRecord] = []
    for path in expand_inputs(paths):
        if path.name.endswith(CSV_SUFFIXES):
            records.extend(_csv_records(path, start=len(records)))
        else:
            records.append(RawRecord(len(records), path.name, str(path), path=path))
    return records


def _csv_records(path: Path, start: int) -> list[RawRecord]:
    with _open_text(path) as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "cif" not in reader.fieldnames:
            raise ValueError(f"{path}: CSV has no 'cif' column (columns: {reader.fieldnames})")
        out = []
        for row_number, row in enumerate(reader):
            material_id = (row.get("material_id") or "").strip()
            source = f"{path}:{row_number}"
            properties = {key: _as_property(value or "") for key, value in row.items() if key and key != "cif"}
            record_id = material_id or f"{path.name}:{row_number}"
            out.append(RawRecord(start + row_number, record_id, source, cif=row["cif"] or "", properties=properties))
    return out


_P1_OPERATIONS = {"x, y, z", "x,y,z", "+x,+y,+z"}
_ATOM_COLUMNS = ("_atom_site_type_symbol", "_atom_site_fract_x", "_atom_site_fract_y", "_atom_site_fract_z")


def parse_p1_cif(text: str) -> Structure | None:
    """Parse a simple P1 CIF (one block, identity symmetry, full occupancy) fast; None if not simple.

    pymatgen's CifParser takes ~2-4 ms per structure, most of it for symmetry handling that a P1
    file does not need; data sets such as MP-20 are stored this way. Anything unusual
    (several blocks, symmetry operations, partial occupancy, charged symbols, missing fields)
    returns None and the caller falls back to pymatgen.
    """
    if text.count("data_") != 1:
        return None
    cell: dict[str, float] = {}
    lines = text.splitlines()
    operations: list[str] = []
    atoms: list[list[str]] = []
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("_cell_length_") or line.startswith("_cell_angle_"):
            key, _, value = line.partition(" ")
            try:
                cell[key] = float(value.strip().split("(")[0])
            except ValueError:
                return None
        elif line == "loop_":
            header = []
            i += 1
            while i < len(lines) and lines[i].strip().startswith("_"):
                header.append(lines[i].strip())
                i += 1
            rows = []
            while i < len(lines) and lines[i].strip() and not lines[i].strip().startswith(("_", "loop_", "data_")):
                rows.append(lines[i].strip())
                i += 1
            if "_symmetry_equiv_pos_as_xyz" in header or "_space_group_symop_operation_xyz" in header:
                operations = [row.split(None, 1)[-1].strip("'\"") for row in rows]
            elif all(col in header for col in _ATOM_COLUMNS):
                cols = [header.index(c) for c in _ATOM_COLUMNS]
                occ = header.index("_atom_site_occupancy") if "_atom_site_occupancy" in header else None
                for row in rows:
                    fields = row.split()
                    if len(fields) != len(header) or (occ is not None and float(fields[occ]) != 1.0):
                        return None
                    atoms.append([fields[c] for c in cols])
            continue
        i += 1
    names = ("a", "b", "c", "alpha", "beta", "gamma")
    keys = [f"_cell_length_{n}" for n in names[:3]] + [f"_cell_angle_{n}" for n in names[3:]]
    if not atoms or any(k not in cell for k in keys) or (operations and set(operations) - _P1_OPERATIONS):
        return None
    symbols = [a[0] for a in atoms]
    if not all(sym.isalpha() and sym[0].isupper() and len(sym) <= 2 for sym in symbols):
        return None
    coords = [[float(x) for x in a[1:]] for a in atoms]
    return Structure(Lattice.from_parameters(*(cell[k] for k in keys)), symbols, coords, to_unit_cell=True)


def parse_record(record: RawRecord) -> Structure:
    """Parse a record into a ``Structure``; raise ``RecordError('bad_structure_file', ...)`` naming it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if record.cif is not None:
                if not record.cif.strip():
                    raise ValueError("empty CIF")
                structure = parse_p1_cif(record.cif) or Structure.from_str(record.cif, fmt="cif")
            else:
                assert record.path is not None
                structure = Structure.from_file(record.path)
    except RecordError:
        raise
    except Exception as err:  # pymatgen raises many types on malformed files
        raise RecordError("bad_structure_file", f"cannot parse {record.source} ({type(err).__name__}: {err})", record.record_id) from err
    if len(structure) == 0:
        raise RecordError("empty_structure", f"{record.source} has no sites", record.record_id)
    return structure
