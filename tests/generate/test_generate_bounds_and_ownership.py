"""Issue 30 for generate: bounds checked before anything is written, shards that carry the plan that made them,
one writer per folder (two real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from pccd_hpc.folder_lock import FolderBusyError
from pccd_hpc.generate.plan import MAX_SAMPLES_PER_RUN, generate_bounds_problem
from pccd_hpc.sampling.checkpoint_sampler import load_model
from pccd_hpc.generate.stage import run_generate
from pccd_hpc.generate.plan import GeneratePlan
from pccd_hpc.launch import main as launch_main

REPO = Path(__file__).resolve().parents[2]


def _plan(ckpt: Path, **kw) -> GeneratePlan:
    loaded = load_model(str(ckpt))
    base = dict(n=4, systems=[(12, 8, 8)], checkpoint=str(ckpt), checkpoint_sha256=loaded.sha256,
                steps=2, batch_size=4, n_tasks=2, seed=1, codec=loaded.codec.to_dict())
    return GeneratePlan(**{**base, **kw})


def test_huge_n_is_refused_at_once_and_leaves_nothing(tmp_path: Path, caplog) -> None:
    out = tmp_path / "X"
    assert launch_main(["generate", "--steps", "5", "--n", "1000000000000", "--out", str(out)]) == 2
    assert f"limit of {MAX_SAMPLES_PER_RUN} samples per run" in caplog.text
    assert not out.exists()


def test_per_task_bound_names_the_array_size_it_needs() -> None:
    assert generate_bounds_problem(100, 1, 10, 0, max_per_task=30) == (
        "100 samples per task is above the limit of 30 (about 0.0 GB of memory per task); use --array-size >= 4")
    assert generate_bounds_problem(100, 4, 10, 0, max_per_task=30) is None
    assert "--n 101 is above the limit of 100" in generate_bounds_problem(101, 4, 10, 0, max_per_run=100)


@pytest.mark.parametrize("seed", ["-1", str(2**70)])
def test_bad_seed_is_refused_before_plan_json_so_the_corrected_rerun_works(
        tmp_path: Path, tiny_checkpoint: Path, seed: str, caplog) -> None:
    args = ["generate", "--n", "2", "--elements", "Mg,O", "--checkpoint", str(tiny_checkpoint), "--steps", "1",
            "--out", str(tmp_path / "g")]
    assert launch_main(args + ["--seed", seed]) == 2
    assert "--seed must be in [0, 2**63 - 1]" in caplog.text
    assert not (tmp_path / "g").exists()
    assert launch_main(args + ["--seed", "3"]) == 0


def test_out_that_is_a_file_is_a_sentence(tmp_path: Path, tiny_checkpoint: Path, caplog) -> None:
    (tmp_path / "f").write_text("x")
    assert launch_main(["generate", "--n", "2", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "f")]) == 2
    assert "is an existing file, not a folder" in caplog.text


def test_shards_of_another_plan_are_refused_by_name_or_redone(tmp_path: Path, tiny_checkpoint: Path) -> None:
    run_generate(_plan(tiny_checkpoint, seed=1), tmp_path)
    with h5py.File(tmp_path / "shard-00001.h5") as h5:
        made_with = h5.attrs["plan_sha256"]
    assert made_with == _plan(tiny_checkpoint, seed=1).settings_sha256()
    (tmp_path / "plan.json").unlink()  # what a user does after "plan.json is not valid JSON"
    with pytest.raises(ValueError, match=r"shard-00000.h5 was made with seed 1, this plan says seed 0: use a new "
                                         r"--out, or --force-redo"):
        run_generate(_plan(tiny_checkpoint, seed=0), tmp_path)
    assert not (tmp_path / "plan.json").exists()  # refused before the new plan was written
    run_generate(_plan(tiny_checkpoint, seed=0), tmp_path, force_redo=True)
    for task in (0, 1):
        with h5py.File(tmp_path / f"shard-{task:05d}.h5") as h5:
            assert h5.attrs["seed"] == 0 and h5.attrs["plan_sha256"] == _plan(tiny_checkpoint, seed=0).settings_sha256()


def test_partial_batches_of_another_plan_are_not_adopted(tmp_path: Path, tiny_checkpoint: Path) -> None:
    from pccd_hpc.generate.tasks import PARTS_PLAN_NAME

    run_generate(_plan(tiny_checkpoint, seed=1, n_tasks=1), tmp_path)
    part_dir = tmp_path / "parts" / "task-00000"
    part_dir.mkdir(parents=True)
    (part_dir / PARTS_PLAN_NAME).write_text("0" * 64 + "\n")  # batches a racing run with another seed left
    (tmp_path / "plan.json").unlink()
    (tmp_path / "shard-00000.json").unlink()
    with pytest.raises(ValueError, match="parts/task-00000/ holds batches of another plan"):
        run_generate(_plan(tiny_checkpoint, seed=1, n_tasks=1), tmp_path)


_HOLD = """
import sys, time
from pccd_hpc.folder_lock import folder_lock
with folder_lock(sys.argv[1], "generate --out " + sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def test_second_writer_is_refused_naming_the_holder(tmp_path: Path, tiny_checkpoint: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderBusyError, match=rf"is in use: generate --out {tmp_path} by pid {holder.pid} on "):
            run_generate(_plan(tiny_checkpoint), tmp_path)
        assert not (tmp_path / "plan.json").exists()
    finally:
        holder.kill()
        holder.wait()
    run_generate(_plan(tiny_checkpoint), tmp_path)  # the lock went with the killed process
    assert (tmp_path / "summary.json").exists()


def test_generate_on_a_full_disk_says_so_and_resumes(small_tmpfs: Path, tiny_checkpoint: Path) -> None:
    from pccd_hpc.io_utils import DiskFullError

    free = os.statvfs(small_tmpfs).f_bavail * os.statvfs(small_tmpfs).f_frsize
    filler = small_tmpfs / "filler"
    filler.write_bytes(bytes(free - 30_000))  # room for the plan, not for the first batch (37 kB)
    out = small_tmpfs / "gen"
    with pytest.raises(DiskFullError, match=rf"no space left in {out}/parts/task-00000 .*: batch-00000.npz needs about 3[0-9] kB, [0-9]+ kB are free"):
        run_generate(_plan(tiny_checkpoint, n=8, n_tasks=1, batch_size=8), out)
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    filler.unlink()
    summary = run_generate(_plan(tiny_checkpoint, n=8, n_tasks=1, batch_size=8), out)
    assert summary["n_generated"] == 8
