"""Shared fixtures for model tests: a tiny U-Net and a synthetic batch of crystal tensors."""

from __future__ import annotations

import pytest
import torch

from pccd_hpc.config import tiny_preset
from pccd_hpc.model.conditioning import Conditions
from pccd_hpc.model.unet import UNet


@pytest.fixture()
def tiny_model() -> UNet:
    torch.manual_seed(0)
    return UNet(tiny_preset().model)


@pytest.fixture()
def cond4() -> Conditions:
    return Conditions(
        element_z=torch.tensor([[8, 12, 22], [3, 3, 8], [26, 26, 26], [1, 6, 7]]),
        band_gap=torch.tensor([0, 1, 2, 3]),
        magnetic=torch.zeros(4, dtype=torch.long),
    )
