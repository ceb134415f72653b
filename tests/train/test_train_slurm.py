"""Training on the local real SLURM cluster: sbatch slurm/train.sh (2 tasks, 2 nodes), submitit, requeue."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest

from pccd_hpc.cluster.slurm import sbatch, wait_for_job
from pccd_hpc.config import RunConfig, save_toml
from pccd_hpc.model.checkpoint import load_checkpoint
from pccd_hpc.cluster.slurm import SlurmResources
from pccd_hpc.train.job import submit_training

REPO = Path(__file__).resolve().parents[2]
TRAIN_SH = REPO / "slurm" / "train.sh"

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _sbatch_train(tmp_path: Path, data: Path, options: list[str], args: list[str], preset: str) -> tuple[str, str]:
    job_id = sbatch(TRAIN_SH, [str(data), str(tmp_path / "run"), *args],
                    [f"--chdir={REPO}", f"--output={tmp_path}/%j.out", *options], env={"PRESET": preset})
    states = wait_for_job(job_id, timeout_s=300)
    log = (tmp_path / f"{job_id}.out").read_text()
    assert set(states.values()) == {"COMPLETED"}, log[-3000:]
    return str(job_id), log


def test_sbatch_train_sh_cpu_preset_two_tasks(local_slurm: object, sample_shards: Path, tmp_path: Path) -> None:
    _, log = _sbatch_train(tmp_path, sample_shards, [], ["--max-steps", "2"], preset="cpu")
    assert "rank 0/2" in log and "rank 1/2" in log
    state = load_checkpoint(tmp_path / "run")
    assert state.step == 2 and state.trainer.world_size == 2 and state.config.preset == "cpu"


def test_two_node_job_rendezvous_on_first_node(local_slurm_2nodes: object, sample_shards: Path, tmp_path: Path,
                                               fast_config: Callable[..., RunConfig]) -> None:
    save_toml(fast_config(max_steps=3), tmp_path / "tiny.toml")
    _, log = _sbatch_train(tmp_path, sample_shards, ["--nodes=2", "--ntasks-per-node=1"],
                           ["--config", str(tmp_path / "tiny.toml")], preset="tiny")
    assert re.search(r"rank 0/2 on node1 joining gloo process group at node1:\d+", log), log[-3000:]
    assert re.search(r"rank 1/2 on node2 joining gloo process group at node1:\d+", log), log[-3000:]
    state = load_checkpoint(tmp_path / "run")
    assert state.step == 3 and state.trainer.world_size == 2


def test_submitit_two_tasks(local_slurm: object, sample_shards: Path, tmp_path: Path,
                            fast_config: Callable[..., RunConfig]) -> None:
    job = submit_training(fast_config(max_steps=3), sample_shards, tmp_path / "run",
                          SlurmResources(tasks_per_node=2, time_min=5, signal_delay_s=90))
    results = job.results()
    assert [r["step"] for r in results] == [3, 3]
    assert load_checkpoint(tmp_path / "run").trainer.world_size == 2


def _restarts(job_id: str) -> int:
    out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
    match = re.search(r"Restarts=(\d+)", out)
    return int(match.group(1)) if match else 0


def _max_step(run: Path) -> int:
    path = run / "metrics.jsonl"
    if not path.exists():
        return 0
    steps = [json.loads(line)["step"] for line in path.read_text().splitlines() if line.strip()]
    return max(steps, default=0)


def test_timeout_requeues_and_resumes(local_slurm: object, sample_shards: Path, tmp_path: Path,
                                      fast_config: Callable[..., RunConfig]) -> None:
    """A 2-minute job signalled ~50 s before its limit is requeued by submitit and continues from last.pt."""
    run = tmp_path / "run"
    config = fast_config(max_steps=10**7, checkpoint_every=2, augment=False)
    job = submit_training(config, sample_shards, run, SlurmResources(tasks_per_node=1, time_min=2, signal_delay_s=50))
    first_max, deadline = 0, time.monotonic() + 420
    try:
        while time.monotonic() < deadline:
            if _restarts(job.job_id) == 0:
                first_max = max(first_max, _max_step(run))
            elif _max_step(run) > first_max + 2:
                break
            time.sleep(1)
        else:
            pytest.fail(f"no requeue and resumed progress: restarts={_restarts(job.job_id)}, steps={_max_step(run)}")
    finally:
        job.cancel(check=False)
    assert first_max > 0
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, len(steps) + 1))  # resumed rows continue the first job's without a gap
