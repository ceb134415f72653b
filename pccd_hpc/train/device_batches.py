"""Training batches built and augmented on the training device, from the shards' site arrays.

The per-item path (:class:`pccd_hpc.data.dataset.ShardDataset` with ``augment``) re-encodes every
record in numpy on the host; on a GPU that starves the device. Here every record's sites (fractional
coordinates, element slots, lattice) sit on the device once, and a whole batch is shifted, ordered
and spread over the 128 point rows with a few tensor operations -- the same tensor
:func:`pccd_hpc.data.codec.encode_arrays` writes (tested against it).
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch

from pccd_hpc.data.augmentation import Augmentation
from pccd_hpc.data.codec import CodecConfig, point_counts
from pccd_hpc.data.dataset import ShardDataset
from pccd_hpc.data.supercell import doubled_cell_sites


class DeviceBatches:
    """All records of a :class:`ShardDataset` as device tensors; :meth:`batch` returns augmented codec tensors."""

    def __init__(self, dataset: ShardDataset, device: torch.device | str, augmentation: Augmentation) -> None:
        self.codec: CodecConfig = dataset.codec
        self.device = torch.device(device)
        self.augmentation = augmentation
        parts = [dataset.shard_arrays(k) for k in range(len(dataset.shards))]
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
        n_sites = cat("n_sites")
        max_sites = self.codec.max_sites
        frac = np.zeros((len(n_sites), max_sites, 3), dtype=np.float32)
        slots = np.full((len(n_sites), max_sites), 0, dtype=np.int64)
        frac_all, slot_all = cat("frac_coords"), cat("slot_index")
        frac[:, :frac_all.shape[1]] = frac_all
        slots[:, :slot_all.shape[1]] = slot_all
        lattice = cat("lattice_params")
        to = lambda a, dtype: torch.as_tensor(a, dtype=dtype, device=self.device)  # noqa: E731
        self.frac, self.slots, self.n_sites = to(frac, torch.float32), to(slots, torch.long), to(n_sites, torch.long)
        self.element_z = to(cat("element_z"), torch.long)
        self.band_gap = to(cat("band_gap"), torch.float32)
        self.angle_rows = to(np.radians(lattice[:, 3:]) / math.pi, torch.float32)
        self.length_rows = to(self.codec.normalise_lengths(lattice[:, :3].astype(np.float64)), torch.float32)
        rows = np.zeros((max_sites + 1, self.codec.n_points), dtype=np.int64)
        for n in range(1, max_sites + 1):
            rows[n] = np.repeat(np.arange(n), point_counts(n, self.codec.n_points))
        self.row_site = to(rows, torch.long)
        if augmentation.supercell_prob > 0:
            fits, big_frac, big_slots, big_lattice = _doubled_cells(frac, slots, n_sites, lattice,
                                                                    self.codec.niggli_reduce)
            self.doubled_fits = to(fits, torch.bool)
            self.doubled_frac, self.doubled_slots = to(big_frac, torch.float32), to(big_slots, torch.long)
            self.doubled_angle_rows = to(np.radians(big_lattice[..., 3:]) / math.pi, torch.float32)
            self.doubled_length_rows = to(self.codec.normalise_lengths(big_lattice[..., :3]), torch.float32)

    def __len__(self) -> int:
        return int(self.n_sites.shape[0])

    def batch(self, indices: torch.Tensor | list[int], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Codec tensors ``x`` (B, 3, n_points, 3) plus ``element_z``, ``band_gap_ev`` and ``n_sites`` for dataset ``indices``.

        With ``augment``: with probability ``supercell_prob`` a record of at most ``max_sites / 2`` sites
        becomes its cell doubled along a random lattice vector (``n_sites`` doubled), with probability
        ``invert_prob`` an inversion through the origin (coordinates negated), a random origin shift (added
        mod 1) per record, then the atoms of each species in random (``site_order = "random"``) or
        shifted-coordinate (``"canonical"``) order. ``generator`` is a CPU generator (the random numbers are drawn on the CPU and moved, so a run is reproducible
        on any device).
        """
        idx = torch.as_tensor(indices, dtype=torch.long, device=self.device)
        b, max_sites = idx.shape[0], self.frac.shape[1]
        frac, slots, n = self.frac[idx], self.slots[idx], self.n_sites[idx]
        angle_rows, length_rows = self.angle_rows[idx], self.length_rows[idx]
        aug = self.augmentation
        if aug.augment:
            shift = torch.rand((b, 1, 3), generator=generator).to(self.device)
            pick = (torch.rand((b, max_sites), generator=generator).to(self.device)
                    if aug.origin == "anchor" else None)
            flip = (torch.rand((b, 1, 1), generator=generator).to(self.device) < aug.invert_prob
                    if aug.invert_prob > 0 else None)  # drawn last: other streams unchanged
            if aug.supercell_prob > 0:  # drawn after the inversion: earlier streams unchanged
                use = torch.rand(b, generator=generator).to(self.device) < aug.supercell_prob
                axis = torch.randint(3, (b,), generator=generator).to(self.device)
                use = use & self.doubled_fits[idx]
                frac = torch.where(use[:, None, None], self.doubled_frac[idx, axis], frac)
                slots = torch.where(use[:, None], self.doubled_slots[idx, axis], slots)
                n = torch.where(use, 2 * n, n)
                angle_rows = torch.where(use[:, None], self.doubled_angle_rows[idx, axis], angle_rows)
                length_rows = torch.where(use[:, None], self.doubled_length_rows[idx, axis], length_rows)
            if flip is not None:  # inversion through the origin
                frac = torch.where(flip, -frac, frac)
            present = torch.arange(max_sites, device=self.device)[None, :] < n[:, None]
            if pick is not None:  # a random atom of the first species moves to the cell centre
                pick = torch.where(present & (slots == 0), pick, torch.full_like(pick, -1.0))
                anchor = pick.argmax(dim=1)
                shift = 0.5 - frac[torch.arange(b, device=self.device), anchor][:, None, :]
            frac = torch.remainder(frac + shift, 1.0)
            frac = torch.where(frac >= 1.0, torch.zeros_like(frac), frac)
            if aug.site_order == "canonical":
                order = torch.arange(max_sites, device=self.device).expand(b, -1)
                for col in (2, 1, 0):  # stable sorts from the least to the most significant key
                    key = torch.gather(frac[:, :, col], 1, order)
                    order = torch.gather(order, 1, torch.sort(key, dim=1, stable=True).indices)
            else:
                order = torch.argsort(torch.rand((b, max_sites), generator=generator).to(self.device), dim=1)
            key = torch.gather(torch.where(present, slots, torch.full_like(slots, 1 << 20)), 1, order)
            order = torch.gather(order, 1, torch.sort(key, dim=1, stable=True).indices)
            frac, slots = torch.gather(frac, 1, order[:, :, None].expand(-1, -1, 3)), torch.gather(slots, 1, order)
        rows = self.row_site[n]  # (B, n_points): site of each point row
        x = torch.empty((b, 3, self.codec.n_points, 3), dtype=torch.float32, device=self.device)
        x[:, 0] = torch.gather(frac, 1, rows[:, :, None].expand(-1, -1, 3))
        x[:, 1] = torch.nn.functional.one_hot(torch.gather(slots, 1, rows), 3).float()
        half = self.codec.n_points // 2
        x[:, 2, :half] = angle_rows[:, None, :]
        x[:, 2, half:] = length_rows[:, None, :]
        return {"x": x, "element_z": self.element_z[idx], "band_gap_ev": self.band_gap[idx], "n_sites": n}

    def epoch(self, batches: Iterator[list[int]], seed: int, epoch: int, first_batch: int) -> Iterator[dict[str, torch.Tensor]]:
        """Augmented batches for an epoch's index lists; batch k's randomness comes from (seed, epoch, k)."""
        for k, indices in enumerate(batches, start=first_batch):
            gen = torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 1_000_033 + k)
            yield self.batch(indices, gen)


