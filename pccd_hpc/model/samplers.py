"""Reverse-process samplers (ancestral DDPM, DDIM) with classifier-free guidance.

Guidance batches the conditional and the unconditional pass into one forward of size 2B:
eps = eps_u + w (eps_c - eps_u), so w = 1 is the plain conditional model and w = 0 the unconditional.
"""

from __future__ import annotations

from typing import Callable

import torch

from pccd_hpc.model.conditioning import Conditions
from pccd_hpc.model.diffusion import NoiseSchedule, x0_clip_bounds

DDIM_STEPS = 50
"""DDIM steps of every sampler unless told otherwise (the paper's setting): generate, reconstruct, evaluate."""
GUIDANCE_SCALE = 3.0
"""Classifier-free guidance scale w of every sampler unless told otherwise (the paper's setting)."""


@torch.no_grad()
def guided_eps(model: torch.nn.Module, x_t: torch.Tensor, t: torch.Tensor, cond: Conditions,
               guidance_scale: float, magnetic_null: int) -> torch.Tensor:
    """Noise prediction (B, 3, 128, 3) with classifier-free guidance, one batched forward of 2B samples."""
    if guidance_scale == 1.0:
        return model(x_t, t, cond).float()
    both = model(torch.cat([x_t, x_t]), torch.cat([t, t]), cond.cat(cond.null_like(magnetic_null))).float()
    eps_c, eps_u = both.chunk(2)
    return eps_u + guidance_scale * (eps_c - eps_u)


