"""Input readers: CDVAE-style CSV (``cif`` column), folders of CIF/POSCAR files, and lists of such.

Reading is split in two so that MPI ranks and array tasks can share one cheap enumeration:
``enumerate_records`` lists every record (its id, where it comes from, its properties and the
raw text or file) in a fixed order; ``parse_record`` turns one into a pymatgen ``Structure``.
"""

from __future__ import annotations

import csv
import errno
import gzip
import io
import math
import os
import re
import stat
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
from pymatgen.core import Element, Lattice, Structure

from pccd_hpc.data.codec import RecordError
from pccd_hpc.folder_lock import LOCK_NAME

CSV_SUFFIXES = (".csv", ".csv.gz")
STRUCTURE_SUFFIXES = (".cif", ".vasp", ".poscar")
STRUCTURE_NAMES = ("POSCAR", "CONTCAR")
LIST_SUFFIXES = (".txt", ".list")
MAX_STRUCTURE_BYTES = 20 * 2**20
"""Structure files (and CIF texts in a CSV) above this size are rejected unread (``file_too_large``)."""
MAX_LATTICE_LENGTH_ANG = 200.0
"""Lattice vectors longer than this are no crystal of <= 16 sites (``lattice_out_of_range``)."""
MIN_BOND_FACTOR = 0.5
"""Atoms closer than this x the sum of covalent radii overlap (``overlapping_atoms``). Every MP-20,
Carbon-24 and Perov-5 structure of the bundled sample is above 0.7 (measured, see the tests)."""

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
    skip_reason: str | None = None
    """Set for a path that is listed but cannot be read (FIFO, folder, dangling or looping symlink):
    ``parse_record`` rejects it with this reason, so every skipped path reaches ``rejected.csv``."""
    skip_message: str = ""


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", newline="")
    return open(path, newline="")


def _looks_like_structure(name: str) -> bool:
    return name.lower().endswith(STRUCTURE_SUFFIXES) or any(name.startswith(stem) for stem in STRUCTURE_NAMES)


def path_problem(path: Path) -> tuple[str, str] | None:
    """Why ``path`` cannot be read as a regular file, as ``(reason, message)``; None when it can.

    Never opens the path (opening a FIFO blocks forever): only ``lstat``/``stat`` are used.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symlink_loop", f"{path} is a symbolic link loop"
        if os.path.islink(path):
            return "dangling_symlink", f"{path} is a symbolic link to a missing file ({os.readlink(path)})"
        return "unreadable_path", f"{path}: {err.strerror or err}"
    if stat.S_ISDIR(mode):
        return "not_a_file", f"{path} is a folder, not a structure file"
    if not stat.S_ISREG(mode):
        kind = "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device or special file"
        return "special_file", f"{path} is a {kind}, not a regular file (not opened)"
    if not os.access(path, os.R_OK):
        return "unreadable_path", f"{path}: permission denied"
    return None


def _as_property(value: str) -> float | str:
    text = value.strip()
    if text == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        return text


def expand_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Resolve input arguments into an ordered list of paths: CSV files, structure files, and every
    other entry of an input folder (those become rejections with a reason, see ``enumerate_records``).

    A folder contributes its entries sorted by name (not recursively); a ``.txt``/``.list`` file
    contributes the paths it lists (one per line, relative to the list's folder). A missing
    command-line path raises ``FileNotFoundError`` naming it; a missing listed path is a rejection.
    """
    files: list[Path] = []
    for raw in paths:
        files.extend(_expand_one(Path(os.path.abspath(Path(raw).expanduser())), top_level=True))
    return files


def _expand_one(path: Path, top_level: bool) -> list[Path]:
    """Paths from one input: a folder's entries, a list's entries (folders in a list are expanded
    too; lists in a list are not), else the path itself (unreadable paths become rejections)."""
    problem = path_problem(path)
    if problem is not None and problem[0] != "not_a_file":
        if top_level and not os.path.lexists(path):
            raise FileNotFoundError(f"input not found: {path}")
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if not p.name.startswith(LOCK_NAME))  # a stage's lock is no input
        if not found:
            if top_level:
                raise FileNotFoundError(f"input folder holds no CSV, CIF or POSCAR files: {path}")
            return [path]
        return found
    if path.name.endswith(LIST_SUFFIXES) and top_level:
        lines = [line.strip() for line in path.read_text().splitlines()]
        listed = [path.parent / line if not Path(line).is_absolute() else Path(line) for line in lines if line and not line.startswith("#")]
        return [p for item in listed for p in _expand_one(Path(os.path.abspath(item)), top_level=False)]
    return [path]


