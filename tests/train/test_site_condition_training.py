"""Training and sampling with the number of sites as a condition, on real shards, checkpoints and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from pccd_hpc.config import RunConfig
from pccd_hpc.data.augmentation import Augmentation
from pccd_hpc.data.dataset import ShardDataset
from pccd_hpc.generate.plan import read_plan
from pccd_hpc.sampling.checkpoint_sampler import CheckpointSampler, load_model
from pccd_hpc.launch import main as launch_main
from pccd_hpc.model.conditioning import Conditions, count_elements
from pccd_hpc.model.checkpoint import export_checkpoint, load_checkpoint
from pccd_hpc.train.device_batches import DeviceBatches
from pccd_hpc.train.loop import train
from _fine_tune import start_from_export


def _with_sites(config: RunConfig) -> RunConfig:
    return config.with_overrides({"model": {"site_condition": True}})


def _shard_counts(shards: Path) -> tuple[np.ndarray, np.ndarray]:
    dataset = ShardDataset(shards)
    arrays = [dataset.shard_arrays(k) for k in range(len(dataset.shards))]
    return (np.concatenate([a.n_sites for a in arrays]), np.concatenate([a.element_z for a in arrays]))


def test_fine_tuning_adds_the_site_condition_from_a_count_free_model(
        fast_config: Callable[..., RunConfig], sample_shards: Path, tmp_path: Path, capsys, caplog) -> None:
    base = fast_config(max_steps=2)
    # step 0 of the fine-tune computes what the source does, whatever count it is given
    exported, _, grown, original = start_from_export(base, _with_sites(base), sample_shards, tmp_path)
    gen = torch.Generator().manual_seed(1)
    x, t = torch.randn(3, 3, 128, 3, generator=gen), torch.tensor([5, 300, 900])
    z = torch.tensor([[8, 12, 0], [8, 26, 0], [3, 3, 8]])
    zeros = torch.zeros(3, dtype=torch.long)
    with torch.no_grad():
        want = original(x, t, Conditions(z, zeros, zeros))
        assert torch.allclose(grown(x, t, Conditions(z, zeros, zeros, torch.tensor([4, 7, 12]))), want, atol=1e-5)

    tuned = _with_sites(fast_config(max_steps=3, init_from=str(exported)))
    train(tuned, sample_shards, tmp_path / "tuned")
    state = load_checkpoint(tmp_path / "tuned")
    assert state.config.model.site_condition
    rows = state.ema["cond_embed.sites.weight"]
    assert torch.count_nonzero(rows[0]) == 0 and torch.count_nonzero(rows[1:17]) > 0  # null stays zero
    assert torch.count_nonzero(state.ema["cond_embed.site_proj.weight"]) > 0  # zero at the start, then learns
    prior = state.ema["cond_embed.site_count_prior"]
    n_sites, element_z = _shard_counts(sample_shards)
    assert int(prior.sum()) == len(n_sites)  # one entry per training crystal ...
    k = count_elements(torch.as_tensor(element_z)).numpy()
    for kk, n in [(int(k[0]), int(n_sites[0])), (int(k[-1]), int(n_sites[-1]))]:
        assert prior[kk, n] == int(np.sum((k == kk) & (n_sites == n)))  # ... in its (elements, sites) cell

    # resuming keeps the prior it started with
    train(_with_sites(fast_config(max_steps=5, init_from=str(exported))), sample_shards, tmp_path / "tuned")
    assert torch.equal(load_checkpoint(tmp_path / "tuned").ema["cond_embed.site_count_prior"], prior)

    # sampling: counts drawn from the prior (only counts the training set has for that many elements), or fixed
    model_file = export_checkpoint(tmp_path / "tuned", tmp_path / "tuned.pt")
    loaded = load_model(model_file)
    ternary = torch.tensor([[8, 12, 22]] * 64)
    drawn = CheckpointSampler(loaded, steps=2).site_counts(ternary, torch.Generator().manual_seed(0))
    seen = set(n_sites[k == 3].tolist())
    assert set(drawn.tolist()) <= seen and len(drawn) == 64
    assert CheckpointSampler(loaded, steps=2, n_sites=6).site_counts(ternary, None).unique().tolist() == [6]

    out = tmp_path / "gen"
    args = ["generate", "--n", "4", "--elements", "Mg,O", "--checkpoint", str(model_file), "--steps", "2",
            "--n-sites", "6", "--out", str(out)]
    assert launch_main(args) == 0
    assert json.loads(capsys.readouterr().out)["n_generated"] == 4
    assert read_plan(out).n_sites == 6
    # a count the codec cannot hold, or a count asked of a count-free model: a clear error, nothing written
    bad = ["generate", "--n", "4", "--elements", "Mg,O", "--steps", "2"]
    assert launch_main([*bad, "--checkpoint", str(model_file), "--n-sites", "17", "--out", str(tmp_path / "g2")]) == 2
    assert "--n-sites must be in [1, 16]" in caplog.text
    assert launch_main([*bad, "--checkpoint", str(exported), "--n-sites", "6", "--out", str(tmp_path / "g3")]) == 2
    assert "is not conditioned on the number of sites" in caplog.text
    assert not (tmp_path / "g2").exists() and not (tmp_path / "g3").exists()


def test_device_batches_carry_each_record_s_number_of_sites(sample_shards: Path) -> None:
    dataset = ShardDataset(sample_shards)
    idx = [0, 5, len(dataset) - 1]
    batch = DeviceBatches(dataset, "cpu", Augmentation(augment=True)).batch(idx, torch.Generator().manual_seed(0))
    assert batch["n_sites"].tolist() == [int(dataset[i]["n_sites"]) for i in idx]
