"""Conditions of a crystal (element slots, band-gap class, magnetic class) and their embedding.

Index conventions (no collisions, one null index per field for classifier-free guidance):

* element slots: atomic number 1..118, ``0`` = null (dropped);
* band gap: ``0`` metal (gap <= ``metal_max_gap_ev``), ``1`` gap < 1.5 eV, ``2`` gap >= 1.5 eV (the paper's
  three classes), ``3`` = null (unknown or dropped);
* magnetic ordering: ``0..K-1`` when the data has K classes, ``K`` = null.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from pccd_hpc.config import MAX_ATOMIC_NUMBER

ELEMENT_NULL = 0
BAND_GAP_METAL, BAND_GAP_SMALL, BAND_GAP_WIDE, BAND_GAP_NULL = 0, 1, 2, 3
N_BAND_GAP_CLASSES = 3
BAND_GAP_SPLIT_EV = 1.5


def band_gap_class(gap_ev: torch.Tensor, metal_max_gap_ev: float = 0.0) -> torch.Tensor:
    """Map band gaps (eV, any shape, NaN = unknown) to classes 0 metal / 1 < 1.5 eV / 2 >= 1.5 eV / 3 null."""
    gap = gap_ev.float()
    classes = torch.full(gap.shape, BAND_GAP_NULL, dtype=torch.long, device=gap.device)
    classes[gap <= metal_max_gap_ev] = BAND_GAP_METAL
    classes[(gap > metal_max_gap_ev) & (gap < BAND_GAP_SPLIT_EV)] = BAND_GAP_SMALL
    classes[gap >= BAND_GAP_SPLIT_EV] = BAND_GAP_WIDE
    return classes


@dataclass
class Conditions:
    """A batch of conditions: ``element_z`` (B, 3) int64, ``band_gap`` (B,) int64, ``magnetic`` (B,) int64."""

    element_z: torch.Tensor
    band_gap: torch.Tensor
    magnetic: torch.Tensor

    def __len__(self) -> int:
        return int(self.element_z.shape[0])

    def null_like(self, magnetic_null: int) -> "Conditions":
        """The unconditional (all-null) conditions of the same batch size."""
        return Conditions(
            torch.full_like(self.element_z, ELEMENT_NULL),
            torch.full_like(self.band_gap, BAND_GAP_NULL),
            torch.full_like(self.magnetic, magnetic_null),
        )

    def dropped(self, drop: torch.Tensor, magnetic_null: int) -> "Conditions":
        """Replace the conditions of samples where ``drop`` (B,) bool is true by the null condition."""
        null = self.null_like(magnetic_null)
        return Conditions(
            torch.where(drop[:, None], null.element_z, self.element_z),
            torch.where(drop, null.band_gap, self.band_gap),
            torch.where(drop, null.magnetic, self.magnetic),
        )

    def cat(self, other: "Conditions") -> "Conditions":
        """Concatenate two batches along the batch axis."""
        return Conditions(
            torch.cat([self.element_z, other.element_z]),
            torch.cat([self.band_gap, other.band_gap]),
            torch.cat([self.magnetic, other.magnetic]),
        )

    def to(self, device: torch.device | str) -> "Conditions":
        """Move every field to ``device``."""
        return Conditions(self.element_z.to(device), self.band_gap.to(device), self.magnetic.to(device))

    def select(self, index: torch.Tensor | slice) -> "Conditions":
        """Rows ``index`` of every field."""
        return Conditions(self.element_z[index], self.band_gap[index], self.magnetic[index])


def conditions_from_batch(batch: dict[str, torch.Tensor], num_magnetic_classes: int,
                          metal_max_gap_ev: float = 0.0) -> Conditions:
    """Build :class:`Conditions` from a dataset batch (``element_z``, ``band_gap_ev``, optional ``magnetic_class``)."""
    element_z = batch["element_z"].long()
    band_gap = band_gap_class(batch["band_gap_ev"], metal_max_gap_ev)
    if num_magnetic_classes > 0 and "magnetic_class" in batch:
        magnetic = batch["magnetic_class"].long().clone()
        magnetic[(magnetic < 0) | (magnetic >= num_magnetic_classes)] = num_magnetic_classes
    else:
        magnetic = torch.full_like(band_gap, num_magnetic_classes)
    return Conditions(element_z, band_gap, magnetic)


class SinusoidalEmbedding(nn.Module):
    """Transformer-style sinusoidal embedding of diffusion timesteps: (B,) -> (B, dim)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        half = dim // 2
        freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / max(half - 1, 1))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = t.float()[:, None] * self.freqs[None, :]
        return torch.cat([args.sin(), args.cos()], dim=-1)


class ConditionEncoder(nn.Module):
    """Embed the three element slots (by atomic number, slot order kept), band-gap and magnetic classes.

    Output: (B, cond_dim). Null indices have their own learned rows, so a dropped condition is a
    different network input from any real one.
    """

    def __init__(self, cond_dim: int, element_emb_dim: int, num_magnetic_classes: int, n_slots: int = 3) -> None:
        super().__init__()
        self.num_magnetic_classes = num_magnetic_classes
        self.element = nn.Embedding(MAX_ATOMIC_NUMBER + 1, element_emb_dim)
        self.band_gap = nn.Embedding(N_BAND_GAP_CLASSES + 1, element_emb_dim)
        self.magnetic = nn.Embedding(num_magnetic_classes + 1, element_emb_dim)
        in_dim = element_emb_dim * (n_slots + 2)
        self.mlp = nn.Sequential(nn.Linear(in_dim, cond_dim), nn.GELU(), nn.Linear(cond_dim, cond_dim))

    def forward(self, cond: Conditions) -> torch.Tensor:
        elements = self.element(cond.element_z).flatten(1)
        parts = [elements, self.band_gap(cond.band_gap), self.magnetic(cond.magnetic)]
        return self.mlp(torch.cat(parts, dim=-1))
