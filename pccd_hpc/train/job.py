"""Training as a SLURM job: the picklable entry point every task runs, and its submission.

:func:`train_task` is a module-level function of plain arguments, so submitit can pickle it;
:func:`submit_training` hands it to :func:`pccd_hpc.cluster.jobs.submit_requeueable`, which
exports RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT on every task and requeues the job at the
time limit or on preemption; the requeued job resumes from the newest complete checkpoint
(saved every ``checkpoint_every`` steps).
"""

from __future__ import annotations

import logging
from dataclasses import replace
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


def submit_training(config: RunConfig, data_dir: str | Path, run_dir: str | Path, slurm: SlurmResources) -> Any:
    """Submit a (multi-node) training job asking for ``slurm``; its logs go to ``RUN/submitit/``; returns the submitit job.

    One task per GPU (``slurm.tasks_per_node``); submitit requeues it up to 3 times on timeout (unlimited on
    preemption); re-running the command continues a run that ran out of requeues.
    """
    from pccd_hpc.cluster.jobs import submit_requeueable  # submitit is only needed here

    run_dir = Path(run_dir)
    resources = replace(slurm, extra={"name": f"pccd-train-{run_dir.name}", **slurm.extra})
    return submit_requeueable(train_task, (config.to_dict(), str(data_dir), str(run_dir)), run_dir / "submitit",
                              resources, torch_distributed=True)
