"""Hostile inputs, built programmatically: a few hundred malformed files mixed with good structures go
through `encode` and `validate` (CLI, separate processes, with a wall-clock and a memory limit),
then a corrupted generation folder goes through `generate` and `validate`. Every run completes,
every good structure is processed, every bad input is listed with a reason naming it."""

from __future__ import annotations

import csv
import json
import os
import random
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure

from pccd_hpc.data.sample import sample_structures

REPO = Path(__file__).resolve().parents[1]
MEMORY_LIMIT_BYTES = 6 * 2**30
csv.field_size_limit(sys.maxsize)


def _run(args: list[str], timeout_s: float, cwd: Path) -> subprocess.CompletedProcess:
    """Run the CLI in a child process under a wall-clock and an address-space limit."""
    def _limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PCCD_HPC_CACHE": str(cwd / "user-cache")}
    try:
        return subprocess.run([sys.executable, "-m", "pccd_hpc.launch", *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=timeout_s, preexec_fn=_limits)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"{' '.join(args[:1])} hung past {timeout_s} s:\n{(err.stderr or b'')[-3000:]}")


def _build_hostile_folder(folder: Path) -> tuple[dict[str, str], dict[str, str | None], dict[str, str | None]]:
    """Write good and bad inputs; return ``(good name -> kind, encode: name -> expected reason or None,
    validate: name -> expected reason or None)`` (None: accepted)."""
    rng = random.Random(0)
    folder.mkdir()
    good = sample_structures(12, max_sites=8)
    template = good[0].to(fmt="cif")
    enc: dict[str, str | None] = {}
    val: dict[str, str | None] = {}

    def put(name: str, text: str | bytes, encode_reason: str | None, validate_reason: str | None) -> None:
        path = folder / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        enc[name], val[name] = encode_reason, validate_reason

    for i, s in enumerate(good):
        put(f"good-{i:02d}.cif", s.to(fmt="cif"), None, None)
    put("kristall-ü-пример.cif", good[1].to(fmt="cif"), None, None)  # unicode name, good content
    put("POSCAR", good[2].to(fmt="poscar"), None, None)
    put("good-poscar.vasp", good[3].to(fmt="poscar"), None, None)
    for i in range(70):
        put(f"empty-{i:02d}.cif", "", "bad_structure_file", "bad_structure_file")
        put(f"binär-✗-{i:02d}.cif", bytes(rng.getrandbits(8) for _ in range(200 + 37 * i)), "bad_structure_file", "bad_structure_file")
        cut = int(len(template) * (0.05 + 0.01 * i))
        cut_text = template[:cut]
        if "_atom_site_occupancy" in cut_text:  # a cut inside the atom loop may still parse: keep only header cuts
            cut_text = template[: template.index("loop_")]
        put(f"truncated-{i:02d}.cif", cut_text, "bad_structure_file", "bad_structure_file")
    for i, value in enumerate(["nan", "-4.0", "0.0", "-1e-3", "inf"]):
        put(f"lattice-{i}.cif", re.sub(r"_cell_length_a\s+\S+", f"_cell_length_a   {value}", template), "bad_lattice", "bad_lattice")
    nan_coords = Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif").replace("0.50000000", "nan", 1)
    put("nan-coords.cif", nan_coords, "bad_coordinates", "bad_coordinates")
    put("huge-cell.cif", Structure(Lattice.cubic(1e5), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif"),
        "lattice_out_of_range", "lattice_out_of_range")
    for i in range(10):
        d = 0.001 + 0.004 * i
        s = Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [d, 0, 0]])
        put(f"overlap-{i}.cif", s.to(fmt="cif"), "overlapping_atoms", None)  # validate keeps it, flagged unphysical
    put("tiny-cell.cif", Structure(Lattice.cubic(0.05), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif"),
        "overlapping_atoms", None)
    for i in range(5):
        put(f"unknown-{i}.cif", template.replace(str(good[0].species[0]), ["Xx", "Qq", "Zz", "Yy", "Ab"][i]),
            "unknown_element", "unknown_element")
    partial = Structure(Lattice.cubic(3.6), [{"Fe": 0.5, "Ni": 0.5}], [[0, 0, 0]])
    put("partial.cif", partial.to(fmt="cif"), "partial_occupancy", "partial_occupancy")
    big = Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    big.make_supercell([3, 3, 2])  # 36 sites
    put("too-many-sites.cif", big.to(fmt="cif"), "too_many_sites", None)
    quaternary = Structure(Lattice.cubic(7.0), ["Mg", "Ca", "Ti", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0, 0.5, 0], [0.25, 0.25, 0.25]])
    put("four-elements.cif", quaternary.to(fmt="cif"), "too_many_elements", None)
    with open(folder / "huge-file.cif", "wb") as fh:  # sparse: 25 MB without writing them
        fh.truncate(25 * 2**20)
    enc["huge-file.cif"] = val["huge-file.cif"] = "file_too_large"
    os.mkfifo(folder / "fifo.cif")
    enc["fifo.cif"] = val["fifo.cif"] = "special_file"
    os.symlink(folder / "loop-b.cif", folder / "loop-a.cif")
    os.symlink(folder / "loop-a.cif", folder / "loop-b.cif")
    enc["loop-a.cif"] = enc["loop-b.cif"] = val["loop-a.cif"] = val["loop-b.cif"] = "symlink_loop"
    os.symlink(folder / "missing.cif", folder / "dangling-ü.cif")
    enc["dangling-ü.cif"] = val["dangling-ü.cif"] = "dangling_symlink"
    (folder / "folder.cif").mkdir()
    enc["folder.cif"] = val["folder.cif"] = "not_a_file"
    put("readme.md", "not a structure", "unsupported_file_type", "unsupported_file_type")
    good_names = {name: "good" for name, reason in enc.items() if reason is None}
    return good_names, enc, val


