"""A torch ``Dataset`` over a folder of encoded HDF5 shards, opened lazily per process."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from pccd_hpc.data.codec import CodecConfig, encode_arrays
from pccd_hpc.data.shards import list_shards, shard_record_count

# Band-gap property columns, in order of preference (MP-20: band_gap; Perov-5: dir_gap/ind_gap).
BAND_GAP_COLUMNS = ("band_gap", "ind_gap", "dir_gap")


class ShardDataset(Dataset):
    """Records of every ``shard-*.h5`` in ``folder``; ``ds[i]`` is a dict of tensors.

    Keys: ``x`` float32 (3, 128, 3); ``element_z`` int64 (3,); ``n_sites`` int64 ();
    ``band_gap_ev`` float32 () (NaN when unknown); ``index`` int64 () (the dataset index).

    HDF5 files are opened on first access in each process (h5py handles must not cross a
    ``fork``), so the dataset works with DataLoader workers and a DistributedSampler.
    With ``augment`` every access re-encodes the record with a random origin shift and a random
    order of the atoms within each species; the representation is neither translation- nor
    permutation-invariant, so the model must see both.
    """

    def __init__(self, folder: str | Path, augment: bool = False, seed: int = 0) -> None:
        self.folder = Path(folder)
        self.shards = list_shards(self.folder)
        if not self.shards:
            raise FileNotFoundError(f"no shard-*.h5 files in {folder}: run `python -m pccd_hpc.launch encode` first")
        counts = [shard_record_count(p) for p in self.shards]
        self._offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        with h5py.File(self.shards[0], "r") as h5:
            self.codec = CodecConfig.from_dict(json.loads(h5.attrs["codec"]))
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self._handles: dict[int, h5py.File] = {}
        self._pid = -1

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def set_epoch(self, epoch: int) -> None:
        """Make augmentation differ per epoch (deterministically, given the seed)."""
        self.epoch = epoch

    def _file(self, shard: int) -> h5py.File:
        if self._pid != os.getpid():  # a forked worker must not reuse the parent's handles
            self._handles, self._pid = {}, os.getpid()
        if shard not in self._handles:
            self._handles[shard] = h5py.File(self.shards[shard], "r")
        return self._handles[shard]

    def locate(self, index: int) -> tuple[int, int]:
        """(shard number, row) of dataset item ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} records")
        shard = int(np.searchsorted(self._offsets, index, side="right") - 1)
        return shard, int(index - self._offsets[shard])

    def __getitem__(self, index: int) -> dict[str, Any]:
        shard, row = self.locate(int(index))
        h5 = self._file(shard)
        element_z = h5["element_z"][row].astype(np.int64)
        n_sites = int(h5["n_sites"][row])
        if self.augment:
            x = self._augmented(h5, row, element_z, n_sites, index)
        else:
            x = h5["tensors"][row]
        return {
            "x": torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
            "element_z": torch.from_numpy(element_z),
            "n_sites": torch.tensor(n_sites, dtype=torch.int64),
            "band_gap_ev": torch.tensor(_band_gap(h5, row), dtype=torch.float32),
            "index": torch.tensor(int(index), dtype=torch.int64),
        }

    def _augmented(self, h5: h5py.File, row: int, element_z: np.ndarray, n_sites: int, index: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        z = h5["atomic_numbers"][row, :n_sites].astype(np.int64)
        frac = h5["frac_coords"][row, :n_sites]
        params = h5["lattice_params"][row]
        slots = np.array([int(np.argmax(element_z == zi)) for zi in z], dtype=np.int64)
        order = np.lexsort((rng.random(n_sites), slots))  # shuffle within each species, keep slot order
        shifted = np.mod(frac[order] + rng.random(3), 1.0)
        return encode_arrays(shifted, slots[order], params, self.codec)


def _band_gap(h5: h5py.File, row: int) -> float:
    group = h5.get("properties")
    if group is None:
        return math.nan
    for name in BAND_GAP_COLUMNS:
        if name in group and group[name].dtype.kind == "f":
            return float(group[name][row])
    return math.nan
