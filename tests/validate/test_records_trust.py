"""Issue 30 for validate: size limits before relaxing, records as trustworthy as shards (checksum, settings
hash, collision-free names), --out never read as input, stray files rejected by name, one writer per folder."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pccd_hpc.folder_lock import FolderBusyError
from pccd_hpc.launch import main as launch_main
from pccd_hpc.materials.relax import RelaxConfig
from pccd_hpc.validate.config import ValidateConfig
from pccd_hpc.materials.structure_inputs import read_input_structures
from pccd_hpc.validate.limits import estimate_relax_memory_bytes
from pccd_hpc.validate.record import Job, ValidationRecord
from pccd_hpc.validate.runner import OtherSettingsError, compute_record, pending_jobs
from pccd_hpc.validate.stage import ValidatePaths, run_validate
from pccd_hpc.validate.store import RecordStore
from pccd_hpc.records import read_results_csv, record_stem, write_results_csv
from _structures import DATA, rocksalt_mgo

REPO = Path(__file__).resolve().parents[2]


def test_huge_cell_is_refused_by_the_site_limit_before_anything_runs(chgnet_backend, tmp_path: Path) -> None:
    huge = rocksalt_mgo()
    huge.make_supercell([70, 70, 1])  # 9,800 sites: the probe's 10,000-atom CIF took 8.3 GB in 26 s
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    record = compute_record(Job("huge", "candidate", huge), chgnet_backend, ValidateConfig(), tmp_path)
    assert time.perf_counter() - start < 10
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 300_000  # KiB
    assert record.error_kind == "too_large" and record.n_steps is None
    assert record.error == "huge: not relaxed, 9800 sites, above the site limit of 200 (--max-sites)"


def test_memory_estimate_refuses_with_a_bound_the_test_sets(chgnet_backend, tmp_path: Path) -> None:
    cell = rocksalt_mgo()
    cell.make_supercell([2, 2, 2])  # 16 sites: about 1 GB measured (0.45 GB + the graph)
    need = estimate_relax_memory_bytes(cell) / 1e9
    assert 0.8 < need < 1.3
    config = ValidateConfig(max_memory_gb=0.5)
    record = compute_record(Job("mgo16", "candidate", cell), chgnet_backend, config, tmp_path)
    assert record.error_kind == "too_large"
    assert f"would need about {need:.1f} GB, above the limit of 0.5 GB per worker (--max-memory-gb)" in record.error
    big = rocksalt_mgo()
    big.make_supercell([8, 8, 4])  # 512 sites: above 12 GB before it was stopped
    assert estimate_relax_memory_bytes(big) / 1e9 > 12


def test_ids_that_clashed_get_distinct_files(tmp_path: Path) -> None:
    assert record_stem("a/b") == "a_b-3ec69c85"
    assert record_stem("a_b-3ec69c85") != record_stem("a/b")
    store = RecordStore(tmp_path)
    for rid, energy in (("a/b", -1.0), ("a_b-3ec69c85", -2.0)):
        record = ValidationRecord.for_job(Job(rid, "candidate", rocksalt_mgo()), "chgnet")
        record.energy_ev_per_atom = energy
        store.put(record)
    assert store.get("a/b").energy_ev_per_atom == -1.0 and store.get("a_b-3ec69c85").energy_ev_per_atom == -2.0
    assert record_stem("plain-id") == "plain-id"  # safe ids keep their names


def test_edited_or_damaged_record_is_named_and_redone(tmp_path: Path, caplog) -> None:
    store = RecordStore(tmp_path)
    jobs = [Job(rid, "candidate", rocksalt_mgo()) for rid in ("edited", "damaged", "fine")]
    for job in jobs:
        store.put(ValidationRecord.for_job(job, "chgnet"))
    data = json.loads(store.path("edited").read_text())
    data["energy_ev_per_atom"] = -99.0
    store.path("edited").write_text(json.dumps(data))
    store.path("damaged").write_text(store.path("damaged").read_text()[:50])
    assert [job.record_id for job in pending_jobs(jobs, store)] == ["edited", "damaged"]
    assert "edited.json does not match its checksum (edited or damaged after it was written): computing it again" in caplog.text
    assert "damaged.json is damaged" in caplog.text


def test_csv_cells_a_spreadsheet_would_run_are_neutralised(tmp_path: Path) -> None:
    write_results_csv([{"id": "=HYPERLINK(\"http://x\")", "formula": "@SUM(A1)", "energy_ev_per_atom": -5.5,
                        "hull_note": "-0.25"}], tmp_path / "results.csv")
    text = (tmp_path / "results.csv").read_text()
    assert "'=HYPERLINK" in text and "'@SUM(A1)" in text
    row = read_results_csv(tmp_path / "results.csv")[0]
    assert row["energy_ev_per_atom"] == -5.5 and row["hull_note"] == "-0.25"  # numbers stay numbers


def test_stray_csv_in_an_input_folder_is_one_rejection(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    rocksalt_mgo().to(filename=str(folder / "mgo.cif"))
    (folder / "notes.csv").write_text("name,value\nx,1\n")
    found, rejected = read_input_structures(folder)
    assert [rid for rid, _ in found] == ["mgo"]
    assert [(Path(r.source).name, r.reason) for r in rejected] == [("notes.csv", "bad_csv")]
    assert "no 'cif' column" in rejected[0].message


def test_out_inside_input_is_refused_before_anything_is_written(tmp_path: Path, caplog) -> None:
    folder = tmp_path / "X"
    folder.mkdir()
    rocksalt_mgo().to(filename=str(folder / "mgo.cif"))
    for out in (folder, folder / "vdir"):
        assert launch_main(["validate", "--input", str(folder), "--out", str(out)]) == 2
        assert "is inside --input" in caplog.text
    assert sorted(p.name for p in folder.iterdir()) == ["mgo.cif"]
    (tmp_path / "file").write_text("x")
    assert launch_main(["validate", "--input", str(folder), "--out", str(tmp_path / "file")]) == 2
    assert "is an existing file, not a folder" in caplog.text


def test_changed_settings_never_reuse_old_records(tmp_path: Path) -> None:
    cands = tmp_path / "cands"
    cands.mkdir()
    rocksalt_mgo(4.3).to(filename=str(cands / "mgo.cif"))
    paths = ValidatePaths(input=cands, out_dir=tmp_path / "vdir", reference=DATA / "mgo_reference.csv",
                          reference_cache=tmp_path / "cache")
    first = run_validate(ValidateConfig(relax=RelaxConfig(max_steps=2)), paths)
    assert first["computed"] >= 1
    with pytest.raises(OtherSettingsError, match=r"records/mgo.json was computed with other settings "
                                                 r"\(relax.max_steps 2 -> 3\): use a new --out, or --force-redo"):
        run_validate(ValidateConfig(relax=RelaxConfig(max_steps=3)), paths)
    assert json.loads((paths.out_dir / "config.json").read_text())["validate"]["relax"]["max_steps"] == 2
    redone = run_validate(ValidateConfig(relax=RelaxConfig(max_steps=3)), paths, force_redo=True)
    assert redone["computed"] >= 2  # the candidate and the references, all with the new settings
    record = RecordStore(paths.out_dir / "records").get("mgo")
    assert record.settings_sha256 == ValidateConfig(relax=RelaxConfig(max_steps=3)).record_settings_sha256("candidate")
    assert run_validate(ValidateConfig(relax=RelaxConfig(max_steps=3)), paths)["computed"] == 0


_HOLD = """
import sys, time
from pccd_hpc.folder_lock import folder_lock, task_lock
lock = folder_lock(sys.argv[1], "validate --out " + sys.argv[1]) if sys.argv[2] == "all" else task_lock(sys.argv[1], sys.argv[2], "validate task " + sys.argv[2])
with lock:
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("held", ["all", "0-of-2"])
def test_second_writer_is_refused_naming_the_holder(tmp_path: Path, held: str) -> None:
    cands = tmp_path / "cands"
    cands.mkdir()
    rocksalt_mgo().to(filename=str(cands / "mgo.cif"))
    out = tmp_path / "vdir"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(out), held], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        paths = ValidatePaths(input=cands, out_dir=out, reference=DATA / "mgo_reference.csv")
        with pytest.raises(FolderBusyError, match=rf"in use: validate .*by pid {holder.pid} on "):
            run_validate(ValidateConfig(), paths, task_index=0, num_tasks=1 if held == "all" else 2)
        assert not (out / "config.json").exists()
    finally:
        holder.kill()
        holder.wait()


