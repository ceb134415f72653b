"""A torch ``Dataset`` over a folder of encoded HDF5 shards, opened lazily per process."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable, TypeVar

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from pccd_hpc.data.augmentation import NO_AUGMENTATION, Augmentation
from pccd_hpc.data.codec import CodecConfig, encode_arrays
from pccd_hpc.data.shards import list_shards, shard_record_count
from pccd_hpc.data.supercell import doubled_cell_sites
from pccd_hpc.io_utils import read_json, sha256_file

T = TypeVar("T")

# Band-gap property columns, in order of preference (MP-20: band_gap; Perov-5: dir_gap/ind_gap).
BAND_GAP_COLUMNS = ("band_gap", "ind_gap", "dir_gap")


class ShardDataset(Dataset):
    """Records of every ``shard-*.h5`` in ``folder``; ``ds[i]`` is a dict of tensors.

    Keys: ``x`` float32 (3, 128, 3); ``element_z`` int64 (3,); ``n_sites`` int64 ();
    ``band_gap_ev`` float32 () (NaN when unknown); ``index`` int64 () (the dataset index).

    A shard is read on first access in each process and kept in memory (its arrays are a few
    MB; h5py handles must not cross a ``fork``), so the dataset works with DataLoader workers and
    a DistributedSampler, and only the shards a rank touches are ever read.
    ``augmentation`` (:class:`~pccd_hpc.data.augmentation.Augmentation`) sets the frame and the random
    transformations. With ``augment`` every access re-encodes the record with a random origin shift and a random
    order of the atoms within each species; the representation is neither translation- nor
    permutation-invariant, so the model must see both. With ``invert_prob`` > 0 an augmented record is,
    with that probability, first inverted through the origin (fractional coordinates negated, lattice
    kept): the same crystal if it is centrosymmetric, else its mirror image, which has the same lattice,
    bonds and energy. With ``supercell_prob`` > 0 an augmented record of at most ``max_sites / 2`` sites is,
    with that probability, replaced by its supercell doubled along a random lattice vector (Niggli-reduced,
    :func:`pccd_hpc.data.supercell.doubled_cell_sites`), and its ``n_sites`` is the doubled count.
    """

    def __init__(self, folder: str | Path, augmentation: Augmentation = NO_AUGMENTATION, seed: int = 0) -> None:
        self.folder = Path(folder)
        self.shards = list_shards(self.folder)
        if not self.shards:
            raise FileNotFoundError(f"no shard-*.h5 files in {folder}: run `python -m pccd_hpc.launch encode` first")
        verify_shards(self.folder, self.shards)
        counts = [_named(p, shard_record_count) for p in self.shards]
        self._offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.codec = _named(self.shards[0], _shard_codec)
        self.augmentation = augmentation
        self.seed = seed
        self.epoch = 0
        self._cache: dict[int, _ShardArrays] = {}
        self._pid = -1

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def set_epoch(self, epoch: int) -> None:
        """Make augmentation differ per epoch (deterministically, given the seed)."""
        self.epoch = epoch

    def _shard(self, shard: int) -> "_ShardArrays":
        if self._pid != os.getpid():  # a forked worker must not reuse the parent's arrays or handles
            self._cache, self._pid = {}, os.getpid()
        if shard not in self._cache:
            self._cache[shard] = _ShardArrays.load(self.shards[shard], with_tensors=self.augmentation.stored_frame)
        return self._cache[shard]

    def shard_arrays(self, shard: int) -> "_ShardArrays":
        """Per-record site arrays of shard number ``shard`` (frac_coords, slot_index, n_sites, lattice_params, ...)."""
        return self._shard(shard)

    def locate(self, index: int) -> tuple[int, int]:
        """(shard number, row) of dataset item ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} records")
        shard = int(np.searchsorted(self._offsets, index, side="right") - 1)
        return shard, int(index - self._offsets[shard])

    def __getitem__(self, index: int) -> dict[str, Any]:
        shard, row = self.locate(int(index))
        arrays = self._shard(shard)
        n_sites = int(arrays.n_sites[row])
        if self.augmentation.augment:
            x, n_sites = self._augmented(arrays, row, index)
        elif not self.augmentation.stored_frame:
            x = self._canonical(arrays, row)
        else:
            x = arrays.tensors[row]
        return {
            "x": torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
            "element_z": torch.from_numpy(arrays.element_z[row].copy()),
            "n_sites": torch.tensor(n_sites, dtype=torch.int64),
            "band_gap_ev": torch.tensor(float(arrays.band_gap[row]), dtype=torch.float32),
            "index": torch.tensor(int(index), dtype=torch.int64),
        }

    def origin_shift(self, index: int) -> np.ndarray:
        """(3,) fractional shift that ``ds[index]`` adds (mod 1) to the record's stored coordinates.

        Zero for the stored frame (origin ``random`` without augmentation); for origin ``anchor`` the
        shift that moves the first atom of the first species to the cell centre. Compare the model's
        output with the record in this frame, not the stored one. Augmented items have a random
        shift, so asking for it is an error.
        """
        if self.augmentation.augment:
            raise ValueError("augmented items have a random origin shift; build the dataset with augment=False")
        if self.augmentation.origin != "anchor":
            return np.zeros(3)
        shard, row = self.locate(int(index))
        return _anchor_shift(self._shard(shard), row)

    def _canonical(self, arrays: "_ShardArrays", row: int) -> np.ndarray:
        """The record as a model trained with this site order and origin sees it, without random choices
        (anchor: the first atom of the first species in file order)."""
        n_sites = int(arrays.n_sites[row])
        slots = arrays.slot_index[row, :n_sites]
        frac = np.mod(arrays.frac_coords[row, :n_sites], 1.0)
        if self.augmentation.origin == "anchor":
            frac = np.mod(frac + _anchor_shift(arrays, row), 1.0)
        canonical = self.augmentation.site_order == "canonical"
        order = _site_order(frac, slots, None if canonical else np.arange(n_sites, dtype=float))
        return encode_arrays(frac[order], slots[order], arrays.lattice_params[row], self.codec)

    def _augmented(self, arrays: "_ShardArrays", row: int, index: int) -> tuple[np.ndarray, int]:
        """The augmented codec tensor of a record and its number of sites (doubled for a supercell)."""
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        aug = self.augmentation
        n_sites = int(arrays.n_sites[row])
        slots = arrays.slot_index[row, :n_sites]
        frac = arrays.frac_coords[row, :n_sites]
        params = arrays.lattice_params[row]
        shuffle = rng.random(n_sites)
        shift = rng.random(3)
        anchor = None
        if aug.origin == "anchor":  # a random atom of the first species moves to the cell centre
            first = np.flatnonzero(slots == slots.min())
            anchor = first[int(rng.integers(len(first)))]
        if aug.invert_prob > 0 and rng.random() < aug.invert_prob:  # drawn last: other streams unchanged
            frac = -frac
        if (aug.supercell_prob > 0 and 2 * n_sites <= self.codec.max_sites
                and rng.random() < aug.supercell_prob):  # drawn after the inversion: earlier streams unchanged
            frac, slots, params = doubled_cell_sites(frac, slots, params, int(rng.integers(3)), self.codec.niggli_reduce)
            shuffle = rng.random(len(slots))  # the anchor index still names the same atom (copy 0 comes first)
        if anchor is not None:
            shift = 0.5 - frac[anchor]
        shifted = np.mod(frac + shift, 1.0)
        order = _site_order(shifted, slots, None if aug.site_order == "canonical" else shuffle)
        return encode_arrays(shifted[order], slots[order], params, self.codec), len(slots)


