"""Conditions of a crystal (element slots, band-gap class, magnetic class, number of sites) and their embedding.

Index conventions (no collisions, one null index per field for classifier-free guidance):

* element slots: atomic number 1..118, ``0`` = null (dropped);
* band gap: ``0`` metal (gap <= ``metal_max_gap_ev``), ``1`` gap < 1.5 eV, ``2`` gap >= 1.5 eV (the paper's
  three classes), ``3`` = null (unknown or dropped);
* magnetic ordering: ``0..K-1`` when the data has K classes, ``K`` = null;
* number of sites: ``1..MAX_CONDITIONED_SITES``, ``0`` = null (withheld). Only networks built with
  ``site_condition`` read it (not the paper's); it is withheld in reconstruction, so the atom count there
  stays the model's own.
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
SITES_NULL = 0
MAX_CONDITIONED_SITES = 128
"""Largest number of sites the site embedding has a row for (one site per point row of the codec at most)."""
N_ELEMENT_SLOTS = 3


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
    """A batch of conditions: ``element_z`` (B, 3) int64, ``band_gap`` (B,) int64, ``magnetic`` (B,) int64,
    ``n_sites`` (B,) int64 (``SITES_NULL`` = withheld; all withheld when not given)."""

    element_z: torch.Tensor
    band_gap: torch.Tensor
    magnetic: torch.Tensor
    n_sites: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.n_sites is None:
            self.n_sites = torch.full_like(self.band_gap, SITES_NULL)

    def __len__(self) -> int:
        return int(self.element_z.shape[0])

    def null_like(self, magnetic_null: int) -> "Conditions":
        """The unconditional (all-null) conditions of the same batch size."""
        return Conditions(
            torch.full_like(self.element_z, ELEMENT_NULL),
            torch.full_like(self.band_gap, BAND_GAP_NULL),
            torch.full_like(self.magnetic, magnetic_null),
            torch.full_like(self.n_sites, SITES_NULL),
        )

    def dropped(self, drop: torch.Tensor, magnetic_null: int) -> "Conditions":
        """Replace the conditions of samples where ``drop`` (B,) bool is true by the null condition."""
        null = self.null_like(magnetic_null)
        return Conditions(
            torch.where(drop[:, None], null.element_z, self.element_z),
            torch.where(drop, null.band_gap, self.band_gap),
            torch.where(drop, null.magnetic, self.magnetic),
            torch.where(drop, null.n_sites, self.n_sites),
        )

    def without_sites(self, withhold: torch.Tensor) -> "Conditions":
        """The same conditions with the number of sites withheld where ``withhold`` (B,) bool is true."""
        return Conditions(self.element_z, self.band_gap, self.magnetic,
                          torch.where(withhold, torch.full_like(self.n_sites, SITES_NULL), self.n_sites))

    def cat(self, other: "Conditions") -> "Conditions":
        """Concatenate two batches along the batch axis."""
        return Conditions(
            torch.cat([self.element_z, other.element_z]),
            torch.cat([self.band_gap, other.band_gap]),
            torch.cat([self.magnetic, other.magnetic]),
            torch.cat([self.n_sites, other.n_sites]),
        )

    def to(self, device: torch.device | str) -> "Conditions":
        """Move every field to ``device``."""
        return Conditions(self.element_z.to(device), self.band_gap.to(device), self.magnetic.to(device),
                          self.n_sites.to(device))

    def select(self, index: torch.Tensor | slice) -> "Conditions":
        """Rows ``index`` of every field."""
        return Conditions(self.element_z[index], self.band_gap[index], self.magnetic[index], self.n_sites[index])


def conditions_from_batch(batch: dict[str, torch.Tensor], num_magnetic_classes: int,
                          metal_max_gap_ev: float = 0.0, with_sites: bool = False) -> Conditions:
    """Build :class:`Conditions` from a dataset batch (``element_z``, ``band_gap_ev``, optional ``magnetic_class``;
    ``n_sites`` when ``with_sites``, else the number of sites is withheld)."""
    element_z = batch["element_z"].long()
    band_gap = band_gap_class(batch["band_gap_ev"], metal_max_gap_ev)
    if num_magnetic_classes > 0 and "magnetic_class" in batch:
        magnetic = batch["magnetic_class"].long().clone()
        magnetic[(magnetic < 0) | (magnetic >= num_magnetic_classes)] = num_magnetic_classes
    else:
        magnetic = torch.full_like(band_gap, num_magnetic_classes)
    n_sites = batch["n_sites"].long().clamp(0, MAX_CONDITIONED_SITES) if with_sites else None
    return Conditions(element_z, band_gap, magnetic, n_sites)


def count_elements(element_z: torch.Tensor) -> torch.Tensor:
    """Number of distinct non-null elements per row of element slots (B, 3) -> (B,) int64."""
    z = element_z.long()
    distinct = (z != ELEMENT_NULL).clone()
    for j in range(1, z.shape[1]):
        distinct[:, j] &= (z[:, :j] != z[:, j : j + 1]).all(dim=1)
    return distinct.sum(dim=1)


def site_count_histogram(n_sites: torch.Tensor, element_z: torch.Tensor) -> torch.Tensor:
    """Counts (N_ELEMENT_SLOTS + 1, MAX_CONDITIONED_SITES + 1): row k, column n = crystals with k elements and n sites."""
    hist = torch.zeros(N_ELEMENT_SLOTS + 1, MAX_CONDITIONED_SITES + 1, dtype=torch.float64)
    k = count_elements(element_z).clamp(0, N_ELEMENT_SLOTS)
    n = n_sites.long().clamp(0, MAX_CONDITIONED_SITES)
    hist.index_put_((k, n), torch.ones(len(n), dtype=torch.float64), accumulate=True)
    return hist.float()


def draw_site_counts(prior: torch.Tensor, element_z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Numbers of sites (B,) drawn from ``prior`` (a :func:`site_count_histogram`) for element slots (B, 3).

    Each row is drawn from the counts of training crystals with as many elements; where there are none,
    from all training crystals with at least that many sites. ``ValueError`` when the prior is empty.
    """
    prior = prior.detach().double().cpu()
    if prior.sum() <= 0:
        raise ValueError("this model holds no site-count distribution (it was not trained with site_condition)")
    k = count_elements(element_z.cpu()).clamp(1, N_ELEMENT_SLOTS)
    columns = torch.arange(prior.shape[1])
    rows = []
    for kk in range(1, N_ELEMENT_SLOTS + 1):
        weights = prior[kk] if prior[kk].sum() > 0 else prior.sum(dim=0) * (columns >= kk)
        rows.append(weights if weights.sum() > 0 else prior.sum(dim=0))
    table = torch.stack(rows)[k - 1]  # (B, n_columns)
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.multinomial(table.to(device), 1, generator=generator).squeeze(1).cpu()


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

    With ``site_condition`` the number of sites is one more embedded input of the MLP's first layer,
    through its own projection ``site_proj`` (equal to extra input columns of that layer, kept apart so
    that training can give it its own learning rate, ``train.site_lr_scale``). The projection starts at
    zero and the null row of the embedding is fixed at zero, so a withheld count adds nothing and
    fine-tuning a network without the condition starts exactly where that network was. The buffer
    ``site_count_prior`` holds the training set's :func:`site_count_histogram`, from which samplers
    draw counts (it travels with the weights).
    """

    def __init__(self, cond_dim: int, element_emb_dim: int, num_magnetic_classes: int, n_slots: int = 3,
                 site_condition: bool = False) -> None:
        super().__init__()
        self.num_magnetic_classes = num_magnetic_classes
        self.element = nn.Embedding(MAX_ATOMIC_NUMBER + 1, element_emb_dim)
        self.band_gap = nn.Embedding(N_BAND_GAP_CLASSES + 1, element_emb_dim)
        self.magnetic = nn.Embedding(num_magnetic_classes + 1, element_emb_dim)
        in_dim = element_emb_dim * (n_slots + 2)
        self.mlp = nn.Sequential(nn.Linear(in_dim, cond_dim), nn.GELU(), nn.Linear(cond_dim, cond_dim))
        self.sites: nn.Embedding | None = None
        self.site_proj: nn.Linear | None = None
        if site_condition:
            self.sites = nn.Embedding(MAX_CONDITIONED_SITES + 1, element_emb_dim, padding_idx=SITES_NULL)
            self.site_proj = nn.Linear(element_emb_dim, cond_dim, bias=False)
            nn.init.zeros_(self.site_proj.weight)
            self.register_buffer("site_count_prior", torch.zeros(N_ELEMENT_SLOTS + 1, MAX_CONDITIONED_SITES + 1))

    def forward(self, cond: Conditions) -> torch.Tensor:
        elements = self.element(cond.element_z).flatten(1)
        parts = [elements, self.band_gap(cond.band_gap), self.magnetic(cond.magnetic)]
        hidden = self.mlp[0](torch.cat(parts, dim=-1))
        if self.sites is not None:
            hidden = hidden + self.site_proj(self.sites(cond.n_sites.clamp(0, MAX_CONDITIONED_SITES)))
        return self.mlp[2](self.mlp[1](hidden))
