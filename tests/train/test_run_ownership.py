"""Issue 30 for train: a resumed run proves what it resumes from, one writer per run folder, named shard errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from pccd_hpc.config import RunConfig, save_toml
from pccd_hpc.folder_lock import LOCK_NAME, FolderBusyError
from pccd_hpc.launch import main as launch_main
from pccd_hpc.model.checkpoint import step_dir
from pccd_hpc.train.loop import train

REPO = Path(__file__).resolve().parents[2]


def _train_args(config: RunConfig, data: Path, run: Path, scratch: Path) -> list[str]:
    """``train`` arguments running ``config`` (saved as TOML in ``scratch``) on ``data`` into ``run``."""
    save_toml(config, scratch / "tiny.toml")
    return ["train", "--data", str(data), "--out", str(run), "--preset", "tiny", "--config", str(scratch / "tiny.toml")]


def test_resume_with_another_lr_is_refused_by_name(fast_config: Callable[..., RunConfig], sample_shards: Path,
                                                   tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(fast_config(max_steps=3), sample_shards, run)
    with pytest.raises(ValueError, match=r"step-00000003 was trained with train.lr 0.001 \(this command: 0.0003\): "
                                         r"a resumed run keeps the settings it started with"):
        train(fast_config(max_steps=6, lr=3e-4), sample_shards, run)
    assert train(fast_config(max_steps=6), sample_shards, run).step == 6  # same settings, longer: resumes


def test_step_folder_of_another_architecture_is_not_adopted(fast_config: Callable[..., RunConfig],
                                                            sample_shards: Path, tmp_path: Path) -> None:
    small, wide = tmp_path / "small", tmp_path / "wide"
    train(fast_config(max_steps=3), sample_shards, small)
    wider = fast_config(max_steps=3).with_overrides({"model": {"base_width": 16}})
    train(wider, sample_shards, wide)
    shutil.copytree(step_dir(wide, 3), step_dir(small, 6))  # a step-N/ of another run dropped into this one
    config_before = (small / "config.toml").read_text()
    with pytest.raises(ValueError, match=r"step-00000006 was not made by this run \(.*settings.json records other "
                                         r"settings: model.base_width"):
        train(fast_config(max_steps=9), sample_shards, small)
    assert (small / "config.toml").read_text() == config_before


def test_second_train_on_one_folder_is_refused_naming_the_first(fast_config: Callable[..., RunConfig],
                                                                sample_shards: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = _train_args(fast_config(max_steps=100_000, checkpoint_every=1000), sample_shards, run, tmp_path)
    first = subprocess.Popen([sys.executable, "-m", "pccd_hpc.launch", *args], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, cwd=REPO)
    try:
        deadline = time.monotonic() + 120
        while not ((run / LOCK_NAME).exists() and (run / LOCK_NAME).read_text()):
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        with pytest.raises(FolderBusyError, match=rf"{run} is in use: train --out {run} by pid {first.pid}"):
            train(fast_config(max_steps=2), sample_shards, run)
    finally:
        first.kill()
        first.wait()


def test_damaged_shard_is_named_from_the_manifest(fast_config: Callable[..., RunConfig], sample_shards: Path,
                                                  tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(sample_shards, data)
    shard = sorted(data.glob("shard-*.h5"))[0]
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=rf"{shard}: damaged or changed since encoding .*manifest.json"):
        train(fast_config(max_steps=1), data, tmp_path / "run")


def test_out_that_is_a_file_and_bad_seed_are_sentences(sample_shards: Path, tmp_path: Path, caplog) -> None:
    (tmp_path / "f").write_text("x")
    assert launch_main(["train", "--data", str(sample_shards), "--out", str(tmp_path / "f"), "--preset", "tiny"]) == 2
    assert "is an existing file, not a run folder" in caplog.text
    assert launch_main(["train", "--data", str(sample_shards), "--out", str(tmp_path / "r"), "--seed", "-1"]) == 2
    assert "--seed must be in [0, 2**63 - 1]" in caplog.text and not (tmp_path / "r").exists()


def test_full_disk_is_a_sentence_and_the_rerun_resumes(fast_config: Callable[..., RunConfig], sample_shards: Path,
                                                       small_tmpfs: Path, tmp_path: Path, caplog) -> None:
    import os

    filler = small_tmpfs / "filler"
    filler.write_bytes(bytes(os.statvfs(small_tmpfs).f_bavail * os.statvfs(small_tmpfs).f_frsize - 40_000))
    run = small_tmpfs / "run"
    args = _train_args(fast_config(max_steps=3), sample_shards, run, tmp_path)
    assert launch_main(args) == 2  # was "basic_ios::clear: iostream error"
    assert f"no space left in {run}/checkpoints/step-00000003 (disk or quota full): state.pt needs about" in caplog.text
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]
    filler.unlink()
    assert launch_main(args) == 0
    assert (run / "checkpoints" / "step-00000003" / "COMPLETE").exists()
