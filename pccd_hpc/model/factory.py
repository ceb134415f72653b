"""Build the denoiser a run config names, and adapt its output to the noise the samplers expect."""

from __future__ import annotations

import torch
from torch import nn

from pccd_hpc.config import RunConfig
from pccd_hpc.model.conditioning import Conditions
from pccd_hpc.model.diffusion import NoiseSchedule


def build_denoiser(config: RunConfig) -> nn.Module:
    """The network of ``config.denoiser`` (``unet`` or ``dit``), freshly initialised."""
    if config.denoiser == "dit":
        from pccd_hpc.model.dit import DiT

        return DiT(config.dit, config.model.num_magnetic_classes, config.model.site_condition)
    from pccd_hpc.model.unet import UNet

    return UNet(config.model)


SITE_WEIGHTS_PREFIX = "cond_embed.site"
"""State-dict names of the site condition's own weights (embedding, projection, prior) in both denoisers."""


def site_encoder(model: nn.Module) -> "ConditionEncoder | None":
    """The condition encoder of ``model`` (or of the network it wraps) when it reads the number of sites, else None."""
    from pccd_hpc.model.conditioning import ConditionEncoder

    for module in model.modules():
        if isinstance(module, ConditionEncoder) and module.sites is not None:
            return module
    return None


class EpsPredictor(nn.Module):
    """Wraps a network trained with any ``prediction`` target so that it returns the predicted noise.

    The samplers (and classifier-free guidance, which is linear in the output) work in eps; for a
    v-prediction network eps = sqrt(ab_t) v + sqrt(1 - ab_t) x_t.
    """

    def __init__(self, net: nn.Module, schedule: NoiseSchedule, prediction: str, bf16: bool = False) -> None:
        super().__init__()
        self.net = net
        self.schedule = schedule
        self.prediction = prediction
        self.bf16 = bf16
        """Run the network under bf16 autocast (sampler arithmetic stays float32)."""

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: Conditions) -> torch.Tensor:
        if self.bf16:
            with torch.autocast(x_t.device.type, dtype=torch.bfloat16):
                out = self.net(x_t, t, cond).float()
        else:
            out = self.net(x_t, t, cond).float()
        if self.prediction == "eps":
            return out
        return self.schedule.eps_from_v(x_t.float(), t, out)
