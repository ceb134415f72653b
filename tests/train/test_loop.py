"""The training loop on real shards: run folder contents, exact resume, NaN handling, overfitting."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import pytest
import torch

from pccd_hpc.config import RunConfig, load_toml
from pccd_hpc.train import loop
from pccd_hpc.model.checkpoint import MARKER_NAME, complete_checkpoints, load_checkpoint
from pccd_hpc.train.loop import TrainingDiverged, train


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_run_folder_contents(fast_config: Callable[..., RunConfig], sample_shards: Path, tmp_path: Path) -> None:
    config = fast_config()
    result = train(config, sample_shards, tmp_path / "run")
    run = tmp_path / "run"
    assert result.step == 6 and math.isfinite(result.loss)
    assert RunConfig.from_dict(load_toml(run / "config.toml")) == config
    rows = _rows(run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert {"step", "loss", "lr", "samples_per_s"} <= set(rows[0])
    assert rows[0]["lr"] < rows[-1]["lr"]  # warm-up
    state = load_checkpoint(run)  # the highest complete step-N/ folder, weights_only=True
    assert state.step == 6 and state.trainer is not None and state.trainer.batches_seen == 6
    assert state.trainer.optimizer and state.trainer.scheduler and state.trainer.rng and state.code_version
    assert state.config == config and state.path == run / "checkpoints" / "step-00000006"
    assert [s for s, _ in complete_checkpoints(run)] == [3, 6]
    assert all((p / MARKER_NAME).is_file() for _, p in complete_checkpoints(run))
    assert not torch.equal(state.ema["final_conv.weight"], state.trainer.model["final_conv.weight"])


def test_resume_continues_identically(fast_config: Callable[..., RunConfig], sample_shards: Path, tmp_path: Path) -> None:
    straight = train(fast_config(max_steps=6), sample_shards, tmp_path / "a")
    train(fast_config(max_steps=3), sample_shards, tmp_path / "b")
    resumed = train(fast_config(max_steps=6), sample_shards, tmp_path / "b")
    assert resumed.step == 6
    losses_a = [r["loss"] for r in _rows(tmp_path / "a")]
    losses_b = [r["loss"] for r in _rows(tmp_path / "b")]
    assert losses_a == losses_b  # bit-identical, including steps 4-6 after the resume
    assert resumed.loss == straight.loss
    wa = load_checkpoint(tmp_path / "a").trainer.model
    wb = load_checkpoint(tmp_path / "b").trainer.model
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_single_nonfinite_loss_is_skipped(fast_config: Callable[..., RunConfig], sample_shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real, calls = loop.diffusion_loss, []

    def sometimes_nan(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append(1)
        value = real(*args, **kwargs)
        return value * math.nan if len(calls) == 2 else value

    monkeypatch.setattr(loop, "diffusion_loss", sometimes_nan)
    result = train(fast_config(max_steps=4), sample_shards, tmp_path / "run")
    assert result.step == 4 and result.skipped_nonfinite == 1 and len(calls) == 5
    state = load_checkpoint(tmp_path / "run")
    assert all(torch.isfinite(v).all() for v in state.trainer.model.values() if v.is_floating_point())


def test_repeated_nonfinite_loss_stops_without_checkpoint(fast_config: Callable[..., RunConfig], sample_shards: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop, "diffusion_loss", lambda *a, **k: torch.tensor(math.inf, requires_grad=True))
    with pytest.raises(TrainingDiverged, match="3 consecutive non-finite"):
        train(fast_config(max_nonfinite_steps=3), sample_shards, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow
def test_overfits_a_handful_of_structures(fast_config: Callable[..., RunConfig], few_shards: Path, tmp_path: Path) -> None:
    config = fast_config(max_steps=200, lr=3e-3, warmup_steps=10, augment=False, checkpoint_every=200)
    train(config, few_shards, tmp_path / "run")
    losses = [r["loss"] for r in _rows(tmp_path / "run")]
    start, end = sum(losses[:10]) / 10, sum(losses[-20:]) / 20
    assert end < 0.4 * start, (start, end)


def _tiny_dit(fast_config: Callable[..., RunConfig], **train_values: object) -> RunConfig:
    return fast_config(device_batches=True, site_order="canonical", lr_decay="cosine", **train_values).with_overrides({
        "denoiser": "dit", "dit": {"width": 32, "depth": 2, "heads": 2, "element_emb_dim": 8},
        "diffusion": {"prediction": "v", "loss_weighting": "min_snr"}})


def test_dit_with_device_batches_is_deterministic_and_samples(fast_config: Callable[..., RunConfig],
                                                                  sample_shards: Path, tmp_path: Path) -> None:
    from pccd_hpc.sampling.checkpoint_sampler import CheckpointSampler, load_model

    train(_tiny_dit(fast_config, max_steps=6), sample_shards, tmp_path / "a")
    train(_tiny_dit(fast_config, max_steps=6), sample_shards, tmp_path / "b")
    assert [r["loss"] for r in _rows(tmp_path / "a")] == [r["loss"] for r in _rows(tmp_path / "b")]
    assert _rows(tmp_path / "a")[-1]["lr"] < _rows(tmp_path / "a")[2]["lr"]  # cosine decay after warm-up
    loaded = load_model(tmp_path / "a")
    assert loaded.config.denoiser == "dit" and loaded.config.diffusion.prediction == "v"
    sampler = CheckpointSampler(loaded, "ddim", steps=3, guidance=2.0)
    x = sampler.sample(torch.tensor([[8, 12, 12]]), None, torch.Generator().manual_seed(0))
    assert x.shape == (1, 3, 128, 3) and torch.isfinite(x).all()
    from pccd_hpc.model.checkpoint import export_checkpoint

    full = export_checkpoint(tmp_path / "a", tmp_path / "full.pt")
    half = export_checkpoint(tmp_path / "a", tmp_path / "half.pt", weights_dtype="float16")
    assert half.stat().st_size < 0.75 * full.stat().st_size
    x_half = CheckpointSampler(load_model(half), "ddim", steps=3, guidance=2.0).sample(
        torch.tensor([[8, 12, 12]]), None, torch.Generator().manual_seed(0))
    assert torch.allclose(x_half, x, atol=2e-2)  # half-precision storage, float32 compute


def test_wall_clock_budget_stops_with_a_checkpoint_and_the_next_call_continues(
        fast_config: Callable[..., RunConfig], sample_shards: Path, tmp_path: Path) -> None:
    first = train(fast_config(max_steps=1000, max_minutes=1e-6), sample_shards, tmp_path / "run")
    assert first.step == 1  # the budget ran out after the first step
    assert load_checkpoint(tmp_path / "run").step == 1
    again = train(fast_config(max_steps=3), sample_shards, tmp_path / "run")
    assert again.step == 3


def test_ema_warmup_follows_the_weights_early_and_the_decay_late() -> None:
    from pccd_hpc.train.ema import EMA

    net = torch.nn.Linear(2, 1)
    ema = EMA(net, 0.999, warmup=True)
    assert ema.decay_at(1) == 2 / 11 and ema.decay_at(100_000) == 0.999
    start = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema.update(net, 1)
    assert torch.allclose(ema.shadow["weight"], 2 / 11 * start + 9 / 11 * torch.ones_like(start))
    assert EMA(net, 0.999).decay_at(1) == 0.999  # without warm-up: the plain decay
