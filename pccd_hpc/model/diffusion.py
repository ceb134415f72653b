"""The DDPM forward process (paper eq. 1-3), the epsilon-prediction loss and the data scaling.

The network is any callable ``model(x_t, t, cond) -> eps`` (see :class:`pccd_hpc.model.unet.UNet`);
this module knows the schedule, not the network. Samplers live in :mod:`pccd_hpc.model.samplers`.

Data scaling (the codec stays in its natural units; the diffusion works in "model space"): the whole
codec tensor is mapped by ``y = 2 x - 1``. Channels 0 (fractional coordinates in [0, 1)) and 1
(element one-hot, 0/1) and the angle rows of channel 2 ((alpha, beta, gamma)/pi in (0, 1)) land in
[-1, 1]; the normalised lattice lengths (rows 64-127 of channel 2, about 0.2-1.3) land in about
[-0.6, 1.6]. When sampling, the predicted clean tensor is clipped to [-1, 1] everywhere except
the length rows, which are clipped to [-1, 3] (normalised length <= 2) so long cells stay reachable
(the paper's "divide by 15, clip to 1" capped cells at 15 A).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pccd_hpc.config import DiffusionConfig
from pccd_hpc.model.conditioning import Conditions
from pccd_hpc.model.distance_loss import pair_distance_loss

LENGTH_ROWS = slice(64, 128)
"""Rows of channel 2 holding normalised lattice lengths (rows 0-63 hold angles / pi)."""


def to_model_space(x: torch.Tensor) -> torch.Tensor:
    """Codec tensor (B, 3, 128, 3) in natural units -> model space (``2 x - 1``)."""
    return x * 2.0 - 1.0


def from_model_space(y: torch.Tensor) -> torch.Tensor:
    """Model-space tensor (B, 3, 128, 3) -> codec units (``(y + 1) / 2``)."""
    return (y + 1.0) * 0.5


def x0_clip_bounds(shape: tuple[int, ...] = (3, 128, 3)) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper bounds (each of ``shape``) of a clean tensor in model space, used to clip x0 estimates."""
    low = torch.full(shape, -1.0)
    high = torch.full(shape, 1.0)
    high[2, LENGTH_ROWS, :] = 3.0
    return low, high


def make_betas(config: DiffusionConfig) -> torch.Tensor:
    """The beta schedule (T,) float64: linear (paper) or cosine (Nichol & Dhariwal 2021, s = 0.008)."""
    steps = config.timesteps
    if config.schedule == "linear":
        return torch.linspace(config.beta_start, config.beta_end, steps, dtype=torch.float64)
    s = 0.008
    grid = torch.linspace(0, steps, steps + 1, dtype=torch.float64) / steps
    f = torch.cos((grid + s) / (1 + s) * math.pi / 2) ** 2
    alphas_bar = f / f[0]
    return (1 - alphas_bar[1:] / alphas_bar[:-1]).clamp(max=0.999)


