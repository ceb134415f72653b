"""validate's inputs: every block of a multi-block CIF, POSCAR/*.vasp files, and a named per-file
rejection (never a hang or a crash) for FIFOs, symlink loops, folders named x.cif, dangling links,
truncated CIFs and unknown elements."""

from __future__ import annotations

import csv
import os
import signal
import time
from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure

from pccd_hpc.materials.structure_inputs import read_input_structures
from _structures import rocksalt_mgo


@pytest.fixture()
def alarm():
    """Fail instead of hanging (a FIFO used to block validate forever)."""
    def _raise(signum, frame):
        raise TimeoutError("reading the inputs hung")

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture()
def messy(tmp_path: Path) -> Path:
    folder = tmp_path / "cands"
    folder.mkdir()
    good = rocksalt_mgo().to(fmt="cif")
    (folder / "good.cif").write_text(good)
    blocks = [good.replace("data_MgO", f"data_gen-{i:07d}_MgO") for i in range(5)]
    (folder / "shard-00000.cif").write_text("\n".join(blocks))
    rocksalt_mgo(4.3).to(filename=str(folder / "POSCAR"), fmt="poscar")
    rocksalt_mgo(4.4).to(filename=str(folder / "relaxed.vasp"), fmt="poscar")
    os.mkfifo(folder / "pipe.cif")
    os.symlink(folder / "loop2.cif", folder / "loop1.cif")
    os.symlink(folder / "loop1.cif", folder / "loop2.cif")
    (folder / "x.cif").mkdir()
    os.symlink(folder / "gone.cif", folder / "dangling.cif")
    (folder / "truncated.cif").write_text(good[: good.index("_atom_site")] + "loop_\n _atom_site_type_symbol\n")
    (folder / "unknown.cif").write_text(good.replace("Mg", "Xx"))
    return folder


def test_every_input_is_read_or_rejected_by_name(messy: Path, alarm) -> None:
    start = time.perf_counter()
    good, rejected = read_input_structures(messy)
    assert time.perf_counter() - start < 30
    ids = {rid for rid, _ in good}
    assert {f"shard-00000:gen-{i:07d}_MgO" for i in range(5)} <= ids  # all 5 blocks, not 1
    assert {"good", "POSCAR", "relaxed"} <= ids
    assert len(ids) == 8
    reasons = {Path(r.source).name.split(":")[0]: r for r in rejected}
    expected = {"pipe.cif": "special_file", "loop1.cif": "symlink_loop", "loop2.cif": "symlink_loop", "x.cif": "not_a_file",
                "dangling.cif": "dangling_symlink", "truncated.cif": "bad_structure_file", "unknown.cif": "unknown_element"}
    for name, reason in expected.items():
        assert reasons[name].reason == reason, (name, reasons[name])
        assert name in reasons[name].message
    assert len(rejected) == len(expected)


def test_finalize_only_and_a_full_run_record_the_rejections(messy: Path, tmp_path: Path, alarm, monkeypatch) -> None:
    """--finalize-only on inputs with an unknown element no longer crashes; rejected_inputs.csv names each file."""
    from pccd_hpc.launch import main

    monkeypatch.setenv("PCCD_HPC_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "vdir"
    assert main(["validate", "--input", str(messy), "--out", str(out), "--finalize-only"]) == 0
    with open(out / "rejected_inputs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {Path(r["source"]).name for r in rows} >= {"unknown.cif", "pipe.cif", "truncated.cif"}
    assert all(r["reason"] and r["message"] for r in rows)
    import json

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_rejected_inputs"] == 7 and metrics["rejected_input_reasons"]["symlink_loop"] == 2


def test_duplicate_ids_are_rejected_not_fatal(tmp_path: Path) -> None:
    folder = tmp_path / "dup"
    folder.mkdir()
    s = Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif")
    (folder / "a.cif").write_text(s)
    (folder / "a.CIF").write_text(s)
    good, rejected = read_input_structures(folder)
    assert [rid for rid, _ in good] == ["a"]
    assert [r.reason for r in rejected] == ["duplicate_id"]
