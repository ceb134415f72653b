"""Encode rejects what no crystal can be, and lists every skipped path in rejected.csv with a reason."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure

from pccd_hpc.data.encode import EncodeConfig, run_encode
from pccd_hpc.data.readers import enumerate_records


def _mgo() -> Structure:
    return Structure(Lattice.cubic(4.21), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def _rejected(out: Path) -> dict[str, dict]:
    with open(out / "rejected.csv", newline="") as fh:
        return {Path(row["source"].split(":")[0]).name if ":" not in Path(row["source"]).name else row["record_id"]: row
                for row in csv.DictReader(fh)}


@pytest.fixture()
def hostile_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    good = _mgo().to(fmt="cif")
    (folder / "good.cif").write_text(good)
    _mgo().to(filename=str(folder / "POSCAR"), fmt="poscar")
    _mgo().to(filename=str(folder / "mgo.vasp"), fmt="poscar")
    (folder / "negative.cif").write_text(good.replace("_cell_length_a   4.21000000", "_cell_length_a   -4.21000000"))
    (folder / "huge.cif").write_text(Structure(Lattice.cubic(1e5), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif"))
    (folder / "overlap.cif").write_text(Structure(Lattice.cubic(4.0), ["Mg", "O"], [[0, 0, 0], [0.001, 0, 0]]).to(fmt="cif"))
    (folder / "unknown.cif").write_text(good.replace("Mg", "Xx"))
    (folder / "truncated.cif").write_text(good[: len(good) // 2])
    (folder / "dir.cif").mkdir()
    os.mkfifo(folder / "pipe.cif")
    os.symlink(folder / "nowhere.cif", folder / "dangling.cif")
    os.symlink(folder / "loop-b.cif", folder / "loop-a.cif")
    os.symlink(folder / "loop-a.cif", folder / "loop-b.cif")
    (folder / "notes.md").write_text("not a structure")
    blocks = "\n".join(_mgo().to(fmt="cif").replace("data_MgO", f"data_block{i}") for i in range(3))
    (folder / "multi.cif").write_text(blocks)
    return folder


def test_encode_rejects_impossible_structures_and_lists_every_skipped_path(tmp_path: Path, hostile_folder: Path) -> None:
    manifest = run_encode(EncodeConfig([str(hostile_folder)], str(tmp_path / "out"), shard_size=4))
    with open(tmp_path / "out" / "rejected.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_id = {row["record_id"]: row for row in rows}
    expected = {
        "negative.cif": "bad_lattice", "huge.cif": "lattice_out_of_range", "overlap.cif": "overlapping_atoms",
        "unknown.cif": "unknown_element", "truncated.cif": "bad_structure_file", "dir.cif": "not_a_file",
        "pipe.cif": "special_file", "dangling.cif": "dangling_symlink", "loop-a.cif": "symlink_loop",
        "loop-b.cif": "symlink_loop", "notes.md": "unsupported_file_type",
    }
    for record_id, reason in expected.items():
        assert by_id[record_id]["reason"] == reason, (record_id, by_id[record_id])
        assert record_id in by_id[record_id]["message"] or record_id in by_id[record_id]["source"]
    assert "Xx" in by_id["unknown.cif"]["message"] and "Z=" not in by_id["unknown.cif"]["message"]
    assert "0.00" in by_id["overlap.cif"]["message"]  # the distance is named
    # good files: one CIF, a POSCAR, a .vasp file and all three blocks of a multi-block CIF
    assert manifest["n_encoded"] == 6, by_id
    assert manifest["n_rejected"] == len(expected) == len(rows)
    assert manifest["n_input"] == 6 + len(expected)


def test_missing_command_line_input_still_raises_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        enumerate_records([tmp_path / "nope"])


def test_sample_structures_pass_the_sanity_checks(sample_csv: Path, tmp_path: Path) -> None:
    """The physical checks reject none of the real structures of the bundled sample."""
    manifest = run_encode(EncodeConfig([str(sample_csv)], str(tmp_path / "out"), roundtrip_check=False))
    reasons = manifest["rejection_reasons"]
    assert not {"overlapping_atoms", "lattice_out_of_range", "bad_lattice", "unknown_element"} & set(reasons), reasons
