"""The encode stage: shards, manifest, rejections, resume, MPI and the CLI."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from pccd_hpc.data.encode import EncodeConfig, load_manifest, run_encode
from pccd_hpc.data.shards import iter_structures, list_shards
from pccd_hpc.launch import main as launch_main

csv.field_size_limit(sys.maxsize)


def _sample_rows(sample_csv: Path, n: int) -> list[dict]:
    with open(sample_csv, newline="") as fh:
        return list(csv.DictReader(fh))[:n]


def _disordered_cif() -> str:
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifWriter

    return str(CifWriter(Structure(Lattice.cubic(3.6), [{"Fe": 0.5, "Ni": 0.5}], [[0, 0, 0]])))


@pytest.fixture()
def messy_csv(tmp_path: Path, sample_csv: Path) -> Path:
    """Good sample rows mixed with every kind of bad record."""
    rows = _sample_rows(sample_csv, 30)
    template = dict(rows[0])
    bad = [
        {**template, "material_id": "bad-garbage", "cif": "this is not a CIF"},
        {**template, "material_id": "bad-empty", "cif": ""},
        {**template, "material_id": "bad-partial", "cif": _disordered_cif()},
    ]
    path = tmp_path / "messy.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(template))
        writer.writeheader()
        writer.writerows(rows[:10] + bad + rows[10:])
    return path


def test_bad_records_are_rejected_with_reasons_and_the_rest_kept(tmp_path: Path, messy_csv: Path) -> None:
    manifest = run_encode(EncodeConfig([str(messy_csv)], str(tmp_path / "out"), shard_size=8))
    assert manifest["n_input"] == 33
    assert manifest["n_encoded"] + manifest["n_rejected"] == 33
    with open(tmp_path / "out" / "rejected.csv", newline="") as fh:
        rejected = {row["record_id"]: row for row in csv.DictReader(fh)}
    assert rejected["bad-garbage"]["reason"] == "bad_structure_file"
    assert "bad-garbage" in rejected["bad-garbage"]["message"]
    assert rejected["bad-empty"]["reason"] == "bad_structure_file"
    assert rejected["bad-partial"]["reason"] == "partial_occupancy"
    assert manifest["rejection_reasons"]["bad_structure_file"] == 2
    assert manifest["n_roundtrip_matched"] == manifest["n_encoded"]
    assert sum(s["n_records"] for s in manifest["shards"]) == manifest["n_encoded"]
    ids = [rid for rid, _ in iter_structures(tmp_path / "out")]
    assert len(ids) == manifest["n_encoded"] and not any(i.startswith("bad-") for i in ids)


def test_shard_schema(tmp_path: Path, sample_csv: Path) -> None:
    run_encode(EncodeConfig([str(sample_csv)], str(tmp_path), shard_size=100))
    with h5py.File(list_shards(tmp_path)[0], "r") as h5:
        n = h5["tensors"].shape[0]
        assert h5["tensors"].shape[1:] == (3, 128, 3) and h5["tensors"].dtype == np.float32
        assert h5["tensors"].chunks is not None and h5["tensors"].compression == "gzip"
        assert h5["element_z"].shape == (n, 3) and h5["atomic_numbers"].shape == (n, 16)
        assert json.loads(h5.attrs["codec"])["length_norm"] == "log"
        assert h5["properties/band_gap"].dtype == np.float64
        assert h5["properties/source_set"].dtype.kind == "O"
        assert (h5["n_sites"][:] == (h5["atomic_numbers"][:] > 0).sum(1)).all()
    manifest = load_manifest(tmp_path)
    for shard in manifest["shards"]:
        assert len(shard["sha256"]) == 64


def test_folder_and_list_inputs(tmp_path: Path, sample_csv: Path) -> None:
    folder = tmp_path / "cifs"
    folder.mkdir()
    for row in _sample_rows(sample_csv, 5):
        (folder / f"{row['material_id']}.cif").write_text(row["cif"])
    (folder / "POSCAR_neg").write_text("NaCl\n1.0\n5.6 0 0\n0 5.6 0\n0 0 5.6\nNa Cl\n1 1\nDirect\n-0.25 0 0\n0.25 0.5 0.5\n")
    (folder / "broken.cif").write_text("data_x\n_cell_length_a 3\n")
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"# a list of inputs\n{folder}\n")
    manifest = run_encode(EncodeConfig([str(listing)], str(tmp_path / "out")))
    assert manifest["n_input"] == 7
    assert manifest["rejection_reasons"].get("bad_structure_file") == 1
    ids = dict(iter_structures(tmp_path / "out"))
    assert "POSCAR_neg" in ids


def test_rerun_keeps_finished_shards_and_redoes_damaged_ones(tmp_path: Path, sample_csv: Path) -> None:
    config = EncodeConfig([str(sample_csv)], str(tmp_path), shard_size=80)
    first = run_encode(config)
    shards = list_shards(tmp_path)
    assert len(shards) == 4
    mtimes = {p.name: p.stat().st_mtime_ns for p in shards}
    shards[1].unlink()  # an interrupted run that never finished shard 1
    with open(shards[2], "r+b") as fh:  # and a damaged shard 2
        fh.seek(100)
        fh.write(b"corrupt")
    second = run_encode(config)
    assert second["shards"] == first["shards"]
    assert shards[0].stat().st_mtime_ns == mtimes[shards[0].name]
    assert shards[3].stat().st_mtime_ns == mtimes[shards[3].name]
    assert shards[2].stat().st_mtime_ns != mtimes[shards[2].name]
    assert not list(tmp_path.glob(".*.tmp"))


def test_changed_codec_is_not_mixed_with_old_shards(tmp_path: Path, sample_csv: Path) -> None:
    from pccd_hpc.data.codec import CodecConfig

    run_encode(EncodeConfig([str(sample_csv)], str(tmp_path), shard_size=200))
    manifest = run_encode(EncodeConfig([str(sample_csv)], str(tmp_path), shard_size=200, codec=CodecConfig.paper()))
    assert manifest["codec"]["length_norm"] == "linear"
    for shard in list_shards(tmp_path):
        with h5py.File(shard) as h5:
            assert json.loads(h5.attrs["codec"])["length_norm"] == "linear"


@pytest.mark.mpi
def test_mpiexec_two_ranks_write_the_same_shards(tmp_path: Path, sample_csv: Path) -> None:
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    assert mpiexec, "mpiexec not found (pip install mpich)"
    one = run_encode(EncodeConfig([str(sample_csv)], str(tmp_path / "one"), shard_size=60))
    cmd = [mpiexec, "-n", "2", sys.executable, "-m", "pccd_hpc.launch", "encode",
           "--input", str(sample_csv), "--out", str(tmp_path / "two"), "--shard-size", "60"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "rank 1/2" in proc.stderr and "rank 0/2" in proc.stderr
    two = load_manifest(tmp_path / "two")
    assert two["shards"] == one["shards"]  # same names, counts and sha256
    assert two["n_roundtrip_matched"] == one["n_roundtrip_matched"]


def test_cli_encode_and_info(tmp_path: Path, sample_csv: Path, capsys) -> None:
    assert launch_main(["encode", "--input", str(sample_csv), "--out", str(tmp_path), "--shard-size", "500"]) == 0
    assert json.loads(capsys.readouterr().out)["n_encoded"] > 150
    assert launch_main(["info", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["n_shards"] == 1
    assert launch_main(["encode", "--input", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "x")]) == 2
    assert launch_main(["info", str(tmp_path / "x")]) == 2


def test_cli_help_for_every_subcommand(capsys) -> None:
    from pccd_hpc.launch import build_parser

    parser = build_parser()
    subcommands = parser._subparsers._group_actions[0].choices  # noqa: SLF001 (argparse keeps them here)
    assert {"encode", "info", "train", "generate", "reconstruct", "validate", "report"} <= set(subcommands)
    for name in subcommands:
        with pytest.raises(SystemExit) as done:
            build_parser().parse_args([name, "--help"])
        assert done.value.code == 0 and "usage" in capsys.readouterr().out, name
    proc = subprocess.run([sys.executable, "-m", "pccd_hpc.launch", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "encode" in proc.stdout


def test_fast_p1_cif_reader_agrees_with_pymatgen(sample_csv: Path) -> None:
    """The fast P1 path reads the same crystal as pymatgen (which snaps coords by < 1e-3 A)."""
    import warnings

    from pymatgen.core import Structure

    from pccd_hpc.data.codec import periodic_distances
    from pccd_hpc.data.readers import parse_p1_cif

    for row in _sample_rows(sample_csv, 120):
        fast = parse_p1_cif(row["cif"])
        assert fast is not None, row["material_id"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = Structure.from_str(row["cif"], fmt="cif")
        assert np.allclose(fast.lattice.matrix, ref.lattice.matrix, atol=1e-8)
        assert sorted(s.specie.Z for s in fast) == sorted(s.specie.Z for s in ref)
        dist = periodic_distances(fast.frac_coords, ref.frac_coords, ref.lattice.matrix)
        same = np.array([s.specie.Z for s in fast])[:, None] == np.array([s.specie.Z for s in ref])[None, :]
        assert np.where(same, dist, np.inf).min(axis=1).max() < 1e-3


def test_fast_reader_declines_symmetry_and_partial_occupancy() -> None:
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifWriter

    from pccd_hpc.data.readers import parse_p1_cif

    rocksalt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert parse_p1_cif(str(CifWriter(rocksalt, symprec=0.1))) is None  # symmetry operations: pymatgen's job
    assert parse_p1_cif(_disordered_cif()) is None
    assert len(parse_p1_cif(str(CifWriter(rocksalt)))) == 8
