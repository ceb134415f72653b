"""What a generation run writes for a scientist: structures.csv, cifs/<id>.cif and structures.extxyz."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import ase.io
import h5py
import numpy as np
import pytest
from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from pccd_hpc.data.shards import read_structures
from pccd_hpc.generate.plan import GeneratePlan
from pccd_hpc.sampling.checkpoint_sampler import default_checkpoint, load_model
from pccd_hpc.generate.stage import run_generate
from pccd_hpc.generate.table import TABLE_COLUMNS, structure_cif_path


def _plan(ckpt: Path, **kw) -> GeneratePlan:
    loaded = load_model(str(ckpt))
    base = dict(n=8, systems=[(12, 8, 8), (25, 8, 8)], checkpoint=str(ckpt), checkpoint_sha256=loaded.sha256,
                steps=10, batch_size=8, n_tasks=2, seed=3, codec=loaded.codec.to_dict(), push_apart_factor=0.8)
    return GeneratePlan(**{**base, **kw})


def _table(folder: Path) -> list[dict[str, str]]:
    with open(folder / "structures.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def bundled_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("gen")
    return out, run_generate(_plan(default_checkpoint()), out)


def test_table_has_one_row_per_sample_matching_the_shards(bundled_run) -> None:
    out, summary = bundled_run
    rows = _table(out)
    assert tuple(rows[0]) == TABLE_COLUMNS and len(rows) == 8 == len({r["id"] for r in rows})
    shard_structures = {rid: s for k in range(2) for rid, s in read_structures(out / f"shard-{k:05d}.h5")}
    for k in range(2):
        with h5py.File(out / f"shard-{k:05d}.h5") as h5:
            sampled = dict(zip((v.decode() for v in h5["record_id"][:]), h5["min_bond_ratio_sampled"][:]))
            shift = dict(zip((v.decode() for v in h5["record_id"][:]), h5["push_max_shift_ang"][:]))
    valid = [r for r in rows if r["valid"] == "True"]
    assert len(valid) == summary["n_valid"] > 0
    for row in valid:
        s = shard_structures[row["id"]]
        assert row["formula"] == s.composition.reduced_formula and int(row["n_sites"]) == len(s)
        assert abs(float(row["density_g_cm3"]) - s.density) < 1e-3
        analyzer = SpacegroupAnalyzer(s, symprec=0.1)
        assert (row["space_group"], int(row["space_group_number"])) == (analyzer.get_space_group_symbol(),
                                                                       analyzer.get_space_group_number())
        assert row["symprec_ang"] == "0.1" and row["reason"] == "" and row["cif"] == f"cifs/{row['id']}.cif"
        assert float(row["min_bond_ratio"]) >= 0.79  # as written, after the push-apart
        if row["id"] in sampled:
            assert abs(float(row["min_bond_ratio_sampled"]) - sampled[row["id"]]) < 1e-3
            assert abs(float(row["push_max_shift_ang"]) - shift[row["id"]]) < 1e-3
    non_p1 = sum(r["space_group_number"] != "1" for r in valid) / len(valid)
    assert summary["non_p1_fraction"] == pytest.approx(non_p1) and summary["space_group_symprec_ang"] == 0.1


def test_each_structure_opens_alone_in_pymatgen_and_ase_and_the_extxyz_whole(bundled_run) -> None:
    out, summary = bundled_run
    valid = [r for r in _table(out) if r["valid"] == "True"]
    shard_structures = {rid: s for k in range(2) for rid, s in read_structures(out / f"shard-{k:05d}.h5")}
    for row in valid:
        path = structure_cif_path(out, row["id"])
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # the multi-block CIF warned once per block
            s = Structure.from_file(path)
        assert s.composition == shard_structures[row["id"]].composition
        assert np.allclose(s.lattice.abc, shard_structures[row["id"]].lattice.abc, atol=1e-5)
        assert f"_pccd_spglib_space_group_number   {row['space_group_number']}" in path.read_text()
        assert len(ase.io.read(path)) == len(s)
    frames = ase.io.read(out / "structures.extxyz", index=":")
    assert [f.info["id"] for f in frames] == [r["id"] for r in valid]
    for frame, row in zip(frames, valid):
        assert sorted(frame.get_chemical_symbols()) == sorted(str(e) for e in shard_structures[row["id"]].species)
        assert len(frame) == int(row["n_sites"]) and frame.info["space_group"] == row["space_group"]


def test_picture_grid_gives_each_structure_at_least_400_px(bundled_run) -> None:
    from PIL import Image

    out, summary = bundled_run
    width, height = Image.open(out / "structures.png").size
    shown = min(summary["n_valid"], 12)
    columns = min(4, shown)
    assert width / columns >= 400 and height / -(-shown // columns) >= 350


def test_failed_samples_have_a_row_with_the_reason(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """An untrained model decodes almost nothing: every sample still gets a row, with why it failed."""
    run_generate(_plan(tiny_checkpoint, n=4, n_tasks=1, steps=2), tmp_path)
    rows = _table(tmp_path)
    assert len(rows) == 4
    failed = [r for r in rows if r["valid"] == "False"]
    assert failed, "the untrained model decoded every sample: the test needs failures"
    for row in failed:
        assert row["reason"] and row["formula"] == "" and row["cif"] == ""
        assert not structure_cif_path(tmp_path, row["id"]).exists()


def test_rerun_rewrites_missing_cifs_and_refuses_unsafe_ids(bundled_run, tmp_path: Path) -> None:
    out, _ = bundled_run
    valid = [r for r in _table(out) if r["valid"] == "True"]
    path = structure_cif_path(out, valid[0]["id"])
    text = path.read_text()
    path.unlink()
    run_generate(_plan(default_checkpoint()), out)  # every task verified: only the merge runs
    assert path.read_text() == text
    with pytest.raises(ValueError, match="not a sample id"):
        structure_cif_path(tmp_path, "../evil")
