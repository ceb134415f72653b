"""The training data order: a seeded global permutation per epoch, cut into global batches and dealt to ranks.

Global batch k of epoch e is ``perm_e[k B:(k+1) B]``; rank r of W takes positions r, r + W, ... of it.
The union over ranks of one step is therefore the same set of samples whatever W is, which (with
per-sample noise drawn for the whole global batch, see :func:`pccd_hpc.model.diffusion.sample_training_noise`)
makes 1 and W processes follow the same loss curve. A run resumes mid-epoch by starting at batch k.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


def steps_per_epoch(n_items: int, global_batch: int) -> int:
    """Full global batches in one epoch (at least 1: a dataset smaller than a batch is repeated)."""
    return max(1, n_items // global_batch)


def epoch_permutation(n_items: int, global_batch: int, epoch: int, seed: int) -> torch.Tensor:
    """The shuffled item order of one epoch, repeated if the dataset is smaller than one batch."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n_items, generator=gen)
    if n_items < global_batch:
        perm = perm.repeat((global_batch + n_items - 1) // n_items)
    return perm


class RankBatchSampler(Sampler[list[int]]):
    """Yields this rank's share of each global batch of one epoch, starting at batch ``start``."""

    def __init__(self, n_items: int, global_batch: int, epoch: int, seed: int, rank: int, world_size: int,
                 start: int = 0) -> None:
        if global_batch % world_size:
            raise ValueError(f"config field 'batch_size': {global_batch} is not divisible by {world_size} processes")
        self.perm = epoch_permutation(n_items, global_batch, epoch, seed)
        self.global_batch, self.rank, self.world_size = global_batch, rank, world_size
        self.n_batches = steps_per_epoch(n_items, global_batch)
        self.start = start

    def __len__(self) -> int:
        return self.n_batches - self.start

    def __iter__(self) -> Iterator[list[int]]:
        for k in range(self.start, self.n_batches):
            batch = self.perm[k * self.global_batch:(k + 1) * self.global_batch]
            yield batch[self.rank::self.world_size].tolist()


def epoch_loader(dataset: Dataset, sampler: RankBatchSampler, num_workers: int, pin_memory: bool) -> DataLoader:
    """A DataLoader over one epoch's batches (a fresh one per epoch so workers see the epoch's augmentation)."""
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, pin_memory=pin_memory)
