"""Process layout from the environment, data dealing to ranks, and 2 gloo processes == 1 process."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Callable

import pytest
import torch

from pccd_hpc.config import RunConfig
from pccd_hpc.model.checkpoint import load_checkpoint
from pccd_hpc.train.data import RankBatchSampler
from pccd_hpc.train.distributed import env_from_environment, slurm_master_addr
from pccd_hpc.train.loop import train
from pccd_hpc.train.spawn import train_multiprocess


def test_env_from_torchrun_variables() -> None:
    env = env_from_environment({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                                "MASTER_ADDR": "gpu-17", "MASTER_PORT": "12345"})
    assert (env.rank, env.world_size, env.local_rank, env.master_addr, env.master_port) == (3, 8, 1, "gpu-17", 12345)
    assert not env.is_main and env.distributed


def test_env_from_slurm_step_uses_first_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "scontrol"  # stands in for `scontrol show hostnames` of a 2-node allocation
    fake.write_text("#!/bin/sh\n[ \"$2\" = hostnames ] && printf 'localhost\\nnode-b\\n'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    env = env_from_environment({"SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "4", "SLURM_LOCALID": "1",
                                "SLURM_STEP_NUM_NODES": "2", "SLURM_JOB_ID": "77",
                                "SLURM_JOB_NODELIST": "localhost,node-b"})
    assert (env.rank, env.world_size, env.local_world_size, env.master_port) == (1, 4, 2, 20077)
    assert env.master_addr == "localhost" == slurm_master_addr("localhost,node-b")


def test_batch_script_without_srun_is_a_single_process() -> None:
    assert not env_from_environment({"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_JOB_ID": "5"}).distributed


def test_ranks_share_each_global_batch() -> None:
    one = list(RankBatchSampler(50, 8, epoch=2, seed=1, rank=0, world_size=1))
    two = [list(RankBatchSampler(50, 8, epoch=2, seed=1, rank=r, world_size=2)) for r in range(2)]
    assert len(one) == 6
    for k, batch in enumerate(one):
        assert sorted(two[0][k] + two[1][k]) == sorted(batch)
    assert list(RankBatchSampler(50, 8, 2, 1, 0, 1, start=4)) == one[4:]
    assert one != list(RankBatchSampler(50, 8, epoch=3, seed=1, rank=0, world_size=1))  # reshuffled per epoch


@pytest.mark.slow
def test_two_gloo_processes_follow_the_one_process_loss_curve(sample_shards: Path, tmp_path: Path,
                                                              fast_config: Callable[..., RunConfig]) -> None:
    config = fast_config(max_steps=5, checkpoint_every=5)
    train(config, sample_shards, tmp_path / "one")
    train_multiprocess(config, sample_shards, tmp_path / "two", nproc=2)
    rows = {n: [json.loads(x) for x in (tmp_path / n / "metrics.jsonl").read_text().splitlines()] for n in ("one", "two")}
    loss_one, loss_two = [r["loss"] for r in rows["one"]], [r["loss"] for r in rows["two"]]
    assert [r["step"] for r in rows["two"]] == [1, 2, 3, 4, 5]
    torch.testing.assert_close(torch.tensor(loss_two), torch.tensor(loss_one), rtol=1e-4, atol=1e-6)
    assert len(set(loss_one)) == 5  # the weights really change between steps
    # Adam hides a gradient scale, the logged global gradient norm does not: mean (not sum, not one rank's half).
    norms_one, norms_two = [r["grad_norm"] for r in rows["one"]], [r["grad_norm"] for r in rows["two"]]
    torch.testing.assert_close(torch.tensor(norms_two), torch.tensor(norms_one), rtol=1e-3, atol=1e-6)
    w1 = load_checkpoint(tmp_path / "one").trainer
    w2 = load_checkpoint(tmp_path / "two").trainer
    assert w2.world_size == 2
    for key in w1.model:  # Adam turns float-rounding differences of tiny gradients into ~lr-sized steps
        assert (w2.model[key] - w1.model[key]).abs().max() < 3 * config.train.lr, key
