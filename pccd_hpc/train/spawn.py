"""``--cluster local --nproc K``: K training processes on this host, joined over gloo (or NCCL on GPUs)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch.multiprocessing as mp

from pccd_hpc.config import RunConfig
from pccd_hpc.train.distributed import DistEnv, free_port


def train_multiprocess(config: RunConfig, data_dir: str | Path, run_dir: str | Path, nproc: int) -> None:
    """Start ``nproc`` processes that train together (rank 0 writes the run folder); wait for all."""
    port = free_port()
    mp.spawn(_worker, args=(config.to_dict(), str(data_dir), str(run_dir), nproc, port), nprocs=nproc, join=True)


def _worker(rank: int, config: dict, data_dir: str, run_dir: str, nproc: int, port: int) -> None:
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(levelname)s rank{rank} %(name)s: %(message)s")
    from pccd_hpc.train.loop import train  # imported in the child after logging is set up

    env = DistEnv(rank=rank, world_size=nproc, local_rank=rank, local_world_size=nproc,
                  master_addr="127.0.0.1", master_port=port)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    try:
        train(RunConfig.from_dict(config), data_dir, run_dir, env)
    finally:
        from pccd_hpc.train.distributed import destroy_process_group

        destroy_process_group()
