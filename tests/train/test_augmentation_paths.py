"""The two implementations of one :class:`Augmentation` (per item in numpy, per batch on the device in torch) make
the same tensors: for every setting of the switches, each path's output belongs to the same set of admissible
encodings of the record (exactly, where the only freedom left is the anchor atom and the doubling axis), and the
probabilities act at the same rate."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from pccd_hpc.data.augmentation import Augmentation
from pccd_hpc.data.codec import encode_arrays, point_counts
from pccd_hpc.data.dataset import ShardDataset
from pccd_hpc.data.supercell import doubled_cell_sites
from pccd_hpc.train.device_batches import DeviceBatches


def _both_paths(shards: Path, augmentation: Augmentation, idx: list[int]) -> tuple[ShardDataset, list, list]:
    """(the plain dataset, per-item outputs, on-device outputs) of ``augmentation`` for records ``idx``: (x, n_sites)."""
    plain = ShardDataset(shards)
    per_item_ds = ShardDataset(shards, augmentation, seed=11)
    per_item = [(per_item_ds[i]["x"].numpy(), int(per_item_ds[i]["n_sites"])) for i in idx]
    batch = DeviceBatches(plain, "cpu", augmentation).batch(idx, torch.Generator().manual_seed(11))
    on_device = [(batch["x"][k].numpy(), int(batch["n_sites"][k])) for k in range(len(idx))]
    return plain, per_item, on_device


def _record(plain: ShardDataset, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    shard, row = plain.locate(i)
    arrays = plain.shard_arrays(shard)
    n = int(arrays.n_sites[row])
    return arrays.frac_coords[row, :n], arrays.slot_index[row, :n], arrays.lattice_params[row]


def _cells(plain: ShardDataset, i: int, supercell: bool) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The cells a record may become: itself, or (with ``supercell`` and room for it) its three doublings."""
    frac, slots, params = _record(plain, i)
    if supercell and 2 * len(slots) <= plain.codec.max_sites:
        return [doubled_cell_sites(frac, slots, params, axis, plain.codec.niggli_reduce) for axis in range(3)]
    return [(frac, slots, params)]


def _anchored_cells(plain: ShardDataset, i: int, sign: float, supercell: bool) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every (positions, slots, lattice) the anchor origin can make of record ``i``: one per cell and anchor atom."""
    out = []
    for frac, slots, params in _cells(plain, i, supercell):
        for a in np.flatnonzero(slots == slots.min()):
            out.append((np.mod(sign * frac + (0.5 - sign * frac[a]), 1.0), slots, params))  # the paths' arithmetic
    return out


def _is_canonical_encoding(x: np.ndarray, positions: np.ndarray, slots: np.ndarray, params: np.ndarray,
                           plain: ShardDataset) -> bool:
    """Whether ``x`` is the codec's encoding of these sites in canonical order (by species, then x, y, z).

    Sites on a tie (the same coordinate up to float noise, or 0 and 1 on the cell face) may come in either
    order: float32 on the device and float64 per item break such ties differently, and both tensors are the same
    crystal in the same frame.
    """
    firsts = np.concatenate([[0], np.cumsum(point_counts(len(slots), plain.codec.n_points))[:-1]])
    x_sites, x_slots = x[0][firsts].astype(np.float64), x[1][firsts].argmax(-1)
    order: list[int] = []
    for site, slot in zip(x_sites, x_slots):  # the stored site each of x's sites is
        d = positions - site
        hit = np.flatnonzero((np.abs(d - np.round(d)).max(1) < 2e-5) & (slots == slot) & ~np.isin(np.arange(len(slots)), order))
        if len(hit) == 0:
            return False
        order.append(int(hit[0]))
    want = encode_arrays(positions[order], slots[order], params, plain.codec)
    d = x[0] - want[0]
    if np.abs(d - np.round(d)).max() > 2e-5 or not np.allclose(x[1:], want[1:], atol=2e-5):
        return False
    # the order as written (a site on the cell face may be written as 0 or as 1 and sorts accordingly)
    return all(_in_order(x_sites[k], x_sites[k + 1]) for k in range(len(order) - 1) if x_slots[k] == x_slots[k + 1])


def _in_order(p: np.ndarray, q: np.ndarray, tol: float = 1e-5) -> bool:
    """``p`` may precede ``q`` in x, y, z order: at the first coordinate where they differ, p is smaller. A
    coordinate on which they tie (within ``tol``) may have been decided either way by float noise, and a
    coordinate written as 0 may have been sorted as 1 (the same point on the cell face)."""
    for a, b in zip(p, q):
        alts_a, alts_b = (a, a + 1.0) if a < tol else (a,), (b, b + 1.0) if b < tol else (b,)
        if any(abs(u - v) <= tol for u in alts_a for v in alts_b):
            return True
        return any(u < v for u in alts_a for v in alts_b)
    return True


@pytest.mark.parametrize("invert_prob, supercell_prob", list(itertools.product((0.0, 1.0), (0.0, 1.0))))
def test_anchor_and_canonical_order_leave_both_paths_the_same_finite_choice(
        sample_shards: Path, invert_prob: float, supercell_prob: float) -> None:
    augmentation = Augmentation(True, "anchor", "canonical", invert_prob, supercell_prob)
    idx = list(range(0, 200, 7))
    plain, per_item, on_device = _both_paths(sample_shards, augmentation, idx)
    sign = -1.0 if invert_prob else 1.0
    for k, i in enumerate(idx):
        cells = _anchored_cells(plain, i, sign, supercell_prob > 0)
        for path, (x, n) in (("per item", per_item[k]), ("on device", on_device[k])):
            assert n == len(cells[0][1]), f"record {i}, {path}"
            assert any(_is_canonical_encoding(x, *cell, plain) for cell in cells), \
                f"record {i}, {path}: not an encoding the settings allow"


def _is_translated_copy(x: np.ndarray, frac: np.ndarray, slots: np.ndarray, sign: float) -> bool:
    """Whether ``x`` holds the sites ``sign * frac`` (mod 1) moved by one common shift, each in its species' rows."""
    rows, row_slots = x[0].astype(np.float64), x[1].argmax(-1)
    first_row = rows[row_slots == slots.min()][0]
    for a in np.flatnonzero(slots == slots.min()):  # the atom that landed in the first row of the first species
        want = np.mod(sign * frac + (first_row - sign * frac[a]), 1.0)
        d = want[:, None, :] - rows[None, :, :]
        close = (np.abs(d - np.round(d)).max(-1) < 1e-4) & (slots[:, None] == row_slots[None, :])
        if close.any(axis=1).all() and close.any(axis=0).all():
            return True
    return False


