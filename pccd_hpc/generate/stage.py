"""The generate stage: plan -> tasks (here, or as a SLURM array) -> summary.

``run_generate`` writes the plan, runs the unfinished tasks (in this process with a progress
bar, or as a submitit array on SLURM) and merges them into ``summary.json``. Re-running the same
command on the same folder skips finished tasks and completes partial ones.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pccd_hpc.generate.plan import GeneratePlan, read_plan, write_plan
from pccd_hpc.generate.summary import summarise
from pccd_hpc.generate.tasks import run_task, task_done
from pccd_hpc.io_utils import checked_output_dir

log = logging.getLogger(__name__)


@dataclass
class ClusterOptions:
    """Where tasks run: ``local`` (this process) or ``slurm`` (a submitit array)."""

    cluster: str = "local"
    partition: str | None = None
    gpus_per_task: int = 0
    cpus_per_task: int = 1
    time_min: int = 60
    array_parallelism: int = 64
    wait: bool = True
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cluster not in ("local", "slurm"):
            raise ValueError(f"cluster must be 'local' or 'slurm', got {self.cluster!r}")
        if self.gpus_per_task < 0 or self.cpus_per_task < 1 or self.time_min < 1:
            raise ValueError("gpus_per_task >= 0, cpus_per_task >= 1 and time_min >= 1 are required")


def run_generate(plan: GeneratePlan, out_dir: str | Path, cluster: ClusterOptions | None = None) -> dict | None:
    """Run (or resume) a generation; return the summary, or None when SLURM jobs were left running."""
    cluster = cluster or ClusterOptions()
    out = checked_output_dir(out_dir)
    write_plan(out, plan)
    plan = read_plan(out)
    todo = [k for k in range(plan.n_tasks) if not task_done(out, k)]
    started = time.time()
    if todo and cluster.cluster == "local":
        _run_local(out, plan, todo)
    elif todo:
        if not _run_slurm(out, todo, cluster):
            return None
    n_sampled = sum(len(plan.task_range(k)) for k in todo)
    return summarise(out, plan, time.time() - started if todo else None, n_sampled=n_sampled)


def _run_local(out: Path, plan: GeneratePlan, todo: list[int]) -> None:
    from tqdm import tqdm

    total = sum(len(plan.task_range(k)) for k in todo)
    with tqdm(total=total, unit="sample", desc="generate", disable=not sys.stderr.isatty()) as bar:
        for task in todo:
            run_task(out, task, progress=bar.update)


def _run_slurm(out: Path, todo: list[int], cluster: ClusterOptions) -> bool:
    from pccd_hpc.cluster.slurm import make_submitit_executor

    executor = make_submitit_executor(
        out / "slurm", partition=cluster.partition, nodes=1, tasks_per_node=1, gpus_per_node=cluster.gpus_per_task,
        cpus_per_task=cluster.cpus_per_task, time_min=cluster.time_min, array_parallelism=cluster.array_parallelism,
        extra={"name": "pccd-generate", **cluster.extra},
    )
    jobs = executor.map_array(run_task, [str(out)] * len(todo), todo)
    log.info("submitted %d array tasks: %s", len(jobs), jobs[0].job_id.split("_")[0] if jobs else "-")
    if not cluster.wait:
        log.info("not waiting: re-run the same command to merge once the array has finished")
        return False
    failures = []
    for task, job in zip(todo, jobs):
        try:
            job.result()
        except Exception as err:  # submitit re-raises the task's failure; report them all, not the first
            failures.append(f"task {task} (job {job.job_id}): {err}")
    if failures:
        raise RuntimeError("generation tasks failed; re-run the same command to retry them:\n" + "\n".join(failures))
    return True
