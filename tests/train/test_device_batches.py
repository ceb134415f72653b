"""Batches built on the device equal the codec's own encoding (no augmentation, and canonical order)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pccd_hpc.config import TrainConfig
from pccd_hpc.data.augmentation import Augmentation
from pccd_hpc.data.codec import decode_tensor, encode_arrays
from pccd_hpc.data.dataset import ShardDataset
from pccd_hpc.data.roundtrip import structure_matcher
from pccd_hpc.train.device_batches import DeviceBatches
from pccd_hpc.train.loop import _LRSchedule


def test_without_augmentation_batches_equal_the_stored_tensors(sample_shards: Path) -> None:
    dataset = ShardDataset(sample_shards)
    device = DeviceBatches(dataset, "cpu", Augmentation(augment=False))
    idx = [0, 3, 17, len(dataset) - 1]
    got = device.batch(idx)["x"]
    want = torch.stack([dataset[i]["x"] for i in idx])
    assert torch.allclose(got, want, atol=1e-6)


def test_canonical_order_matches_numpy_encoding_of_the_shifted_sorted_sites(sample_shards: Path) -> None:
    dataset = ShardDataset(sample_shards)
    device = DeviceBatches(dataset, "cpu", Augmentation(augment=True, site_order="canonical"))
    idx = list(range(0, len(dataset), max(1, len(dataset) // 12)))
    gen = torch.Generator().manual_seed(5)
    got = device.batch(idx, gen)["x"].numpy()
    shifts = torch.rand((len(idx), 1, 3), generator=torch.Generator().manual_seed(5)).numpy()
    for k, i in enumerate(idx):
        shard, row = dataset.locate(i)
        arrays = dataset.shard_arrays(shard)
        n = int(arrays.n_sites[row])
        frac = np.mod(arrays.frac_coords[row, :n].astype(np.float32) + shifts[k, 0], 1.0)
        slots = arrays.slot_index[row, :n]
        order = np.lexsort((frac[:, 2], frac[:, 1], frac[:, 0], slots))
        want = encode_arrays(frac[order].astype(np.float64), slots[order], arrays.lattice_params[row], dataset.codec)
        assert np.allclose(got[k], want, atol=1e-5), f"record {i}"


def test_random_order_keeps_each_species_sites(sample_shards: Path) -> None:
    dataset = ShardDataset(sample_shards)
    device = DeviceBatches(dataset, "cpu", Augmentation(augment=True, site_order="random"))
    x = device.batch([1, 2], torch.Generator().manual_seed(0))["x"]
    plain = DeviceBatches(dataset, "cpu", Augmentation(augment=False)).batch([1, 2])["x"]
    assert torch.equal(x[:, 1], plain[:, 1])  # species blocks stay where they were
    assert torch.equal(x[:, 2], plain[:, 2])  # lattice rows untouched


def test_lr_schedule_warms_up_then_decays_to_the_floor() -> None:
    sched = _LRSchedule(warmup_steps=10, max_steps=110, decay="cosine", min_ratio=0.1)
    assert sched(0) == 0.1 and sched(9) == 1.0
    assert abs(sched(10) - 1.0) < 1e-9 and abs(sched(60) - 0.55) < 1e-9 and abs(sched(110) - 0.1) < 1e-9
    assert _LRSchedule(10, 110)(100) == 1.0


def test_canonical_dataset_items_are_the_unshifted_canonical_encoding(sample_shards: Path) -> None:
    plain, canonical = ShardDataset(sample_shards), ShardDataset(sample_shards, Augmentation(site_order="canonical"))
    for i in (0, 5, 40):
        item = canonical[i]["x"]
        assert torch.equal(item[1], plain[i]["x"][1]) and torch.equal(item[2], plain[i]["x"][2])
        rows = item[0].numpy()  # positions of each species block are sorted lexicographically
        slots = item[1].argmax(-1).numpy()
        for slot in set(slots.tolist()):
            block = rows[slots == slot]
            keys = [tuple(r) for r in block]
            assert keys == sorted(keys), f"record {i}"


def test_anchor_origin_puts_an_atom_of_the_first_species_at_the_centre(sample_shards: Path) -> None:
    dataset = ShardDataset(sample_shards, Augmentation(augment=True, site_order="canonical", origin="anchor"))
    device = DeviceBatches(ShardDataset(sample_shards), "cpu", Augmentation(augment=True, site_order="canonical", origin="anchor"))
    batch = device.batch(list(range(20)), torch.Generator().manual_seed(3))["x"]
    for i in range(20):
        for x in (dataset[i]["x"], batch[i]):
            first_species = x[1].argmax(-1) == 0
            rows = x[0][first_species]
            assert (rows - 0.5).abs().max(dim=1).values.min() < 1e-5, f"record {i}"
    centre_free = ShardDataset(sample_shards, Augmentation(augment=True, site_order="canonical", origin="random"))
    assert not all(((centre_free[i]["x"][0] - 0.5).abs().max(dim=1).values.min() < 1e-5) for i in range(20))


def _holds_sites(x: torch.Tensor, frac: np.ndarray, slots: np.ndarray, sign: float) -> bool:
    """Whether codec tensor ``x`` holds exactly the sites ``0.5 + sign * (frac - frac[a])`` (mod 1) of their
    slots, for some atom ``a`` of the first species (the anchor origin, with or without an inversion)."""
    rows, row_slots = x[0].numpy().astype(np.float64), x[1].numpy().argmax(-1)
    for a in np.flatnonzero(slots == slots.min()):
        want = np.mod(0.5 + sign * (frac - frac[a]), 1.0)
        d = want[:, None, :] - rows[None, :, :]
        close = (np.abs(d - np.round(d)).max(-1) < 1e-4) & (slots[:, None] == row_slots[None, :])
        if close.any(axis=1).all() and close.any(axis=0).all():
            return True
    return False


def _off_and_on_both_paths(sample_shards: Path, option: str) -> tuple[ShardDataset, dict, dict, list[int]]:
    """An augmentation ``option`` at probability 0 and 1 (canonical order, anchor origin) on both paths:
    (the plain dataset, per-item datasets by probability, on-device batches by probability, the batch's indices)."""
    plain = ShardDataset(sample_shards)
    common = {"augment": True, "site_order": "canonical", "origin": "anchor"}
    per_item = {p: ShardDataset(sample_shards, Augmentation(**common, **{option: p})) for p in (0.0, 1.0)}
    idx = list(range(0, len(plain), max(1, len(plain) // 30)))
    batches = {p: DeviceBatches(plain, "cpu", Augmentation(**common, **{option: p})).batch(idx, torch.Generator().manual_seed(7))
               for p in (0.0, 1.0)}
    return plain, per_item, batches, idx


def test_inversion_negates_the_coordinates_about_the_anchor_on_both_paths(sample_shards: Path) -> None:
    plain, per_item, batches, idx = _off_and_on_both_paths(sample_shards, "invert_prob")
    batches = {p: b["x"] for p, b in batches.items()}
    chiral_looking = 0
    for k, i in enumerate(idx):
        shard, row = plain.locate(i)
        arrays = plain.shard_arrays(shard)
        n = int(arrays.n_sites[row])
        frac, slots = np.mod(arrays.frac_coords[row, :n], 1.0), arrays.slot_index[row, :n]
        for x_plain, x_inverted in ((per_item[0.0][i]["x"], per_item[1.0][i]["x"]), (batches[0.0][k], batches[1.0][k])):
            assert _holds_sites(x_plain, frac, slots, +1.0), f"record {i}"
            assert _holds_sites(x_inverted, frac, slots, -1.0), f"record {i}"
            assert torch.equal(x_inverted[2], x_plain[2])  # the lattice rows are untouched
        chiral_looking += not _holds_sites(per_item[1.0][i]["x"], frac, slots, +1.0)
    assert chiral_looking >= 3  # for these the inverted tensor is not one the plain augmentation makes


def test_invert_prob_out_of_range_is_refused(sample_shards: Path) -> None:
    with pytest.raises(ValueError, match="invert_prob"):
        ShardDataset(sample_shards, Augmentation(augment=True, invert_prob=1.5))
    with pytest.raises(ValueError, match="invert_prob"):
        DeviceBatches(ShardDataset(sample_shards), "cpu", Augmentation(augment=True, invert_prob=-0.1))


def test_supercell_augmentation_doubles_small_cells_on_both_paths(sample_shards: Path) -> None:
    plain, per_item, batches, idx = _off_and_on_both_paths(sample_shards, "supercell_prob")
    matcher = structure_matcher()
    doubled = 0
    for k, i in enumerate(idx):
        n = int(plain[i]["n_sites"])
        original = decode_tensor(plain[i]["x"].numpy(), plain[i]["element_z"].numpy(), plain.codec).structure
        for item, x, n_out in ((per_item[1.0][i], per_item[1.0][i]["x"], per_item[1.0][i]["n_sites"]),
                               (None, batches[1.0]["x"][k], batches[1.0]["n_sites"][k])):
            if 2 * n > plain.codec.max_sites:  # too large to double: exactly what supercell_prob = 0 gives
                want = per_item[0.0][i]["x"] if item is not None else batches[0.0]["x"][k]
                assert torch.equal(x, want) and int(n_out) == n, f"record {i}"
                continue
            doubled += 1
            assert int(n_out) == 2 * n, f"record {i}"
            got = decode_tensor(x.numpy(), plain[i]["element_z"].numpy(), plain.codec).structure
            assert len(got) == 2 * n and got.volume == pytest.approx(2 * original.volume, rel=1e-4), f"record {i}"
            assert matcher.fit(got, original), f"record {i}"  # the same crystal (primitive cells compared)
    assert doubled >= 10


def test_supercell_prob_out_of_range_is_refused(sample_shards: Path) -> None:
    with pytest.raises(ValueError, match="supercell_prob"):
        ShardDataset(sample_shards, Augmentation(augment=True, supercell_prob=1.5))
    with pytest.raises(ValueError, match="supercell_prob"):
        DeviceBatches(ShardDataset(sample_shards), "cpu", Augmentation(augment=True, supercell_prob=-0.1))
    with pytest.raises(ValueError, match="supercell_prob"):
        TrainConfig(supercell_prob=2.0)