@pytest.mark.slow
def test_hostile_folder_through_encode_and_validate(tmp_path: Path) -> None:
    folder = tmp_path / "hostile"
    good, enc, val = _build_hostile_folder(folder)
    assert len(enc) > 200

    proc = _run(["encode", "--input", str(folder), "--out", str(tmp_path / "shards"), "--shard-size", "64"], 300, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((tmp_path / "shards" / "manifest.json").read_text())
    with open(tmp_path / "shards" / "rejected.csv", newline="") as fh:
        rejected = {Path(row["source"]).name: row for row in csv.DictReader(fh)}
    for name, reason in enc.items():
        if reason is None:
            assert name not in rejected, rejected.get(name)
        else:
            assert name in rejected, f"{name} not listed in rejected.csv"
            assert rejected[name]["reason"] == reason, (name, rejected[name])
            assert name in rejected[name]["message"] or name in rejected[name]["source"]
    assert manifest["n_encoded"] == len(good)
    assert manifest["n_rejected"] == len(enc) - len(good)

    out = tmp_path / "vdir"
    proc = _run(["validate", "--input", str(folder), "--out", str(out), "--max-steps", "2", "--timeout-s", "60"], 420, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "rejected_inputs.csv", newline="") as fh:
        rejected = {Path(row["source"]).name: row for row in csv.DictReader(fh)}
    with open(out / "results.csv", newline="") as fh:
        results = {row["id"]: row for row in csv.DictReader(fh)}
    for name, reason in val.items():
        stem = Path(name).stem
        if reason is None:
            assert stem in results, f"{name} has no result"
        else:
            assert name in rejected, f"{name} not listed in rejected_inputs.csv"
            assert rejected[name]["reason"] == reason, (name, rejected[name])
            assert name in rejected[name]["message"]
    for i in range(10):
        assert results[f"overlap-{i}"]["unphysical"] == "True" and not results[f"overlap-{i}"]["energy_ev_per_atom"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_candidates"] == sum(1 for r in val.values() if r is None)
    assert metrics["n_rejected_inputs"] == sum(1 for r in val.values() if r is not None)
    assert "NaN" not in (out / "metrics.json").read_text()


@pytest.mark.slow
def test_corrupted_generation_folder(tmp_path: Path) -> None:
    gen = tmp_path / "gen"
    args = ["generate", "--n", "12", "--elements", "Mg,O", "--steps", "2", "--array-size", "2", "--batch-size", "6",
            "--out", str(gen)]
    proc = _run(args, 300, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first = json.loads((gen / "summary.json").read_text())
    h5 = gen / "shard-00000.h5"
    h5.write_bytes(h5.read_bytes()[:500])  # truncated HDF5
    cif = gen / "shard-00001.cif"
    cif.write_bytes(cif.read_bytes()[: len(cif.read_bytes()) // 3] or b"data_broken\n")  # truncated CIF
    (gen / "shard-00001.json").write_text("{not json")  # damaged task summary
    (gen / "summary.json").write_text("garbage")

    proc = _run(args, 300, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "shard-00000.h5" in proc.stderr  # the log names what was redone
    summary = json.loads((gen / "summary.json").read_text())
    assert summary["n_generated"] == 12 and summary["n_valid"] == first["n_valid"]
    blocks = sum((gen / f"shard-{k:05d}.cif").read_text().count("data_") for k in range(2))
    assert blocks == summary["n_valid"]

    # validate on a generation folder with a damaged shard: that shard is a named rejection, the rest run
    (gen / "shard-00001.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    out = tmp_path / "vdir"
    proc = _run(["validate", "--input", str(gen), "--out", str(out), "--max-steps", "2"], 300, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "rejected_inputs.csv", newline="") as fh:
        rejected = list(csv.DictReader(fh))
    assert [Path(r["source"]).name for r in rejected] == ["shard-00001.h5"]
    assert rejected[0]["reason"] == "bad_shard" and "shard-00001.h5" in rejected[0]["message"]
