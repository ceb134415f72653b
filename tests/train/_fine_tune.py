"""Shared by the fine-tuning tests: a briefly trained, exported source model and the network a fine-tune starts from."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from pccd_hpc.config import RunConfig
from pccd_hpc.model.factory import build_denoiser
from pccd_hpc.model.checkpoint import Checkpoint, export_checkpoint, load_checkpoint
from pccd_hpc.train.init_weights import load_initial_weights
from pccd_hpc.train.loop import train


def start_from_export(base: RunConfig, grown: RunConfig, shards: Path,
                      folder: Path) -> tuple[Path, Checkpoint, nn.Module, nn.Module]:
    """Train ``base`` on ``shards`` into ``folder/base``, export it to ``folder/base.pt``, and return
    (the export, its checkpoint, a ``grown`` network initialised from it, the source network itself)."""
    train(base, shards, folder / "base")
    exported = export_checkpoint(folder / "base", folder / "base.pt")
    source = load_checkpoint(exported)
    start = build_denoiser(grown)
    load_initial_weights(start, source, grown, source.codec)
    original = build_denoiser(base)
    original.load_state_dict(source.ema)
    return exported, source, start, original