def enumerate_records(paths: Iterable[str | Path]) -> list[RawRecord]:
    """List every record of the inputs, in a fixed order, without parsing structures.

    Paths that cannot hold a structure (folders, FIFOs, dangling or looping symlinks, files of
    another type) are listed too, as records that ``parse_record`` rejects with the reason.
    """
    records: list[RawRecord] = []
    paths = list(paths)
    named = {Path(os.path.abspath(Path(p).expanduser())) for p in paths}
    for path in expand_inputs(paths):
        problem = path_problem(path)
        if problem is None and path.name.endswith(CSV_SUFFIXES):
            try:
                records.extend(_csv_records(path, start=len(records)))
            except (ValueError, csv.Error) as err:  # UnicodeDecodeError is a ValueError
                if path in named:  # the file the user named: the command cannot go on without it
                    raise
                # a stray CSV in an input folder is one named rejection; the folder's other files go on
                records.append(RawRecord(len(records), path.name, str(path), path=path, skip_reason="bad_csv",
                                         skip_message=f"{path}: {err}"))
            continue
        if problem is None and path.name.lower().endswith(".cif") and _is_small(path):
            blocks = _multi_block(path)
            if blocks:
                records.extend(RawRecord(len(records) + i, f"{path.name}:{name}", f"{path}:{name}", cif=text) for i, (name, text) in enumerate(blocks))
                continue
        record = RawRecord(len(records), path.name, str(path), path=path)
        if problem is not None:
            record.skip_reason, record.skip_message = problem
        elif not _looks_like_structure(path.name):
            record.skip_reason = "unsupported_file_type"
            record.skip_message = f"{path}: not a CSV, CIF or POSCAR file (expected {', '.join(CSV_SUFFIXES + STRUCTURE_SUFFIXES)} or POSCAR*/CONTCAR*)"
        records.append(record)
    return records


_DATA_BLOCK = re.compile(r"^data_(\S*)", re.MULTILINE)


def split_cif_blocks(text: str) -> list[tuple[str, str]]:
    """Split CIF text into ``(block name, block text)`` pairs, one per ``data_`` block, in file order.

    Block names that repeat get a ``#k`` suffix so every block keeps a distinct name.
    """
    starts = [m for m in _DATA_BLOCK.finditer(text)]
    blocks, seen = [], {}
    for k, match in enumerate(starts):
        end = starts[k + 1].start() if k + 1 < len(starts) else len(text)
        name = match.group(1) or f"block{k}"
        seen[name] = seen.get(name, 0) + 1
        blocks.append((name if seen[name] == 1 else f"{name}#{seen[name]}", text[match.start():end]))
    return blocks


def _is_small(path: Path) -> bool:
    try:
        return path.stat().st_size <= MAX_STRUCTURE_BYTES
    except OSError:
        return False


