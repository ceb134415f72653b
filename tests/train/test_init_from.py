"""Fine-tuning (``init_from``) and the U-Net's periodic position features, on real shards and checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest
import torch

from pccd_hpc.config import RunConfig
from pccd_hpc.data.codec import CodecConfig
from pccd_hpc.launch import main as launch_main
from pccd_hpc.model.conditioning import Conditions
from pccd_hpc.model.factory import build_denoiser
from pccd_hpc.model.unet import periodic_position_features
from pccd_hpc.model.checkpoint import load_checkpoint
from pccd_hpc.train.init_weights import load_initial_weights
from pccd_hpc.train.loop import train
from _fine_tune import start_from_export


def _periodic(config: RunConfig) -> RunConfig:
    return config.with_overrides({"model": {"periodic_features": True}})


def _inputs(batch: int = 4) -> tuple[torch.Tensor, torch.Tensor, Conditions]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, 128, 3, generator=gen)
    t = torch.randint(0, 1000, (batch,), generator=gen)
    elements = torch.zeros(batch, 3, dtype=torch.long)
    elements[:, 0], elements[:, 1] = 8, 26
    cond = Conditions(elements, torch.zeros(batch, dtype=torch.long), torch.zeros(batch, dtype=torch.long))
    return x, t, cond


def test_periodic_features_see_across_the_cell_face() -> None:
    f = torch.tensor([0.02, 0.98, 0.5])
    x = (2 * f - 1).reshape(1, 1, 3, 1).expand(1, 3, 3, 3)
    feats = periodic_position_features(x)
    assert feats.shape == (1, 2, 3, 3)
    gap_across = torch.linalg.vector_norm(feats[0, :, 0, 0] - feats[0, :, 1, 0])  # f = 0.02 vs 0.98: 0.04 apart
    gap_inside = torch.linalg.vector_norm(feats[0, :, 0, 0] - feats[0, :, 2, 0])  # f = 0.02 vs 0.5
    assert gap_across < 0.3 < 1.5 < gap_inside
    shifted = periodic_position_features(x + 2.0)  # f + 1: the same point of the crystal
    assert torch.allclose(shifted, feats, atol=1e-5)


def test_fine_tune_from_export_starts_as_the_source_and_records_it(
        fast_config: Callable[..., RunConfig], sample_shards: Path, tmp_path: Path) -> None:
    base = fast_config(max_steps=3)
    exported, source, grown, original = start_from_export(base, _periodic(base), sample_shards, tmp_path)
    x, t, cond = _inputs()
    with torch.no_grad():  # zero weights on the new channels: the grown network computes what the source did
        assert torch.allclose(grown(x, t, cond), original(x, t, cond), atol=1e-5)
    new_in = grown.state_dict()["init_conv.weight"]
    assert new_in.shape[1] == 5 and torch.count_nonzero(new_in[:, 3:]) == 0

    tuned = _periodic(fast_config(max_steps=2, init_from=str(exported)))
    result = train(tuned, sample_shards, tmp_path / "tuned")
    assert result.step == 2  # a fresh step count and schedule
    rows = [json.loads(line) for line in (tmp_path / "tuned" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    state = load_checkpoint(tmp_path / "tuned")
    assert state.config.train.init_from == str(exported)  # provenance in the checkpoint and config.toml
    assert "init_from" in (tmp_path / "tuned" / "config.toml").read_text()
    assert torch.count_nonzero(state.trainer.model["init_conv.weight"][:, 3:]) > 0  # the new channels learn
    # the source's weights were the start: closer to them than a fresh network is
    start = source.ema["mid_blocks.0.conv1.weight"]
    assert (state.trainer.model["mid_blocks.0.conv1.weight"] - start).abs().mean() < 0.1 * start.abs().mean()


def test_fine_tune_refuses_a_mismatch_and_names_the_checkpoint(
        fast_config: Callable[..., RunConfig], sample_shards: Path, tmp_path: Path) -> None:
    base = fast_config(max_steps=1)
    train(base, sample_shards, tmp_path / "base")
    source = load_checkpoint(tmp_path / "base")
    wider = base.with_overrides({"model": {"base_width": base.model.base_width * 2}})
    with pytest.raises(ValueError, match=r"step-00000001.*shape"):
        load_initial_weights(build_denoiser(wider), source, wider, source.codec)
    v_pred = base.with_overrides({"diffusion": {"prediction": "v" if base.diffusion.prediction == "eps" else "eps"}})
    with pytest.raises(ValueError, match="diffusion.prediction"):
        load_initial_weights(build_denoiser(v_pred), source, v_pred, source.codec)
    other_codec = CodecConfig.from_dict({**source.codec.to_dict(), "n_points": source.codec.n_points // 2})
    with pytest.raises(ValueError, match="codec"):
        load_initial_weights(build_denoiser(base), source, base, other_codec)


def test_cli_names_a_missing_init_from_checkpoint(sample_shards: Path, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    code = launch_main(["train", "--data", str(sample_shards), "--out", str(tmp_path / "run"), "--preset", "tiny",
                        "--init-from", str(tmp_path / "missing.pt"), "--max-steps", "1"])
    assert code == 2
    assert "checkpoint to start from not found" in caplog.text and "missing.pt" in caplog.text
    assert not (tmp_path / "run" / "checkpoints").exists()
