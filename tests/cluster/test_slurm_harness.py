"""Real SLURM jobs on the local test cluster through pccd_hpc.cluster.slurm."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from pccd_hpc.cluster import slurm

def _write_script(path: Path, body: str) -> Path:
    """A batch script with ``body`` after a bash shebang and ``set -eu``."""
    path.write_text("#!/bin/bash\nset -eu\n" + body)
    return path


def _square_with_job_id(x: int) -> tuple[int, str, str]:
    """Run inside a submitit job: x squared, the job id and the host's node name."""
    return x * x, os.environ["SLURM_JOB_ID"], os.environ["SLURMD_NODENAME"]


@pytest.mark.slurm
def test_slurm_available(local_slurm) -> None:
    assert slurm.slurm_available()


@pytest.mark.slurm
def test_array_job_every_task_output_and_sacct_completed(local_slurm, tmp_path: Path) -> None:
    script = _write_script(
        tmp_path / "array.sh",
        'echo "task=$SLURM_ARRAY_TASK_ID job=$SLURM_ARRAY_JOB_ID arg=$1" > "out-$SLURM_ARRAY_TASK_ID.txt"\n',
    )
    job_id = slurm.sbatch(
        script,
        args=["hello"],
        sbatch_options=["--array=0-3", f"--chdir={tmp_path}", f"--output={tmp_path}/slurm-%A_%a.out"],
    )
    states = slurm.wait_for_job(job_id, timeout_s=120, poll_s=0.5)
    assert states == {f"{job_id}_{k}": "COMPLETED" for k in range(4)}
    for k in range(4):
        text = (tmp_path / f"out-{k}.txt").read_text().strip()
        assert text == f"task={k} job={job_id} arg=hello"
    # sacct alone (the accounting database) agrees.
    assert slurm.job_states(job_id) == states


@pytest.mark.slurm
def test_failing_job_is_reported_failed(local_slurm, tmp_path: Path) -> None:
    script = _write_script(tmp_path / "fail.sh", "echo about to fail\nexit 3\n")
    job_id = slurm.sbatch(script, sbatch_options=[f"--output={tmp_path}/fail.out"])
    assert slurm.wait_for_job(job_id, timeout_s=60, poll_s=0.5) == {str(job_id): "FAILED"}
    exit_code = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", str(job_id), "--format=ExitCode"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert exit_code == "3:0"


@pytest.mark.slurm
def test_sbatch_env_reaches_the_job(local_slurm, tmp_path: Path) -> None:
    script = _write_script(tmp_path / "env.sh", 'echo "$PCCD_TEST_VALUE" > "$1"\n')
    out = tmp_path / "value.txt"
    job_id = slurm.sbatch(script, args=[str(out)], sbatch_options=[f"--output={tmp_path}/env.out"],
                          env={"PCCD_TEST_VALUE": "42 with spaces"})
    assert slurm.wait_for_job(job_id, timeout_s=60, poll_s=0.5) == {str(job_id): "COMPLETED"}
    assert out.read_text().strip() == "42 with spaces"


@pytest.mark.slurm
def test_submitit_job_returns_result(local_slurm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The pickled function refers to this test module by name; the job must be able to import it.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    executor = slurm.make_submitit_executor(tmp_path / "submitit", partition=local_slurm.partition, time_min=5,
                                            signal_delay_s=30)
    job = executor.submit(_square_with_job_id, 7)
    value, job_id, node = job.result()
    assert value == 49
    assert job_id == job.job_id
    assert node in local_slurm.node_names
    assert slurm.wait_for_job(job.job_id, timeout_s=60, poll_s=0.5) == {job.job_id: "COMPLETED"}


@pytest.mark.slurm
@pytest.mark.mpi
def test_srun_pmi2_mpi4py_ranks(local_slurm, tmp_path: Path) -> None:
    script = _write_script(
        tmp_path / "mpi.sh",
        "srun --mpi=pmi2 -n 2 python -c "
        "'from mpi4py import MPI; c = MPI.COMM_WORLD; "
        "print(f\"rank {c.Get_rank()} of {c.Get_size()} sum {c.allreduce(c.Get_rank() + 1)}\")'\n",
    )
    out = tmp_path / "mpi.out"
    job_id = slurm.sbatch(script, sbatch_options=["-n", "2", f"--output={out}"])
    assert slurm.wait_for_job(job_id, timeout_s=120, poll_s=0.5) == {str(job_id): "COMPLETED"}, out.read_text()
    lines = sorted(line for line in out.read_text().splitlines() if line.startswith("rank"))
    assert lines == ["rank 0 of 2 sum 3", "rank 1 of 2 sum 3"], out.read_text()


@pytest.mark.slurm
def test_two_node_job_sees_both_nodes_and_master(local_slurm_2nodes, tmp_path: Path) -> None:
    script = _write_script(
        tmp_path / "two.sh",
        'scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1 > master.txt\n'
        "srun bash -c 'echo \"$SLURM_PROCID $SLURMD_NODENAME\"' > nodes.txt\n",
    )
    job_id = slurm.sbatch(
        script,
        sbatch_options=["-N", "2", "--ntasks-per-node=1", f"--chdir={tmp_path}", f"--output={tmp_path}/two.out"],
    )
    assert slurm.wait_for_job(job_id, timeout_s=120, poll_s=0.5) == {str(job_id): "COMPLETED"}
    master = (tmp_path / "master.txt").read_text().strip()
    rank_nodes = dict(line.split() for line in (tmp_path / "nodes.txt").read_text().splitlines())
    assert set(rank_nodes.values()) == {"node1", "node2"}
    assert master == "node1" == rank_nodes["0"]
    # The master's name must resolve, e.g. for MASTER_ADDR of torch.distributed.
    assert socket.gethostbyname(master) == "127.0.0.1"


def test_resources_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="cpus_per_task"):
        slurm.SlurmResources(cpus_per_task=0)
    with pytest.raises(ValueError, match="signal_delay_s"):
        slurm.SlurmResources(time_min=1, signal_delay_s=60)
    options = slurm.SlurmResources(partition="debug", nodes=2, gpus_per_node=1).sbatch_options()
    assert "--nodes=2" in options and "--partition=debug" in options and "--gpus-per-node=1" in options


def test_parse_states_handles_arrays_and_cancel_reasons() -> None:
    text = "12_0|COMPLETED\n12_[1-3]|PENDING\n13|CANCELLED by 0\n\n"
    assert slurm._parse_states(text) == {"12_0": "COMPLETED", "12_[1-3]": "PENDING", "13": "CANCELLED"}


def test_finished_waits_for_requeue_and_array_records() -> None:
    done = {"5": "COMPLETED"}
    assert slurm._finished({}, done)  # slurmctld forgot the job: sacct decides
    assert not slurm._finished({}, {})
    assert not slurm._finished({"5": "PENDING"}, {"5": "PREEMPTED"})  # being requeued
    assert not slurm._finished({"5_0": "COMPLETED", "5_1": "COMPLETED"}, done)  # sacct lags
    assert slurm._finished({"5_0": "COMPLETED"}, {"5_0": "COMPLETED"})
    assert not slurm._finished({"5_0": "COMPLETED", "5_1": "COMPLETED"}, {"5_1": "COMPLETED"})
    assert slurm._finished({"5_0": "COMPLETED", "5_1": "CANCELLED"}, {"5_0": "COMPLETED", "5_[1-3]": "CANCELLED"})
