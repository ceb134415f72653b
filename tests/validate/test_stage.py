"""The validate stage end to end with real CHGNet: hull vs cached references, resume, failure isolation."""

from __future__ import annotations

import json

import pytest
from pymatgen.core import Lattice, Structure

from pccd_hpc.materials.relax import RelaxConfig
from pccd_hpc.validate.config import ValidateConfig
from pccd_hpc.validate.stage import ValidatePaths, run_validate
from pccd_hpc.records import read_results_csv
from _structures import DATA, diamond_si, rocksalt_mgo, zincblende_mgo


@pytest.fixture()
def candidates(tmp_path):
    folder = tmp_path / "cands"
    folder.mkdir()
    rocksalt_mgo().to(filename=str(folder / "mgo-rocksalt.cif"))
    zincblende_mgo().to(filename=str(folder / "mgo-zincblende.cif"))
    diamond_si().to(filename=str(folder / "si-diamond.cif"))
    # Two atoms 0.35 Å apart: structurally invalid, and its forces trip the explosion guard.
    Structure(Lattice.cubic(3.0), ["Mg", "O"], [[0, 0, 0], [0.1167, 0, 0]]).to(filename=str(folder / "mgo-overlap.cif"))
    return folder


def test_validate_end_to_end_and_resume(candidates, tmp_path, caplog):
    out = tmp_path / "vdir"
    cache = tmp_path / "cache"
    config = ValidateConfig(relax=RelaxConfig(max_force_abort_ev_per_ang=200.0))
    paths = ValidatePaths(input=candidates, out_dir=out, reference=DATA / "mgo_reference.csv",
                          train=DATA / "mgo_reference.csv", reference_cache=cache)
    summary = run_validate(config, paths)
    rows = {r["id"]: r for r in read_results_csv(out / "results.csv")}
    assert set(rows) == {"mgo-rocksalt", "mgo-zincblende", "si-diamond", "mgo-overlap"}
    # The reference MgO (mp-549706) is wurtzite-like: CHGNet puts rock salt below it, zinc blende above rock salt.
    assert rows["mgo-rocksalt"]["e_above_hull_ev_per_atom"] < 0.0
    assert rows["mgo-zincblende"]["e_above_hull_ev_per_atom"] > rows["mgo-rocksalt"]["e_above_hull_ev_per_atom"]
    # Si has no elemental phase in the reference data: ASE's diamond reference state is used and said so.
    assert rows["si-diamond"]["e_above_hull_ev_per_atom"] == pytest.approx(0.0, abs=2e-3)
    metrics = json.loads((out / "metrics.json").read_text())
    assert any("Si: ASE diamond" in note for note in metrics["hull_notes"])
    # One failure is recorded, the others finished.
    assert rows["mgo-overlap"]["error"] and "mgo-overlap" in rows["mgo-overlap"]["error"]
    assert rows["mgo-overlap"]["unphysical"] is True and rows["mgo-overlap"]["hull_status"] == "unphysical"
    assert rows["mgo-overlap"]["e_above_hull_ev_per_atom"] is None
    assert metrics["relax_failed"] == 1 and metrics["structural_validity"] == pytest.approx(0.75)
    assert metrics["n_candidates"] == 4 and 0 < metrics["stable_below_0.1"] < 1
    assert summary["computed"] == 4 + 6  # 4 candidates + 5 references + Si fallback
    assert len(list((cache / "chgnet").glob("*.json"))) == 6

    # Re-run: nothing is recomputed, the same table comes out.
    again = run_validate(config, paths)
    assert again["computed"] == 0
    assert read_results_csv(out / "results.csv") == list(rows[k] for k in sorted(rows))

    # A second candidate set sharing the cache reuses every reference energy.
    other = ValidatePaths(input=candidates / "mgo-rocksalt.cif", out_dir=tmp_path / "vdir2",
                          reference=DATA / "mgo_reference.csv", reference_cache=cache)
    assert run_validate(config, other)["computed"] == 1


def test_array_tasks_split_the_work(candidates, tmp_path, monkeypatch):
    monkeypatch.setenv("PCCD_HPC_CACHE", str(tmp_path / "user-cache"))
    out = tmp_path / "vdir"
    paths = ValidatePaths(input=candidates, out_dir=out)
    config = ValidateConfig(relax=RelaxConfig(max_steps=3, max_force_abort_ev_per_ang=200.0))
    first = run_validate(config, paths, task_index=0, num_tasks=2, finalize=False)
    second = run_validate(config, paths, task_index=1, num_tasks=2, finalize=True)
    assert first["jobs"] == 2 and second["jobs"] == 2
    assert not (out / "results.csv").exists() or second["metrics"]["n_candidates"] == 4
    assert second["metrics"]["n_missing_records"] == 0
    with pytest.raises(ValueError, match="task_index"):
        run_validate(config, paths, task_index=2, num_tasks=2)


@pytest.mark.slow
def test_cli_with_phonons_and_band_plot(tmp_path, monkeypatch):
    from pccd_hpc.launch import main

    monkeypatch.setenv("PCCD_HPC_CACHE", str(tmp_path / "user-cache"))
    cands = tmp_path / "cands"
    cands.mkdir()
    diamond_si().to(filename=str(cands / "si.cif"))
    out = tmp_path / "vdir"
    assert main(["validate", "--input", str(cands), "--out", str(out), "--phonons", "--band-structure", "si",
                 "--phonon-min-length", "7"]) == 0
    row = read_results_csv(out / "results.csv")[0]
    assert row["imaginary_modes"] is False and row["min_frequency_thz"] > -0.1
    # Diamond is silicon's ground state: on the MP-20 DFT hull, within the calibration window.
    assert row["hull_status"] == "ok" and -0.10 <= row["e_above_hull_ev_per_atom"] <= 0.15
    assert (out / "phonons" / "si_bands.png").stat().st_size > 10_000
    assert json.loads((out / "config.json").read_text())["validate"]["phonons"] is True
    assert main(["report", "--val", str(out), "--out", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "phonons" / "si_bands.png").exists()


def test_shard_folder_input_from_the_encode_stage(candidates, tmp_path, monkeypatch):
    """validate reads the structures stored in HDF5 shards (encode or generate output)."""
    monkeypatch.setenv("PCCD_HPC_CACHE", str(tmp_path / "user-cache"))
    from pccd_hpc.data.encode import EncodeConfig, run_encode

    shards = tmp_path / "shards"
    manifest = run_encode(EncodeConfig([str(candidates)], str(shards)))
    out = tmp_path / "vdir"
    config = ValidateConfig(relax=RelaxConfig(max_steps=3, max_force_abort_ev_per_ang=200.0))
    run_validate(config, ValidatePaths(input=shards, out_dir=out))
    rows = {r["id"]: r for r in read_results_csv(out / "results.csv")}
    assert len(rows) == manifest["n_encoded"] == 3  # encode refuses the overlapping cell
    assert manifest["rejection_reasons"] == {"overlapping_atoms": 1}
    assert {"mgo-rocksalt.cif", "si-diamond.cif"} <= set(rows)
    assert rows["si-diamond.cif"]["formula"] == "Si"
