"""ShardDataset: indexing across shards, augmentation that preserves the crystal, workers, DDP sampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from pccd_hpc.data.augmentation import Augmentation
from pccd_hpc.data.codec import decode_tensor
from pccd_hpc.data.dataset import ShardDataset
from pccd_hpc.data.encode import EncodeConfig, run_encode
from pccd_hpc.data.roundtrip import coordinate_errors, shifted_structure, structure_matcher
from pccd_hpc.data.shards import iter_structures


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory: pytest.TempPathFactory, sample_csv: Path) -> Path:
    out = tmp_path_factory.mktemp("shards")
    run_encode(EncodeConfig([str(sample_csv)], str(out), shard_size=50))
    return out


def test_items_follow_the_shards(shard_dir: Path) -> None:
    ds = ShardDataset(shard_dir)
    structures = list(iter_structures(shard_dir))
    assert len(ds) == len(structures) > 150
    assert len(ds.shards) > 3
    for i in (0, 49, len(ds) - 1):
        item = ds[i]
        assert item["x"].shape == (3, 128, 3) and item["x"].dtype == torch.float32
        assert item["element_z"].dtype == torch.int64 and item["index"].item() == i
        decoded = decode_tensor(item["x"].numpy(), item["element_z"].numpy(), ds.codec).structure
        assert structure_matcher().fit(decoded, structures[i][1])
    with pytest.raises(IndexError):
        ds[len(ds)]
    gaps = torch.stack([ds[i]["band_gap_ev"] for i in range(len(ds))])
    assert torch.isfinite(gaps).sum() > 100 and torch.isnan(gaps).sum() > 0  # Carbon-24 rows have no gap


def test_augmentation_changes_the_tensor_but_not_the_crystal(shard_dir: Path) -> None:
    plain, aug = ShardDataset(shard_dir), ShardDataset(shard_dir, Augmentation(augment=True), seed=3)
    matcher = structure_matcher()
    changed = 0
    for i in range(0, len(plain), 23):
        a, b = plain[i], aug[i]
        changed += not torch.equal(a["x"][0], b["x"][0])
        assert torch.equal(a["x"][2], b["x"][2])  # the lattice channel is untouched
        sa = decode_tensor(a["x"].numpy(), a["element_z"].numpy(), plain.codec).structure
        sb = decode_tensor(b["x"].numpy(), b["element_z"].numpy(), plain.codec).structure
        assert matcher.fit(sa, sb), i
    assert changed >= 5
    again = ShardDataset(shard_dir, Augmentation(augment=True), seed=3)
    assert torch.equal(again[5]["x"], aug[5]["x"])  # deterministic given seed and epoch
    again.set_epoch(1)
    assert not torch.equal(again[5]["x"], aug[5]["x"])


def test_worker_processes_and_distributed_sampler(shard_dir: Path) -> None:
    ds = ShardDataset(shard_dir)
    ds[0]  # open a handle in the parent: workers must not reuse it
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0)
        loader = DataLoader(ds, batch_size=16, sampler=sampler, num_workers=2)
        for batch in loader:
            assert batch["x"].shape[1:] == (3, 128, 3)
            seen.extend(batch["index"].tolist())
    assert sorted(set(seen)) == list(range(len(ds)))


def test_missing_folder_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="encode"):
        ShardDataset(tmp_path)


@pytest.mark.parametrize("origin", ["random", "anchor"])
def test_origin_shift_gives_the_frame_the_model_sees(shard_dir: Path, origin: str) -> None:
    """Reconstruction compares the model's output with the record in this frame (an anchor model sees it shifted)."""
    ds = ShardDataset(shard_dir, Augmentation(site_order="canonical", origin=origin))
    structures = [s for _, s in iter_structures(shard_dir)]
    far = 0
    for i in range(0, len(ds), 7):
        item = ds[i]
        decoded = decode_tensor(item["x"].numpy(), item["element_z"].numpy(), ds.codec).structure
        shift = ds.origin_shift(i)
        errors = coordinate_errors(shifted_structure(structures[i], shift), decoded)
        assert errors is not None and np.abs(errors).max() < 1e-4, (i, origin)
        unshifted = coordinate_errors(structures[i], decoded)
        far += bool(np.abs(unshifted).max() > 0.01)
    if origin == "anchor":
        assert far > 5  # the stored frame is not the frame the model sees
    else:
        assert far == 0 and not np.any(ds.origin_shift(0))
    with pytest.raises(ValueError, match="random origin shift"):
        ShardDataset(shard_dir, Augmentation(augment=True, origin=origin)).origin_shift(0)