def _multi_block(path: Path) -> list[tuple[str, str]] | None:
    """The blocks of a CIF file with several ``data_`` blocks (a generation shard's CIF); None otherwise."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return None  # parse_record reports it
    blocks = split_cif_blocks(text)
    return blocks if len(blocks) > 1 else None


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
    """Parse a record into a ``Structure``; raise ``RecordError`` naming it and the reason.

    Reasons: the record's ``skip_reason``, ``file_too_large``, ``bad_structure_file`` (unparsable,
    truncated, empty), ``bad_lattice`` (a cell length <= 0 or not finite), ``empty_structure`` and
    ``unknown_element``. Physical checks follow in ``check_structure_sanity``.
    """
    if record.skip_reason is not None:
        raise RecordError(record.skip_reason, record.skip_message or record.source, record.record_id)
    text = record.cif
    if text is None:
        assert record.path is not None
        problem = path_problem(record.path)  # re-checked: never open a FIFO that appeared meanwhile
        if problem is not None:
            raise RecordError(problem[0], problem[1], record.record_id)
        size = record.path.stat().st_size
        if size > MAX_STRUCTURE_BYTES:
            raise RecordError("file_too_large", f"{record.source} is {size} bytes > {MAX_STRUCTURE_BYTES}", record.record_id)
        if size == 0:
            raise RecordError("bad_structure_file", f"{record.source} is empty", record.record_id)
        if record.path.name.lower().endswith(".cif"):
            try:
                text = record.path.read_text()
            except (UnicodeDecodeError, OSError) as err:
                raise RecordError("bad_structure_file", f"cannot read {record.source} ({type(err).__name__}: {err})", record.record_id) from err
    elif len(text) > MAX_STRUCTURE_BYTES:
        raise RecordError("file_too_large", f"CIF text of {record.source} has {len(text)} characters > {MAX_STRUCTURE_BYTES}", record.record_id)
    if text is not None:
        _check_cif_cell(text, record)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            if text is not None:
                if not text.strip():
                    raise ValueError("empty CIF")
                structure = parse_p1_cif(text) or Structure.from_str(text, fmt="cif")
            else:
                structure = Structure.from_file(record.path)
    except RecordError:
        raise
    except Exception as err:  # pymatgen raises many types (even ZeroDivisionError) on malformed files
        if "parse Element or Species" in str(err) or "is not a valid Element" in str(err):
            raise RecordError("unknown_element", f"{record.source}: {err}", record.record_id) from err
        raise RecordError("bad_structure_file", f"cannot parse {record.source} ({type(err).__name__}: {err})", record.record_id) from err
    if len(structure) == 0:
        raise RecordError("empty_structure", f"{record.source} has no sites", record.record_id)
    unknown = unknown_species(structure)
    if unknown:
        raise RecordError("unknown_element", f"{record.source}: unknown element symbol(s) {', '.join(unknown)}", record.record_id)
    return structure


_CELL_LENGTH = re.compile(r"^\s*_cell_length_([abc])\s+(\S+)", re.MULTILINE)


def _check_cif_cell(text: str, record: RawRecord) -> None:
    """A CIF cell length is a positive number; pymatgen silently builds a mirrored cell from a = -4."""
    for axis, value in _CELL_LENGTH.findall(text):
        try:
            length = float(value.split("(")[0])
        except ValueError:
            continue  # unparsable values are pymatgen's to reject
        if not math.isfinite(length) or length <= 0:
            raise RecordError("bad_lattice", f"{record.source}: cell length {axis} = {value} (must be a positive number)", record.record_id)


def unknown_species(structure: Structure) -> list[str]:
    """Symbols of ``structure`` that are no chemical element (pymatgen reads ``Xx`` as a dummy species)."""
    bad = set()
    for site in structure:
        for species in site.species:
            element = getattr(species, "element", species)
            if not isinstance(element, Element):
                bad.add(str(getattr(species, "symbol", species)))
    return sorted(bad)


def check_structure_sanity(
    structure: Structure, record_id: str | None = None, source: str = "",
    max_length_ang: float = MAX_LATTICE_LENGTH_ANG, min_bond_factor: float = MIN_BOND_FACTOR,
) -> None:
    """Raise ``RecordError`` for what no crystal can be: non-finite or collapsed cells, lattice
    vectors beyond ``max_length_ang``, non-finite coordinates, atoms on top of each other
    (``min_bond_factor`` x sum of covalent radii; 0 turns the overlap checks off). Cheap and bounded: the neighbour search that
    measures bonds only runs on cells wide enough for it (a 0.05 A cell would need millions of images).
    """
    where = f"{source}: " if source else ""
    matrix = np.asarray(structure.lattice.matrix, dtype=float)
    if not np.isfinite(matrix).all():
        raise RecordError("bad_lattice", f"{where}non-finite lattice", record_id)
    if not np.isfinite(structure.frac_coords).all():
        raise RecordError("bad_coordinates", f"{where}non-finite atomic coordinates", record_id)
    lengths = np.linalg.norm(matrix, axis=1)
    volume = abs(float(np.linalg.det(matrix)))
    if volume <= 1e-6 or lengths.min() <= 0:
        raise RecordError("bad_lattice", f"{where}degenerate cell (volume {volume:.3g} A^3)", record_id)
    if lengths.max() > max_length_ang:
        raise RecordError("lattice_out_of_range", f"{where}lattice vector of {lengths.max():.4g} A > {max_length_ang:g} A", record_id)
    if min_bond_factor <= 0 or not structure.is_ordered:
        return  # overlap checks off (validate flags overlapping candidates itself); disorder: the codec's reason
    widths = volume / np.linalg.norm(np.cross(matrix[[1, 2, 0]], matrix[[2, 0, 1]]), axis=1)
    n = len(structure)
    if widths.min() < 0.3 or volume / n < 1.0:
        raise RecordError("overlapping_atoms", f"{where}cell too small for its atoms (width {widths.min():.3g} A, "
                          f"{volume / n:.3g} A^3 per atom)", record_id)
    from pccd_hpc.data.geometry import min_bond_ratio

    ratio = min_bond_ratio(structure)
    if ratio < min_bond_factor:
        from pccd_hpc.data.geometry import shortest_distance_ang

        raise RecordError("overlapping_atoms", f"{where}atoms {shortest_distance_ang(structure):.3g} A apart "
                          f"({ratio:.2f} x the sum of covalent radii < {min_bond_factor:g})", record_id)
