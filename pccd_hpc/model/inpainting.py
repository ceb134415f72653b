"""Sampling with the element channel known: inpainting for crystal structure prediction.

For a known composition the codec's element channel (channel 1) is fixed (:mod:`pccd_hpc.data.composition`).
At every reverse step the sampler's channel 1 is replaced by the known clean channel noised to that step,
x_t[1] = sqrt(alpha_bar_t) c + sqrt(1 - alpha_bar_t) eps, so the network always sees a noisy tensor whose
elements are the requested ones, and only positions and lattice are sampled (the "replacement" method of
Song et al. 2021 and RePaint, Lugmayr et al. 2022, without resampling). ``eps`` is drawn once per sample
(``fixed_noise``, the deterministic DDIM path of the known entries) or afresh at every step. The result's
channel 1 is the known channel exactly.
"""

from __future__ import annotations

from typing import Callable

import torch

from pccd_hpc.data.composition import CellComposition, element_channel
from pccd_hpc.model.conditioning import Conditions
from pccd_hpc.model.diffusion import NoiseSchedule, from_model_space, to_model_space
from pccd_hpc.model.samplers import DDIMSampler, DDPMSampler

ELEMENT_CHANNEL = 1
"""The codec channel holding the element one-hot."""


class ElementInpainting:
    """``project(x_t, t)`` for :meth:`pccd_hpc.model.samplers._Sampler.denoise`: channel 1 set to the known
    element channel ``known`` (B, 128, 3), codec units, noised to step t."""

    def __init__(self, schedule: NoiseSchedule, known: torch.Tensor, generator: torch.Generator | None = None,
                 fixed_noise: bool = True) -> None:
        self.schedule = schedule
        self.known = to_model_space(known.float())
        self.generator = generator
        self.noise = torch.randn(self.known.shape, generator=generator) if fixed_noise else None

    def __call__(self, x_t: torch.Tensor, step: int) -> torch.Tensor:
        """``x_t`` (B, 3, 128, 3) with channel 1 replaced by the known channel at noise step ``step``."""
        ab = float(self.schedule.alphas_bar[step])
        noise = self.noise if self.noise is not None else torch.randn(self.known.shape, generator=self.generator)
        noisy = ab**0.5 * self.known + (1.0 - ab) ** 0.5 * noise
        x = x_t.clone()
        x[:, ELEMENT_CHANNEL] = noisy.to(x_t)
        return x


@torch.no_grad()
def sample_with_elements(model: torch.nn.Module, sampler: DDIMSampler | DDPMSampler, cond: Conditions,
                         known: torch.Tensor, generator: torch.Generator, device: str = "cpu",
                         fixed_noise: bool = True, on_step: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Codec-space samples (B, 3, 128, 3) whose element channel is ``known`` (B, 128, 3) exactly.

    ``cond`` are the batch's conditions (element slots and site counts matching ``known``); the noise
    comes from ``generator`` (CPU), so a seeded batch is reproducible.
    """
    project = ElementInpainting(sampler.schedule, known, generator, fixed_noise)
    x = torch.randn((len(cond), 3, known.shape[1], 3), generator=generator).to(device)
    x = sampler.denoise(model, x, cond, generator=generator, on_step=on_step, project=project)
    out = from_model_space(x).float().cpu()
    out[:, ELEMENT_CHANNEL] = known.float()
    return out


@torch.no_grad()
def sample_cell_candidates(checkpoint_sampler, cell: CellComposition, k: int, generator: torch.Generator,
                           batch_size: int = 64, fixed_noise: bool = True,
                           on_step: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """``k`` codec-space tensors (k, 3, 128, 3) of crystals with ``cell``'s composition and number of sites.

    ``checkpoint_sampler`` is a checkpoint's sampler (``conditions``, ``sampler``, ``loaded.model``,
    ``device``, as :class:`CheckpointSampler` has them): the element slots and the site count are given
    as conditions, and the element channel is inpainted.
    """
    known_one = torch.from_numpy(element_channel(cell, checkpoint_sampler.loaded.codec.n_points))
    chunks = []
    for start in range(0, k, batch_size):
        n = min(batch_size, k - start)
        element_z = torch.tensor([cell.element_z] * n, dtype=torch.long)
        cond = checkpoint_sampler.conditions(element_z, None, torch.full((n,), cell.n_sites, dtype=torch.long))
        chunks.append(sample_with_elements(checkpoint_sampler.loaded.model, checkpoint_sampler.sampler, cond,
                                           known_one[None].repeat(n, 1, 1), generator, checkpoint_sampler.device,
                                           fixed_noise, on_step))
    return torch.cat(chunks)
