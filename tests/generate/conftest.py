"""A real (small, untrained) checkpoint for the generation machinery tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pccd_hpc.config import tiny_preset
from pccd_hpc.data.codec import CodecConfig
from pccd_hpc.model.unet import UNet


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A slim checkpoint of the tiny preset with its random initial weights (seed 0)."""
    torch.manual_seed(0)
    config = tiny_preset()
    model = UNet(config.model)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save({"ema": model.state_dict(), "config": config.to_dict(), "codec": CodecConfig().to_dict(), "step": 0}, path)
    return path