def test_whole_run_refused_while_an_array_task_runs_names_the_task(tmp_path: Path) -> None:
    cands = tmp_path / "cands"
    cands.mkdir()
    rocksalt_mgo().to(filename=str(cands / "mgo.cif"))
    out = tmp_path / "vdir"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(out), "1-of-2"], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        paths = ValidatePaths(input=cands, out_dir=out, reference=DATA / "mgo_reference.csv")
        with pytest.raises(FolderBusyError, match=rf"1 array task\(s\) hold it: validate task 1-of-2 by pid {holder.pid}"):
            run_validate(ValidateConfig(), paths)
    finally:
        holder.kill()
        holder.wait()


def test_phonon_supercell_above_the_memory_bound_is_refused_by_name(chgnet_backend) -> None:
    from pccd_hpc.materials.errors import PhononFailure
    from pccd_hpc.validate.phonons import run_phonons
    from pccd_hpc.validate.config import PhononConfig

    with pytest.raises(PhononFailure, match=r"mgo: .*supercell \(5, 5, 5\) of 250 atoms would need about 8.9 GB for its "
                                            r"force calls, above the limit of 0.5 GB per worker \(--max-memory-gb\)"):
        run_phonons(rocksalt_mgo(), chgnet_backend.calculator, PhononConfig(), "mgo", max_memory_gb=0.5)
