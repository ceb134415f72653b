"""Exponential moving average of the network weights (the weights used for sampling)."""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """Shadow copy of a model's floating-point parameters and buffers, updated as s <- d s + (1 - d) w."""

    def __init__(self, model: nn.Module, decay: float, warmup: bool = False) -> None:
        self.decay = decay
        self.warmup = warmup
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def decay_at(self, step: int) -> float:
        """Decay used at optimizer step ``step`` (1-based): with ``warmup``, min(decay, (1 + step) / (10 + step)),
        so a short run's average is not dominated by the random initial weights."""
        return min(self.decay, (1 + step) / (10 + step)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module, step: int = 0) -> None:
        """Move the shadow weights towards the model's current weights (``step``: the step just taken)."""
        decay = self.decay_at(step)
        for key, value in model.state_dict().items():
            shadow = self.shadow[key]
            if shadow.dtype.is_floating_point:
                shadow.lerp_(value.detach(), 1.0 - decay)
            else:
                shadow.copy_(value)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The shadow weights, loadable into the model with ``load_state_dict``."""
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore shadow weights saved by :meth:`state_dict`."""
        for key, value in state.items():
            self.shadow[key].copy_(value)
