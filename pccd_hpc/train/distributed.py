"""Where this process sits in a distributed run, and the few collective helpers training needs.

The process group is described by :class:`DistEnv`, read from (in order) torchrun variables
(``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT``), a SLURM step started by
``srun`` or submitit (``SLURM_PROCID``/``SLURM_STEP_NUM_TASKS``/``SLURM_LOCALID``; master address =
first host of ``scontrol show hostnames $SLURM_JOB_NODELIST``), or a single process. Backend: NCCL on
GPU, gloo on CPU. Everything else in training asks ``env.is_main`` instead of testing ranks itself.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import subprocess
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

DEFAULT_PORT = 29500


@dataclass(frozen=True)
class DistEnv:
    """Rank, world size and rendezvous address of this process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    master_addr: str = "127.0.0.1"
    master_port: int = DEFAULT_PORT

    @property
    def is_main(self) -> bool:
        """True on the one process that writes logs, metrics and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process trains together."""
        return self.world_size > 1


def env_from_environment(environ: Mapping[str, str] | None = None) -> DistEnv:
    """Read the process layout from torchrun or SLURM variables; a lone process otherwise."""
    env = os.environ if environ is None else environ
    if "RANK" in env and "WORLD_SIZE" in env:
        world = int(env["WORLD_SIZE"])
        return DistEnv(
            rank=int(env["RANK"]), world_size=world, local_rank=int(env.get("LOCAL_RANK", 0)),
            local_world_size=int(env.get("LOCAL_WORLD_SIZE", world)),
            master_addr=env.get("MASTER_ADDR", "127.0.0.1"), master_port=int(env.get("MASTER_PORT", DEFAULT_PORT)),
        )
    if "SLURM_PROCID" in env and "SLURM_STEP_NUM_TASKS" in env:  # inside an srun/submitit step
        world = int(env["SLURM_STEP_NUM_TASKS"])
        nodes = int(env.get("SLURM_STEP_NUM_NODES", env.get("SLURM_NNODES", 1)))
        job_id = int(env.get("SLURM_JOB_ID", 0))
        return DistEnv(
            rank=int(env["SLURM_PROCID"]), world_size=world, local_rank=int(env.get("SLURM_LOCALID", 0)),
            local_world_size=max(1, world // max(nodes, 1)),
            master_addr=env.get("MASTER_ADDR") or slurm_master_addr(env.get("SLURM_JOB_NODELIST", "")),
            master_port=int(env.get("MASTER_PORT", 20000 + job_id % 20000)),
        )
    return DistEnv()


def slurm_master_addr(nodelist: str) -> str:
    """Address of the first node of a SLURM node list (``scontrol show hostnames``; NodeAddr if unresolvable)."""
    if not nodelist:
        return "127.0.0.1"
    first = subprocess.run(["scontrol", "show", "hostnames", nodelist], check=True, capture_output=True,
                           text=True).stdout.split()[0]
    try:
        socket.gethostbyname(first)
        return first
    except OSError:  # simulated multi-node clusters name nodes that DNS does not know
        info = subprocess.run(["scontrol", "show", "node", first], check=True, capture_output=True, text=True).stdout
        for field in info.split():
            if field.startswith("NodeAddr="):
                return field.split("=", 1)[1]
        return first


def free_port() -> int:
    """A TCP port that is free on this host right now (for single-host multi-process runs)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pick_device(env: DistEnv) -> torch.device:
    """This process's GPU (by local rank) when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        torch.cuda.set_device(env.local_rank % torch.cuda.device_count())
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def set_cpu_threads(env: DistEnv, threads: int = 0) -> int:
    """Give each process on a node an equal share of the CPU cores it may run on; return the count."""
    if threads <= 0:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = max(1, cores // max(env.local_world_size, 1))
    torch.set_num_threads(threads)
    return threads


def init_process_group(env: DistEnv, device: torch.device, timeout_s: float = 600.0) -> None:
    """Join the process group (NCCL on GPU, gloo on CPU) when there is more than one process."""
    if not env.distributed or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    node = os.environ.get("SLURMD_NODENAME", socket.gethostname())
    log.info("rank %d/%d on %s joining %s process group at %s:%d", env.rank, env.world_size, node, backend,
             env.master_addr, env.master_port)
    dist.init_process_group(backend, init_method=f"tcp://{env.master_addr}:{env.master_port}", rank=env.rank,
                            world_size=env.world_size, timeout=datetime.timedelta(seconds=timeout_s))


def destroy_process_group() -> None:
    """Leave the process group if one was joined."""
    if dist.is_initialized():
        dist.destroy_process_group()


def mean_over_processes(value: torch.Tensor) -> torch.Tensor:
    """Average a tensor over all processes (identity for one process)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= dist.get_world_size()
    return value


def barrier() -> None:
    """Wait for every process (no-op for one process)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def any_process(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True on every process when ``flag`` is true on at least one (a no-op without a process group).

    ``device`` is where the reduction runs (the training device: NCCL reduces CUDA tensors only).
    """
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)