class NoiseSchedule:
    """Precomputed DDPM quantities: beta_t, alpha_t = 1 - beta_t, alpha_bar_t = prod alpha_s (index t = 0..T-1)."""

    def __init__(self, config: DiffusionConfig) -> None:
        self.config = config
        self.timesteps = config.timesteps
        self.betas = make_betas(config)
        self.alphas = 1.0 - self.betas
        self.alphas_bar = torch.cumprod(self.alphas, dim=0)
        self.alphas_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_bar[:-1]])
        self.posterior_variance = self.betas * (1 - self.alphas_bar_prev) / (1 - self.alphas_bar)

    def gather(self, values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``values[t]`` as float32 on ``like``'s device, shaped (B, 1, 1, 1) to broadcast over samples."""
        out = values.to(like.device)[t].to(like.dtype)
        return out.reshape(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Eq. 3: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, for x0, noise (B, ...) and t (B,)."""
        a = self.gather(self.alphas_bar.sqrt(), t, x0)
        s = self.gather((1 - self.alphas_bar).sqrt(), t, x0)
        return a * x0 + s * noise

    def v_target(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The v-prediction target v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x0."""
        a = self.gather(self.alphas_bar.sqrt(), t, x0)
        s = self.gather((1 - self.alphas_bar).sqrt(), t, x0)
        return a * noise - s * x0

    def eps_from_v(self, x_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Noise implied by a v prediction: eps = sqrt(alpha_bar_t) v + sqrt(1 - alpha_bar_t) x_t."""
        a = self.gather(self.alphas_bar.sqrt(), t, x_t)
        s = self.gather((1 - self.alphas_bar).sqrt(), t, x_t)
        return a * v + s * x_t

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """Signal-to-noise ratio alpha_bar_t / (1 - alpha_bar_t) for timesteps t (B,), float32."""
        ab = self.alphas_bar.to(t.device)[t]
        return (ab / (1 - ab)).float()

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Invert eq. 3 for x0 given the predicted noise."""
        a = self.gather(self.alphas_bar.sqrt(), t, x_t)
        s = self.gather((1 - self.alphas_bar).sqrt(), t, x_t)
        return (x_t - s * eps) / a

    def x0_from_v(self, x_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The clean tensor implied by a v prediction: x0 = sqrt(alpha_bar_t) x_t - sqrt(1 - alpha_bar_t) v."""
        a = self.gather(self.alphas_bar.sqrt(), t, x_t)
        s = self.gather((1 - self.alphas_bar).sqrt(), t, x_t)
        return a * x_t - s * v


def sample_training_noise(batch_size: int, timesteps: int, cond_drop_prob: float, generator: torch.Generator,
                          shape: tuple[int, ...] = (3, 128, 3)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw (t (B,), noise (B, *shape), drop mask (B,) bool) for one global batch from ``generator``.

    Drawing the whole global batch on every process and slicing it keeps the randomness of each
    sample independent of how many processes share the batch.
    """
    t = torch.randint(0, timesteps, (batch_size,), generator=generator)
    noise = torch.randn((batch_size, *shape), generator=generator)
    drop = torch.rand(batch_size, generator=generator) < cond_drop_prob
    return t, noise, drop


@dataclass
class LossInputs:
    """One training batch, noised: clean model-space tensors and the draws that noise them."""

    x0: torch.Tensor
    """Clean model-space tensors (B, 3, 128, 3)."""
    cond: Conditions
    """Their conditions (batch B)."""
    t: torch.Tensor
    """Timesteps (B,)."""
    noise: torch.Tensor
    """Gaussian noise (B, 3, 128, 3)."""
    drop: torch.Tensor
    """(B,) bool: samples whose conditions are all replaced by the null condition."""
    lattice: torch.Tensor | None = None
    """True lattice vectors (B, 3, 3) in Angstrom, for the pair-distance loss (None: that loss is off)."""


def diffusion_loss(model: torch.nn.Module, schedule: NoiseSchedule, inputs: LossInputs,
                   config: DiffusionConfig | None = None, magnetic_null: int = 0) -> torch.Tensor:
    """Denoising loss of ``inputs`` (x_t made from x0, t and the noise; conditions dropped where ``drop``).

    ``config`` (default: the paper's) sets the loss: ``prediction`` ``eps`` regresses the noise (the paper),
    ``v`` the velocity; ``loss_weighting`` ``min_snr`` puts the same weight on the implied x0 error (Hang et al.
    2023), so low-noise steps stop dominating; with ``distance_loss_weight`` > 0 and the true ``lattice``, the
    pair-distance error of the network's clean-crystal estimate (Angstrom, weighted by alpha_bar_t) is added.
    ``magnetic_null`` is the null class of the magnetic condition (the model's ``num_magnetic_classes``).
    """
    config = config or DiffusionConfig()
    x0, t, noise = inputs.x0, inputs.t, inputs.noise
    x_t = schedule.q_sample(x0, t, noise)
    out = model(x_t, t, inputs.cond.dropped(inputs.drop, magnetic_null)).float()
    target = noise if config.prediction == "eps" else schedule.v_target(x0, t, noise)
    per_element = (F.l1_loss(out, target, reduction="none") if config.loss == "l1"
                   else F.mse_loss(out, target, reduction="none"))
    per_sample = per_element.flatten(1).mean(dim=1)
    if config.loss_weighting == "min_snr":
        snr = schedule.snr(t)
        clipped = snr.clamp(max=config.min_snr_gamma)
        weight = clipped / snr if config.prediction == "eps" else clipped / (snr + 1)
        per_sample = per_sample * weight
    if config.distance_loss_weight > 0 and inputs.lattice is not None:
        x0_hat = schedule.predict_x0(x_t, t, out) if config.prediction == "eps" else schedule.x0_from_v(x_t, t, out)
        ab = schedule.alphas_bar.to(t.device)[t].float()
        per_sample = per_sample + config.distance_loss_weight * ab * pair_distance_loss(x0_hat, x0, inputs.lattice)
    return per_sample.mean()