class _Sampler:
    def __init__(self, schedule: NoiseSchedule, guidance_scale: float = GUIDANCE_SCALE, clip_x0: bool = True,
                 magnetic_null: int = 0) -> None:
        self.schedule = schedule
        self.guidance_scale = guidance_scale
        self.clip_x0 = clip_x0
        self.magnetic_null = magnetic_null

    def _x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        x0 = self.schedule.predict_x0(x_t, t, eps)
        if self.clip_x0:
            low, high = x0_clip_bounds(tuple(x_t.shape[1:]))
            x0 = torch.maximum(torch.minimum(x0, high.to(x0)), low.to(x0))
        return x0

    def _eps(self, model: torch.nn.Module, x_t: torch.Tensor, step: int, cond: Conditions) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.full((x_t.shape[0],), step, dtype=torch.long, device=x_t.device)
        return t, guided_eps(model, x_t, t, cond, self.guidance_scale, self.magnetic_null)

    def timesteps(self, start: int | None = None) -> list[int]:
        """The timesteps visited, from ``start`` (default T - 1) down to 0."""
        raise NotImplementedError

    def _update(self, x_t: torch.Tensor, step: int, prev: int, eps: torch.Tensor,
                generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, model: torch.nn.Module, cond: Conditions, generator: torch.Generator | None = None,
               shape: tuple[int, ...] = (3, 128, 3), device: torch.device | str = "cpu",
               on_step: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """Model-space samples (B, *shape) from pure noise, for conditions of batch size B (``on_step`` as in :meth:`denoise`)."""
        x = torch.randn((len(cond), *shape), generator=generator, device=device)
        return self.denoise(model, x, cond, generator=generator, on_step=on_step)

    @torch.no_grad()
    def denoise(self, model: torch.nn.Module, x_t: torch.Tensor, cond: Conditions, start: int | None = None,
                generator: torch.Generator | None = None, on_step: Callable[[int, int], None] | None = None,
                project: Callable[[torch.Tensor, int], torch.Tensor] | None = None) -> torch.Tensor:
        """Run the reverse process on ``x_t`` (B, 3, 128, 3), noised to timestep ``start`` (default T - 1), down to 0;
        ``on_step(done, total)`` is called after each step (progress reports); ``project(x_t, t)``, when given,
        replaces ``x_t`` before each model call (inpainting known entries, :mod:`pccd_hpc.model.inpainting`)."""
        grid = self.timesteps(start)
        x = x_t
        for i, step in enumerate(grid):
            prev = grid[i + 1] if i + 1 < len(grid) else -1
            if project is not None:
                x = project(x, step)
            _, eps = self._eps(model, x, step, cond)
            x = self._update(x, step, prev, eps, generator)
            if on_step is not None:
                on_step(i + 1, len(grid))
        return x


class DDPMSampler(_Sampler):
    """Ancestral sampling over all T steps (paper eq. 6), variance beta_t (``beta``) or beta tilde (``posterior``)."""

    def __init__(self, schedule: NoiseSchedule, guidance_scale: float = GUIDANCE_SCALE, clip_x0: bool = True,
                 variance: str = "beta", magnetic_null: int = 0) -> None:
        super().__init__(schedule, guidance_scale, clip_x0, magnetic_null)
        self.variance = variance

    def step(self, x_t: torch.Tensor, step: int, eps: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """x_{t-1} from x_t and the predicted noise; posterior mean in x0 form (equal to eq. 5 without clipping)."""
        s = self.schedule
        t = torch.full((x_t.shape[0],), step, dtype=torch.long, device=x_t.device)
        x0 = self._x0(x_t, t, eps)
        ab, ab_prev, beta = s.alphas_bar[step], s.alphas_bar_prev[step], s.betas[step]
        coef_x0 = (ab_prev.sqrt() * beta / (1 - ab)).item()
        coef_xt = ((1 - ab_prev) * s.alphas[step].sqrt() / (1 - ab)).item()
        mean = coef_x0 * x0 + coef_xt * x_t
        if step == 0:
            return mean
        var = beta if self.variance == "beta" else s.posterior_variance[step]
        noise = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
        return mean + var.sqrt().item() * noise

    def timesteps(self, start: int | None = None) -> list[int]:
        """Every timestep from ``start`` (default T - 1) down to 0."""
        return list(range(self.schedule.timesteps - 1 if start is None else start, -1, -1))

    def _update(self, x_t: torch.Tensor, step: int, prev: int, eps: torch.Tensor,
                generator: torch.Generator | None) -> torch.Tensor:
        return self.step(x_t, step, eps, generator)


class DDIMSampler(_Sampler):
    """DDIM (Song et al. 2021) over ``n_steps`` evenly spaced timesteps; ``eta`` = 0 is deterministic."""

    def __init__(self, schedule: NoiseSchedule, n_steps: int = DDIM_STEPS, eta: float = 0.0, guidance_scale: float = GUIDANCE_SCALE,
                 clip_x0: bool = True, magnetic_null: int = 0) -> None:
        super().__init__(schedule, guidance_scale, clip_x0, magnetic_null)
        self.eta = eta
        self.n_steps = n_steps
        self.steps = torch.linspace(schedule.timesteps - 1, 0, n_steps).round().long().unique_consecutive().tolist()

    def step(self, x_t: torch.Tensor, step: int, prev: int, eps: torch.Tensor,
             generator: torch.Generator | None) -> torch.Tensor:
        """x_prev from x_t (prev = -1 means the clean sample)."""
        s = self.schedule
        t = torch.full((x_t.shape[0],), step, dtype=torch.long, device=x_t.device)
        x0 = self._x0(x_t, t, eps)
        if prev < 0:
            return x0
        ab, ab_prev = s.alphas_bar[step], s.alphas_bar[prev]
        eps = (x_t - ab.sqrt().item() * x0) / (1 - ab).sqrt().item()  # consistent with the clipped x0
        sigma = self.eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).sqrt()
        direction = (1 - ab_prev - sigma**2).clamp(min=0).sqrt().item() * eps
        x_prev = ab_prev.sqrt().item() * x0 + direction
        if self.eta > 0:
            x_prev = x_prev + sigma.item() * torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
        return x_prev

    def timesteps(self, start: int | None = None) -> list[int]:
        """``n_steps`` evenly spaced timesteps from ``start`` (default T - 1) down to 0 (fewer when start is small)."""
        if start is None:
            return self.steps
        return torch.linspace(start, 0, min(self.n_steps, start + 1)).round().long().unique_consecutive().tolist()

    def _update(self, x_t: torch.Tensor, step: int, prev: int, eps: torch.Tensor,
                generator: torch.Generator | None) -> torch.Tensor:
        return self.step(x_t, step, prev, eps, generator)