@pytest.mark.parametrize("site_order, invert_prob", list(itertools.product(("random", "canonical"), (0.0, 1.0))))
def test_random_origin_gives_a_shifted_copy_with_the_stored_layout_on_both_paths(
        sample_shards: Path, site_order: str, invert_prob: float) -> None:
    augmentation = Augmentation(True, "random", site_order, invert_prob, 0.0)
    idx = list(range(0, 200, 9))
    plain, per_item, on_device = _both_paths(sample_shards, augmentation, idx)
    sign = -1.0 if invert_prob else 1.0
    for k, i in enumerate(idx):
        frac, slots, _ = _record(plain, i)
        stored = plain[i]["x"].numpy()
        for path, (x, n) in (("per item", per_item[k]), ("on device", on_device[k])):
            assert n == len(slots), f"record {i}, {path}"
            assert np.array_equal(x[1], stored[1]) and np.allclose(x[2], stored[2], atol=1e-6), f"record {i}, {path}"
            assert _is_translated_copy(x, frac, slots, sign), f"record {i}, {path}"
            if site_order == "canonical":  # within each species block the rows are sorted (ties either way)
                for slot in set(x[1].argmax(-1).tolist()):
                    block = x[0][x[1].argmax(-1) == slot]
                    assert all(_in_order(a, b) for a, b in zip(block[:-1], block[1:])), f"record {i}, {path}"


def test_a_probability_acts_at_the_same_rate_on_both_paths(sample_shards: Path) -> None:
    augmentation = Augmentation(True, "anchor", "canonical", 0.0, 0.5)
    plain = ShardDataset(sample_shards)
    idx = [i for i in range(len(plain)) if 2 * len(_record(plain, i)[1]) <= plain.codec.max_sites]
    _, per_item, on_device = _both_paths(sample_shards, augmentation, idx)
    rates = [np.mean([n == 2 * len(_record(plain, i)[1]) for i, (_, n) in zip(idx, outputs)])
             for outputs in (per_item, on_device)]
    assert len(idx) >= 120
    assert all(abs(rate - 0.5) < 0.15 for rate in rates), rates  # 0.15 is > 3.4 binomial standard deviations


def test_the_switches_are_checked_once_with_the_field_named() -> None:
    for bad in ({"origin": "centre"}, {"site_order": "sorted"}, {"invert_prob": 1.5}, {"supercell_prob": -0.1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Augmentation(True, **bad)
