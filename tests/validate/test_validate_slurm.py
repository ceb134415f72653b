"""validate on the local real SLURM cluster: CHGNet array + finalize, and the VASP array with a stand-in VASP."""

from __future__ import annotations

import json
import shutil
import stat

import pytest
from pymatgen.entries.computed_entries import ComputedStructureEntry

from pccd_hpc.cluster.slurm import wait_for_job
from pccd_hpc.validate.cli import register  # noqa: F401  (the CLI must import without SLURM)
from pccd_hpc.records import read_results_csv
from _structures import DATA, diamond_si, rocksalt_mgo

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _launch(argv: list[str], capsys) -> dict[str, int]:
    from pccd_hpc.launch import main

    assert main(argv) == 0
    out = capsys.readouterr().out.split()
    return {k: int(v) for k, v in (item.split("=") for item in out if "=" in item)}


def test_validate_array_and_finalize_on_slurm(local_slurm, tmp_path, capsys):
    cands = tmp_path / "cands"
    cands.mkdir()
    rocksalt_mgo().to(filename=str(cands / "mgo.cif"))
    diamond_si().to(filename=str(cands / "si.cif"))
    vdir = tmp_path / "vdir"
    ids = _launch(["validate", "--input", str(cands), "--out", str(vdir), "--reference", str(DATA / "mgo_reference.csv"),
                   "--cluster", "slurm", "--array-size", "2", "--time", "00:15:00"], capsys)
    states = wait_for_job(ids["finalize"], timeout_s=400, poll_s=2)
    assert set(states.values()) == {"COMPLETED"}, states
    assert set(wait_for_job(ids["array"], timeout_s=30).values()) == {"COMPLETED"}
    rows = {r["id"]: r for r in read_results_csv(vdir / "results.csv")}
    assert set(rows) == {"mgo", "si"}
    assert rows["mgo"]["e_above_hull_ev_per_atom"] < 0.0  # rock salt below the wurtzite-like reference
    assert len(list((vdir / "slurm-logs").glob("validate-finalize-*.out"))) == 1
    logs = list((vdir / "slurm-logs").glob("validate-[0-9]*_*.out"))
    assert len(logs) == 2  # two array tasks, each with its own log


def test_vasp_array_with_stand_in_vasp(local_slurm, tmp_path, capsys, monkeypatch):
    # A stand-in "VASP": copies a real vasprun.xml (Si, PBE) into the run folder and finishes.
    fake = tmp_path / "fake_vasp.sh"
    fake.write_text(
        "#!/bin/bash\nset -e\n"
        f"cp {DATA / 'io_vasprun.xml.gz'} vasprun.xml.gz\n"
        "cp POSCAR CONTCAR\necho ' reached required accuracy - stopping structural energy minimisation' > OUTCAR\n"
        "echo ran >> runs.log\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("VASP_CMD", str(fake))
    monkeypatch.delenv("PMG_VASP_PSP_DIR", raising=False)
    monkeypatch.setattr("pccd_hpc.materials.vasp.pmg_setting", lambda name: False)
    cands = tmp_path / "cands"
    cands.mkdir()
    diamond_si().to(filename=str(cands / "si-a.cif"))
    diamond_si(5.5).to(filename=str(cands / "si-b.cif"))
    si_ref = ComputedStructureEntry(diamond_si(), -5.3 * 2, entry_id="ref-si")
    (tmp_path / "ref.json").write_text(json.dumps([si_ref.as_dict()]))
    vdir = tmp_path / "vdir"
    ids = _launch(["validate", "--input", str(cands), "--out", str(vdir), "--backend", "vasp",
                   "--reference", str(tmp_path / "ref.json"), "--cluster", "slurm", "--array-size", "2",
                   "--time", "00:10:00"], capsys)
    assert set(wait_for_job(ids["array"], timeout_s=120, poll_s=1).values()) == {"COMPLETED"}
    for name in ("si-a", "si-b"):
        folder = vdir / "vasp" / "candidate" / name
        assert (folder / "DONE").exists()
        assert (folder / "static" / "runs.log").read_text() == "ran\n"
        assert (folder / "relax" / "POTCAR.spec").exists()
    states = wait_for_job(ids["finalize"], timeout_s=300, poll_s=2)
    assert set(states.values()) == {"COMPLETED"}, states
    rows = {r["id"]: r for r in read_results_csv(vdir / "results.csv")}
    assert rows["si-a"]["energy_ev_per_atom"] == pytest.approx(-5.42073623)
    assert rows["si-a"]["e_above_hull_ev_per_atom"] == pytest.approx(-5.42073623 + 5.3)
    assert shutil.which("sbatch")
