"""VASP followup: Materials Project inputs per step, parsing of real vasprun files, and the whole
chain on the local real SLURM cluster with a stand-in VASP (tests/followup/stand_in_vasp.sh)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from _followup_fixtures import diamond_si, write_validation

STAND_IN = Path(__file__).parent / "stand_in_vasp.sh"
SHARED_VASP = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "vasp"


@pytest.fixture()
def no_potcars(monkeypatch):
    monkeypatch.delenv("PMG_VASP_PSP_DIR", raising=False)
    monkeypatch.setattr("pccd_hpc.materials.vasp.pmg_setting", lambda name: False)


@pytest.fixture()
def shared_vasp() -> Path:
    if not SHARED_VASP.is_dir():
        pytest.skip("../shared/data/vasp is not present")
    return SHARED_VASP


def _incar(folder: Path) -> dict:
    from pymatgen.io.vasp.inputs import Incar

    return dict(Incar.from_file(folder / "INCAR"))


def _prepared(tmp_path: Path):
    from pccd_hpc.followup.config import quick_config
    from pccd_hpc.followup.inputs import read_validation_candidates
    from pccd_hpc.followup.stage import prepare

    vdir = write_validation(tmp_path / "vdir", [{"id": "si", "structure": diamond_si(5.43), "e_hull": 0.01}])
    candidates, _ = read_validation_candidates(vdir)
    config = quick_config("vasp")
    return config, prepare(tmp_path / "fdir", candidates, config)[0]


def test_failing_vasp_cmd_names_step_and_keeps_inputs(tmp_path, monkeypatch, no_potcars):
    from pccd_hpc.materials.errors import StepFailure
    from pccd_hpc.materials.backends.registry import get_dft_backend as get_backend
    from pccd_hpc.followup.steps import run_step

    config, cand = _prepared(tmp_path)
    monkeypatch.setenv("VASP_CMD", str(STAND_IN))
    monkeypatch.delenv("STANDIN_VASPRUN", raising=False)  # the stand-in then exits 3
    with pytest.raises(StepFailure, match=r"si \[relax\].*exited 3"):
        run_step(cand, "relax", get_backend(config))
    incar = _incar(cand / "relax")
    assert incar["IBRION"] == 2 and incar["ISIF"] == 3 and incar["NSW"] > 0  # MPRelaxSet
    assert (cand / "relax" / "POTCAR.spec").read_text().split() == ["Si"]
    assert "exited 3" in json.loads((cand / "relax" / "failed.json").read_text())["error"]
    assert not (cand / "relax" / "result.json").exists()


def test_vasp_steps_locally_with_real_vasprun(tmp_path, monkeypatch, no_potcars, shared_vasp):
    from pymatgen.io.vasp import Vasprun

    from pccd_hpc.materials.errors import StepFailure
    from pccd_hpc.materials.backends.registry import get_dft_backend as get_backend
    from pccd_hpc.materials.kpath import band_path
    from pccd_hpc.followup.steps import run_step

    config, cand = _prepared(tmp_path)
    log = tmp_path / "ran.txt"
    monkeypatch.setenv("VASP_CMD", str(STAND_IN))
    monkeypatch.setenv("STANDIN_VASPRUN", str(shared_vasp / "io_vasprun.xml.gz"))
    monkeypatch.setenv("STANDIN_LOG", str(log))
    backend = get_backend(config)
    relax = run_step(cand, "relax", backend)
    static = run_step(cand, "static", backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        real = Vasprun(str(shared_vasp / "io_vasprun.xml.gz"), parse_potcar_file=False)
    assert relax["energy_ev_per_atom"] == pytest.approx(float(real.final_energy) / 2)
    assert relax["converged"] is True and relax["n_steps"] == len(real.ionic_steps)
    assert static["efermi_ev"] == pytest.approx(float(real.efermi))
    assert _incar(cand / "static")["NSW"] == 0 and _incar(cand / "static")["LCHARG"] is True  # MPStaticSet
    # Resume: finished steps are verified and VASP is not run again.
    assert run_step(cand, "static", backend)["wall_s"] == static["wall_s"]
    assert len(log.read_text().split()) == 2
    # Bands: MPNonSCFSet line (pymatgen's HighSymmKpath list) + uniform inputs; the real file is a
    # uniform run with 20 k-points, so the line step must refuse it with the reason.
    with pytest.raises(StepFailure, match=r"si \[bands\].*20 k-points.*asks for"):
        run_step(cand, "bands", backend)
    from pymatgen.core import Structure
    from pymatgen.io.vasp.inputs import Kpoints

    prim = Structure.from_dict(static["structure"])
    line = Kpoints.from_file(cand / "bands" / "line" / "KPOINTS")
    path = band_path(prim, config.line_density)
    np.testing.assert_allclose(np.array(line.kpts, dtype=float), path.kpoints_frac, atol=1e-8)
    assert _incar(cand / "bands" / "line")["ICHARG"] == 11 and _incar(cand / "bands" / "uniform")["ICHARG"] == 11
    assert Kpoints.from_file(cand / "bands" / "uniform" / "KPOINTS").style.name == "Gamma"


def test_vasp_parsers_on_real_files(tmp_path, shared_vasp):
    import shutil

    from pymatgen.io.vasp import Vasprun

    from pccd_hpc.materials.errors import StepFailure
    from pccd_hpc.materials.vasp import band_structure_from_vasp, eigenvalue_array, read_vasprun

    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copyfile(shared_vasp / "io_vasprun.xml.gz", folder / "vasprun.xml.gz")
    bs = band_structure_from_vasp(folder, "si")  # BSVasprun, uniform mode (no KPOINTS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gap, cbm, vbm, _ = Vasprun(str(folder / "vasprun.xml.gz"), parse_potcar_file=False).eigenvalue_band_properties
    assert bs.get_band_gap()["energy"] == pytest.approx(gap, abs=1e-6)
    eigs = eigenvalue_array(read_vasprun(folder, "si", "bands", parse_eigen=True))
    assert eigs.shape[0] == 2 and eigs.shape[1] == 20  # an ISPIN = 2 run: both spin channels kept
    assert eigs[:, :, 4].min() - eigs[:, :, 3].max() == pytest.approx(gap, abs=1e-6)  # 8 electrons: 4 bands per spin
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copyfile(shared_vasp / "bad_vasprun_vasprun.xml.gz", bad / "vasprun.xml.gz")
    with pytest.raises(StepFailure, match=r"x \[static\].*(truncated|unreadable).*vasprun"):
        read_vasprun(bad, "x", "static")
    unconverged = tmp_path / "unc"
    unconverged.mkdir()
    shutil.copyfile(shared_vasp / "unconverged_vasprun.xml.unconverged_unfixable.gz", unconverged / "vasprun.xml.gz")
    with pytest.raises(StepFailure, match="did not converge"):
        read_vasprun(unconverged, "y2o3", "static")


@pytest.mark.slurm
@pytest.mark.slow
def test_vasp_chain_on_local_slurm(local_slurm, tmp_path, monkeypatch, capsys, no_potcars, shared_vasp):
    from pymatgen.io.vasp.inputs import Incar

    from pccd_hpc.cluster.slurm import wait_for_job
    from pccd_hpc.launch import main

    monkeypatch.setenv("VASP_CMD", str(STAND_IN))
    monkeypatch.setenv("STANDIN_VASPRUN", str(shared_vasp / "io_vasprun.xml.gz"))
    vdir = write_validation(tmp_path / "vdir", [{"id": "si", "structure": diamond_si(5.43), "e_hull": 0.01},
                                                {"id": "si-b", "structure": diamond_si(5.5), "e_hull": 0.05}])
    fdir = tmp_path / "fdir"
    assert main(["followup", "--val", str(vdir), "--top", "2", "--out", str(fdir), "--backend", "vasp", "--preset", "quick",
                 "--cluster", "slurm", "--time", "00:10:00"]) == 0
    ids = dict(item.split("=") for item in capsys.readouterr().out.split())
    assert set(ids) == {f"{c}/{s}" for c in ("si", "si-b") for s in
                        ("relax", "static", "bands", "phonon-forces", "phonons", "finalize")} | {"collect"}
    wait_for_job(ids["collect"], timeout_s=400, poll_s=2)
    state = {name: set(wait_for_job(job_id, timeout_s=60).values()) for name, job_id in ids.items()}
    assert state["si/relax"] == state["si/static"] == {"COMPLETED"}
    assert state["si/bands"] == {"FAILED"}  # the real file is not a line-mode run: refused, not mis-parsed
    assert state["si/phonon-forces"] == {"FAILED"}  # 2-atom forces for a 16-atom supercell: refused
    assert state["si/phonons"] == {"CANCELLED"}  # afterok never satisfied: cancelled, not pending forever
    assert state["si/finalize"] == state["collect"] == {"COMPLETED"}
    cand = fdir / "candidates" / "si"
    summary = json.loads((cand / "summary.json").read_text())
    assert summary["dft_energy_ev_per_atom"] == pytest.approx(-10.84147246 / 2)
    assert summary["band_gap_ev"] is None and "k-points" in summary["errors"]["bands"]
    assert "supercell of 16 atoms" in summary["errors"]["phonons"]  # the force step's reason reaches the summary
    assert (cand / "fig4.png").exists()
    assert Incar.from_file(cand / "phonons" / "disp-000" / "INCAR")["IBRION"] == -1  # phonopy's VASP settings
    assert Incar.from_file(cand / "phonons" / "disp-000" / "INCAR")["EDIFF"] == pytest.approx(1e-8)
    campaign = json.loads((fdir / "summary.json").read_text())
    assert [c["id"] for c in campaign["candidates"]] == ["si", "si-b"]
    logs = sorted(p.name for p in (fdir / "slurm-logs").glob("si-phonon-forces-*.out"))
    assert len(logs) == 1  # diamond: one displacement -> an array of one task
