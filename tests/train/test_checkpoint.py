"""The checkpoint module: step-N/ folders with a marker, keep two, resume from the highest intact, one loader."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from pccd_hpc.config import tiny_preset
from pccd_hpc.data.codec import CodecConfig
from pccd_hpc.sampling.checkpoint_sampler import load_model
from pccd_hpc.model.unet import UNet
from pccd_hpc.model.checkpoint import (
    MARKER_NAME,
    STATE_NAME,
    Checkpoint,
    TrainerState,
    complete_checkpoints,
    export_checkpoint,
    load_checkpoint,
    load_latest,
    save_checkpoint,
    step_dir,
)


def _checkpoint(step: int) -> Checkpoint:
    torch.manual_seed(step)
    config = tiny_preset()
    weights = UNet(config.model).state_dict()
    trainer = TrainerState(model=weights, optimizer={"state": {}, "param_groups": []}, scheduler={"last_epoch": step},
                           rng={"cpu": torch.get_rng_state()}, batches_seen=step, epoch=0, skipped_nonfinite=0,
                           world_size=1)
    return Checkpoint(step=step, config=config, codec=CodecConfig.paper(), ema=weights, loss=0.5 / step,
                      trainer=trainer)


def test_save_writes_marker_last_and_keeps_two(tmp_path: Path) -> None:
    for step in (10, 20, 30):
        folder = save_checkpoint(tmp_path, _checkpoint(step), keep=1)  # at least two are always kept
        assert folder == step_dir(tmp_path, step) and (folder / MARKER_NAME).is_file()
    assert [s for s, _ in complete_checkpoints(tmp_path)] == [20, 30]
    loaded = load_checkpoint(tmp_path)
    assert loaded.step == 30 and loaded.loss == pytest.approx(0.5 / 30)
    assert loaded.codec == CodecConfig.paper() and loaded.config == tiny_preset()
    assert loaded.trainer is not None and loaded.trainer.batches_seen == 30
    assert loaded.trainer.scheduler == {"last_epoch": 30}


def test_folder_without_marker_does_not_count(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, _checkpoint(10))
    save_checkpoint(tmp_path, _checkpoint(20))
    (step_dir(tmp_path, 20) / MARKER_NAME).unlink()  # killed between the state file and the marker
    assert load_latest(tmp_path).step == 10
    with pytest.raises(ValueError, match="incomplete checkpoint"):
        load_checkpoint(step_dir(tmp_path, 20))


def test_damaged_state_falls_back_to_the_previous_checkpoint(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, _checkpoint(10))
    save_checkpoint(tmp_path, _checkpoint(20))
    state = step_dir(tmp_path, 20) / STATE_NAME
    state.write_bytes(state.read_bytes()[:1000])
    assert load_latest(tmp_path).step == 10
    with pytest.raises(ValueError, match="sha256 does not match"):
        load_checkpoint(step_dir(tmp_path, 20))


def test_export_is_one_file_loaded_by_the_same_function(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "run", _checkpoint(40))
    out = export_checkpoint(tmp_path / "run", tmp_path / "model.pt", extra={"card": "x"})
    state = torch.load(out, map_location="cpu", weights_only=True)
    assert {"ema", "config", "codec", "step", "loss", "code_version", "card"} <= set(state)
    assert "optimizer" not in state
    slim = load_checkpoint(out)
    assert slim.trainer is None and slim.step == 40 and slim.extra == {"card": "x"}
    full = load_checkpoint(tmp_path / "run")
    assert all(torch.equal(slim.ema[k], full.ema[k]) for k in full.ema)
    model = load_model(out)
    assert model.step == 40 and model.sha256 == slim.sha256 and not model.model.training
    assert math.isclose(slim.loss, full.loss)


def test_runs_written_before_step_folders_still_resume(tmp_path: Path) -> None:
    legacy = tmp_path / "checkpoints" / "last.pt"
    legacy.parent.mkdir()
    torch.save(_checkpoint(7).to_state(), legacy)
    resumed = load_latest(tmp_path)
    assert resumed is not None and resumed.step == 7 and resumed.trainer is not None


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt"):
        load_checkpoint(bad)
    torch.save({"ema": {}}, tmp_path / "noconfig.pt")
    with pytest.raises(ValueError, match="no 'config' entry"):
        load_checkpoint(tmp_path / "noconfig.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        load_checkpoint(tmp_path)
