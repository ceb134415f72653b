"""VASP backend: inputs without POTCARs, parsing real vasprun.xml files, refusing bad ones."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pccd_hpc.materials.backends.registry import get_backend
from pccd_hpc.materials.errors import VaspOutputError
from pccd_hpc.validate.record import Job
from pccd_hpc.validate.store import RecordStore
from _structures import DATA, SHARED_VASP, diamond_si

needs_shared = pytest.mark.skipif(not SHARED_VASP.is_dir(), reason="needs /work/shared/data/vasp")


def _run_folder(root: Path, vasprun: Path, done: bool = True) -> Path:
    for sub in ("relax", "static"):
        (root / sub).mkdir(parents=True)
        shutil.copy(vasprun, root / sub / "vasprun.xml.gz")
    if done:
        (root / "DONE").write_text("ok\n")
    return root


def test_inputs_are_written_without_potcars(tmp_path, monkeypatch):
    monkeypatch.delenv("PMG_VASP_PSP_DIR", raising=False)
    backend = get_backend("vasp")
    monkeypatch.setattr("pccd_hpc.materials.vasp.pmg_setting", lambda name: False)
    have = backend.write_inputs(diamond_si(), tmp_path / "si")
    assert have is False
    for sub in ("relax", "static"):
        names = {p.name for p in (tmp_path / "si" / sub).iterdir()}
        assert {"INCAR", "KPOINTS", "POSCAR", "POTCAR.spec"} <= names and "POTCAR" not in names
    assert "ISIF = 3" in (tmp_path / "si" / "relax" / "INCAR").read_text()
    assert "NSW = 0" in (tmp_path / "si" / "static" / "INCAR").read_text()


def test_parse_real_si_run_with_mp2020():
    backend = get_backend("vasp")
    result, entry = backend.parse(_run_folder(Path(__import__("tempfile").mkdtemp()), DATA / "io_vasprun.xml.gz"), "si-1")
    assert result.converged
    assert result.energy_ev_per_atom == pytest.approx(-10.84147246 / 2)
    assert result.structure.composition.reduced_formula == "Si"
    assert entry.entry_id == "si-1"


@needs_shared
@pytest.mark.parametrize(
    "name, match",
    [("bad_vasprun_vasprun.xml.gz", "truncated or malformed"), ("postprocess_vasprun.xml.gz", "MaterialsProject2020Compatibility")],
)
def test_unusable_runs_raise_naming_the_record(tmp_path, name, match):
    backend = get_backend("vasp")
    with pytest.raises(VaspOutputError, match=rf"cand-7: .*{match}"):
        backend.parse(_run_folder(tmp_path / "c", SHARED_VASP / name), "cand-7")


@needs_shared
def test_unconverged_run_is_flagged_with_corrected_energy(tmp_path):
    backend = get_backend("vasp")
    result, entry = backend.parse(_run_folder(tmp_path / "y", SHARED_VASP / "unconverged_vasprun.xml.unconverged_unfixable.gz"), "y2o3")
    assert not result.converged
    assert entry.correction < 0  # MP2020 oxide correction applied to Y2O3
    assert result.energy_ev_per_atom == pytest.approx(entry.energy_per_atom)


def test_sync_parses_done_folders_and_lists_pending(tmp_path, monkeypatch):
    from pccd_hpc.validate.vasp_jobs import sync_vasp_jobs

    monkeypatch.delenv("PMG_VASP_PSP_DIR", raising=False)
    monkeypatch.setattr("pccd_hpc.materials.vasp.pmg_setting", lambda name: False)
    backend = get_backend("vasp")
    vasp_dir = tmp_path / "vasp"
    jobs = [Job("si-done", "candidate", diamond_si()), Job("si-new", "candidate", diamond_si(5.5))]
    _run_folder(vasp_dir / "candidate" / "si-done", DATA / "io_vasprun.xml.gz")
    stores = {"candidate": RecordStore(tmp_path / "records"), "reference": RecordStore(tmp_path / "refs")}
    summary = sync_vasp_jobs(jobs, stores, backend, vasp_dir)
    assert summary["computed"] == 1 and summary["pending_external"] == 1 and summary["potcars"] is False
    record = stores["candidate"].get("si-done")
    assert record.energy_ev_per_atom == pytest.approx(-5.42073623) and record.error is None
    assert (vasp_dir / "pending.txt").read_text().split() == [str(vasp_dir / "candidate" / "si-new")]
    assert (vasp_dir / "candidate" / "si-new" / "relax" / "POTCAR.spec").exists()