def _anchor_shift(arrays: "_ShardArrays", row: int) -> np.ndarray:
    """The deterministic anchor shift: the first atom of the first species (file order) to the cell centre."""
    n_sites = int(arrays.n_sites[row])
    frac = np.mod(arrays.frac_coords[row, :n_sites], 1.0)
    return 0.5 - frac[int(np.argmin(arrays.slot_index[row, :n_sites]))]


def _site_order(frac: np.ndarray, slots: np.ndarray, key: np.ndarray | None) -> np.ndarray:
    """Site order: by element slot, then within a slot by ``key`` (e.g. a random shuffle or the file order),
    or, when ``key`` is None, canonically by the (shifted) fractional coordinates x, y, z."""
    if key is None:
        return np.lexsort((frac[:, 2], frac[:, 1], frac[:, 0], slots))
    return np.lexsort((key, slots))


class _ShardArrays:
    """One shard's per-record arrays, read once per process (a shard is a few MB)."""

    def __init__(self, **arrays: np.ndarray) -> None:
        self.__dict__.update(arrays)

    @classmethod
    def load(cls, path: Path, with_tensors: bool) -> "_ShardArrays":
        return _named(path, lambda p: cls._load(p, with_tensors))

    @classmethod
    def _load(cls, path: Path, with_tensors: bool) -> "_ShardArrays":
        with h5py.File(path, "r") as h5:
            element_z = h5["element_z"][:].astype(np.int64)
            atomic_numbers = h5["atomic_numbers"][:].astype(np.int64)
            # slot of each site: index of the first slot holding its element (padding -> 0, unused)
            slot_index = np.argmax(atomic_numbers[:, :, None] == element_z[:, None, :], axis=2)
            return cls(
                element_z=element_z,
                n_sites=h5["n_sites"][:].astype(np.int64),
                frac_coords=h5["frac_coords"][:],
                lattice_params=h5["lattice_params"][:],
                slot_index=slot_index,
                band_gap=_band_gaps(h5),
                tensors=h5["tensors"][:] if with_tensors else None,
            )


def _shard_codec(path: Path) -> CodecConfig:
    with h5py.File(path, "r") as h5:
        return CodecConfig.from_dict(json.loads(h5.attrs["codec"]))


def verify_shards(folder: Path, shards: list[Path]) -> None:
    """``ValueError`` naming the first shard whose sha256 differs from ``manifest.json`` (no manifest: nothing to check)."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.exists():
        return
    manifest = read_json(manifest_path, "manifest")
    expected = {entry.get("name"): entry.get("sha256") for entry in manifest.get("shards", []) if isinstance(entry, dict)}
    for shard in shards:
        if shard.name in expected and sha256_file(shard) != expected[shard.name]:
            raise ValueError(f"{shard}: damaged or changed since encoding (its sha256 differs from the one in "
                             f"{manifest_path}); run the same encode command again to redo it")


def _named(path: Path, read: Callable[[Path], T]) -> T:
    """``read(path)``, with any failure of a damaged HDF5 file turned into a ``ValueError`` naming the shard."""
    try:
        return read(path)
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise ValueError(f"{path}: unreadable shard ({type(err).__name__}: {err}); run the same encode command "
                         f"again to redo it") from err


def _band_gaps(h5: h5py.File) -> np.ndarray:
    """Band gaps (eV) of every record, NaN where unknown, from the first known property column."""
    n = h5["n_sites"].shape[0]
    group = h5.get("properties")
    for name in BAND_GAP_COLUMNS:
        if group is not None and name in group and group[name].dtype.kind == "f":
            return group[name][:].astype(np.float64)
    return np.full(n, math.nan)
