"""Training as a SLURM job: the picklable entry point every task runs, and its submission.

:func:`train_task` is a module-level function of plain arguments, so submitit can pickle it;
:func:`submit_training` hands it to :func:`pccd_hpc.cluster.jobs.submit_requeueable`, which
exports RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT on every task and requeues the job at the
time limit or on preemption; the requeued job resumes from the newest complete checkpoint
(saved every ``checkpoint_every`` steps).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pccd_hpc.cluster.slurm import SlurmResources
from pccd_hpc.config import RunConfig

log = logging.getLogger(__name__)


def train_task(config: dict[str, Any], data_dir: str, run_dir: str) -> dict[str, Any]:
    """One training process of a SLURM job (rank from the environment); returns step, loss, skipped steps."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from pccd_hpc.train.distributed import destroy_process_group, env_from_environment
    from pccd_hpc.train.loop import train

    try:
        result = train(RunConfig.from_dict(config), data_dir, run_dir, env_from_environment())
    finally:
        destroy_process_group()
    return {"step": result.step, "loss": result.loss, "skipped_nonfinite": result.skipped_nonfinite}


def submit_training(config: RunConfig, data_dir: str | Path, run_dir: str | Path, *, nodes: int = 1,
                    gpus_per_node: int = 0, tasks_per_node: int | None = None, cpus_per_task: int = 1,
                    partition: str | None = None, time_min: int = 60, signal_delay_s: int = 90) -> Any:
    """Submit a (multi-node) training job; its logs go to ``RUN/submitit/``; returns the submitit job.

    One task per GPU (or ``tasks_per_node`` CPU processes); submitit requeues it up to 3 times on
    timeout (unlimited on preemption); re-running the command continues a run that ran out of requeues.
    """
    from pccd_hpc.cluster.jobs import submit_requeueable  # submitit is only needed here

    run_dir = Path(run_dir)
    resources = SlurmResources(partition=partition, nodes=nodes, tasks_per_node=tasks_per_node or max(gpus_per_node, 1),
                               gpus_per_node=gpus_per_node, cpus_per_task=cpus_per_task, time_min=time_min,
                               signal_delay_s=signal_delay_s, extra={"name": f"pccd-train-{run_dir.name}"})
    return submit_requeueable(train_task, (config.to_dict(), str(data_dir), str(run_dir)), run_dir / "submitit",
                              resources, torch_distributed=True)