def _doubled_cells(frac: np.ndarray, slots: np.ndarray, n_sites: np.ndarray, lattice: np.ndarray,
                   niggli_reduce: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every record's three doubled cells (:func:`doubled_cell_sites` along a, b, c), built once on the host.

    ``frac`` (N, S, 3), ``slots`` (N, S), ``n_sites`` (N,), ``lattice`` (N, 6). Returns whether a record fits
    doubled (N,), and the doubled frac (N, 3, S, 3), slots (N, 3, S) and lattice parameters (N, 3, 6).
    """
    n_rec, max_sites = frac.shape[:2]
    big_frac = np.zeros((n_rec, 3, max_sites, 3), dtype=np.float32)
    big_slots = np.zeros((n_rec, 3, max_sites), dtype=np.int64)
    big_lattice = np.tile(lattice[:, None, :], (1, 3, 1)).astype(np.float64)
    fits = 2 * n_sites <= max_sites
    for i in np.flatnonzero(fits):
        n = int(n_sites[i])
        for axis in range(3):
            f2, s2, p2 = doubled_cell_sites(frac[i, :n], slots[i, :n], lattice[i], axis, niggli_reduce)
            big_frac[i, axis, :2 * n], big_slots[i, axis, :2 * n], big_lattice[i, axis] = f2, s2, p2
    return fits, big_frac, big_slots, big_lattice
