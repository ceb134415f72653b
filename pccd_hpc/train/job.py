"""Training as a submitit job that requeues itself at the time limit or on preemption.

:class:`TrainJob` is a picklable callable: every SLURM task runs ``TrainJob()``; submitit's
``TorchDistributedEnvironment`` exports RANK / WORLD_SIZE / MASTER_ADDR (the first node of the
allocation) / MASTER_PORT, and :func:`pccd_hpc.train.loop.train` resumes from ``last.pt``. When
SLURM sends the ``--signal`` before the time limit (or a preemption), submitit calls
:meth:`TrainJob.checkpoint`, which returns a ``DelayedSubmission`` of the same job: the job is
requeued and the next run continues from the newest checkpoint (saved every ``checkpoint_every``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import submitit
from submitit.helpers import Checkpointable, DelayedSubmission, TorchDistributedEnvironment

from pccd_hpc.cluster.slurm import make_submitit_executor
from pccd_hpc.config import RunConfig

log = logging.getLogger(__name__)


class TrainJob(Checkpointable):
    """One training run (config as a plain dict, data and run folders as strings), requeueable."""

    def __init__(self, config: dict[str, Any], data_dir: str, run_dir: str) -> None:
        self.config = config
        self.data_dir = data_dir
        self.run_dir = run_dir

    def __call__(self) -> dict[str, Any]:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        from pccd_hpc.train.distributed import destroy_process_group, env_from_environment
        from pccd_hpc.train.loop import train

        TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        env = env_from_environment()
        try:
            result = train(RunConfig.from_dict(self.config), self.data_dir, self.run_dir, env)
        finally:
            destroy_process_group()
        return {"step": result.step, "loss": result.loss, "skipped_nonfinite": result.skipped_nonfinite}

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        """Called by submitit on timeout/preemption: requeue this job; it resumes from ``last.pt``."""
        log.warning("time limit or preemption: requeueing; training resumes from %s/checkpoints", self.run_dir)
        return DelayedSubmission(TrainJob(self.config, self.data_dir, self.run_dir))


def submit_training(config: RunConfig, data_dir: str | Path, run_dir: str | Path, *, nodes: int = 1,
                    gpus_per_node: int = 0, tasks_per_node: int | None = None, cpus_per_task: int = 1,
                    partition: str | None = None, time_min: int = 60, signal_delay_s: int = 90) -> submitit.Job:
    """Submit a (multi-node) training job with submitit; its logs go to ``RUN/submitit/``.

    One task per GPU (or ``tasks_per_node`` CPU processes); submitit requeues it up to 3 times on
    timeout (unlimited on preemption); re-running the command continues a run that ran out of requeues.
    """
    run_dir = Path(run_dir)
    tasks = tasks_per_node or max(gpus_per_node, 1)
    executor = make_submitit_executor(run_dir / "submitit", partition=partition, nodes=nodes, tasks_per_node=tasks,
                                      gpus_per_node=gpus_per_node, cpus_per_task=cpus_per_task, time_min=time_min,
                                      signal_delay_s=signal_delay_s, extra={"name": f"pccd-train-{run_dir.name}"})
    job = executor.submit(TrainJob(config.to_dict(), str(data_dir), str(run_dir)))
    log.info("submitted training job %s (%d node(s) x %d task(s)); logs in %s", job.job_id, nodes, tasks,
             run_dir / "submitit")
    return job
