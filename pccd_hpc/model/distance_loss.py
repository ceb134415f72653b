"""An auxiliary loss on interatomic distances: the predicted clean crystal's pair distances against the true ones.

The denoising loss regresses every coordinate on its own, and a random origin shift makes absolute
positions carry little; what makes a crystal physical is its *relative* geometry. This loss compares
periodic Cartesian distances between point rows of the predicted clean tensor and of the true one
(using the true lattice, so it speaks only of positions), for pairs closer than ``cutoff_ang`` in the
true crystal -- the bonds and the nearest non-bonded contacts. It is translation invariant.
"""

from __future__ import annotations

import math

import torch

from pccd_hpc.data.codec import CodecConfig

ROW_STRIDE = 4
"""Every 4th point row takes part (32 of 128; every atom of a <= 16-site crystal keeps >= 2 rows)."""


def lattice_matrices(x_codec: torch.Tensor, codec: CodecConfig) -> torch.Tensor:
    """(B, 3, 3) lattice vectors (rows, Angstrom) from codec-unit tensors (B, 3, n_points, 3), channel 2.

    The codec (the data layer, below the model) says how its lattice rows hold lengths; this only builds the
    vectors, on the tensors' device and differentiably."""
    half = x_codec.shape[2] // 2
    angles = x_codec[:, 2, :half].double().mean(dim=1) * math.pi
    lengths = codec.denormalise_lengths(x_codec[:, 2, half:].double().mean(dim=1))
    a, b, c = lengths.unbind(1)
    cos_al, cos_be, cos_ga = torch.cos(angles).unbind(1)
    sin_ga = torch.sin(angles[:, 2])
    cy = (cos_al - cos_be * cos_ga) / sin_ga
    cz = torch.sqrt(torch.clamp(1 - cos_be**2 - cy**2, min=1e-8))
    zero = torch.zeros_like(a)
    rows = [torch.stack([a, zero, zero], 1), torch.stack([b * cos_ga, b * sin_ga, zero], 1),
            torch.stack([c * cos_be, c * cy, c * cz], 1)]
    return torch.stack(rows, dim=1).float()


def pair_distance_loss(x0_hat: torch.Tensor, x0: torch.Tensor, lattice: torch.Tensor, cutoff_ang: float = 5.0,
                       same_atom_ang: float = 0.3) -> torch.Tensor:
    """Per-sample mean |d_hat - d| (Angstrom) over row pairs of distinct atoms closer than ``cutoff_ang``.

    ``x0_hat`` and ``x0`` are model-space tensors (B, 3, n_points, 3) (positions in channel 0 as 2 f - 1);
    the minimum image is taken from the true pair and applied to the predicted one, so the loss is smooth.
    """
    p_hat = (x0_hat[:, 0, ::ROW_STRIDE].float() + 1) * 0.5
    p = (x0[:, 0, ::ROW_STRIDE].float() + 1) * 0.5
    diff = p[:, :, None, :] - p[:, None, :, :]
    image = torch.round(diff)
    d_true = torch.linalg.vector_norm((diff - image) @ lattice[:, None], dim=-1)
    d_hat = torch.linalg.vector_norm((p_hat[:, :, None, :] - p_hat[:, None, :, :] - image) @ lattice[:, None], dim=-1)
    mask = (d_true < cutoff_ang) & (d_true > same_atom_ang)
    err = (d_hat - d_true).abs() * mask
    return err.flatten(1).sum(1) / mask.flatten(1).sum(1).clamp(min=1)
