"""The generate stage: plan -> tasks (here, or as a SLURM array) -> summary.

``run_generate`` writes the plan, runs the unfinished tasks (in this process with a progress
bar, or as a submitit array on SLURM) and merges them into ``summary.json``. Re-running the same
command on the same folder skips finished tasks and completes partial ones.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pccd_hpc.cluster.slurm import SlurmResources
from pccd_hpc.data.shards import shard_name
from pccd_hpc.folder_lock import folder_lock
from pccd_hpc.generate.plan import PLAN_NAME, GeneratePlan, write_plan
from pccd_hpc.generate.summary import summarise
from pccd_hpc.generate.tasks import (
    TensorSampler, foreign_task_problem, load_sampler, remove_task_files, run_task, task_done,
)
from pccd_hpc.io_utils import checked_output_dir, remove_stale_temps
from pccd_hpc.progress import Progress
from pccd_hpc.stage_config import require

if TYPE_CHECKING:
    from pccd_hpc.sampling.checkpoint_sampler import LoadedModel

log = logging.getLogger(__name__)


@dataclass
class ClusterOptions:
    """Where tasks run: ``local`` (this process) or ``slurm`` (a submitit array)."""

    cluster: str = "local"
    """``local`` or ``slurm``."""
    partition: str | None = None
    """SLURM partition (None: the default one)."""
    gpus_per_task: int = 0
    cpus_per_task: int = 1
    time_min: int = 60
    """Wall-clock limit of each array task in minutes."""
    array_parallelism: int = 64
    """Most array tasks running at once."""
    wait: bool = True
    """Block until the array has finished, then merge; else return at once (re-run to merge)."""
    extra: dict = field(default_factory=dict)
    """Further submitit parameters, passed through."""

    def __post_init__(self) -> None:
        require(self.cluster in ("local", "slurm"), "cluster", f"must be 'local' or 'slurm', got {self.cluster!r}")
        require(self.gpus_per_task >= 0, "gpus_per_task", f"must be >= 0, got {self.gpus_per_task}")
        require(self.cpus_per_task >= 1, "cpus_per_task", f"must be >= 1, got {self.cpus_per_task}")
        require(self.time_min >= 1, "time_min", f"must be >= 1, got {self.time_min}")
        require(self.array_parallelism >= 1, "array_parallelism", f"must be >= 1, got {self.array_parallelism}")

    def resources(self) -> SlurmResources:
        """What each array task asks SLURM for."""
        return SlurmResources(partition=self.partition, nodes=1, tasks_per_node=1, gpus_per_node=self.gpus_per_task,
                              cpus_per_task=self.cpus_per_task, time_min=self.time_min,
                              array_parallelism=self.array_parallelism, extra={"name": "pccd-generate", **self.extra})


def run_generate(plan: GeneratePlan, out_dir: str | Path, cluster: ClusterOptions | None = None,
                 loaded: LoadedModel | None = None, force_redo: bool = False) -> dict | None:
    """Run (or resume) a generation; return the summary, or None when SLURM jobs were left running.

    ``loaded`` is the plan's model when the caller has it already (local tasks then share it). Task
    files made by another plan are refused by name, or with ``force_redo`` removed and made again;
    a second writer on the folder is refused (:class:`~pccd_hpc.folder_lock.FolderBusyError`).
    """
    cluster = cluster or ClusterOptions()
    out = checked_output_dir(out_dir)
    with folder_lock(out, f"generate --out {out}"):
        plan = _prepare(out, plan, force_redo)
        todo = [k for k in range(plan.n_tasks) if not task_done(out, k)]
        started = time.time()
        if todo and cluster.cluster == "local":
            _run_local(out, plan, todo, loaded)
    if todo and cluster.cluster == "slurm":  # the array tasks take the folder lock shared, each with its own task lock
        if not _run_slurm(out, todo, cluster):
            return None
    n_sampled = sum(len(plan.task_range(k)) for k in todo)
    return summarise(out, plan, time.time() - started if todo else None, n_sampled=n_sampled)


def _prepare(out: Path, plan: GeneratePlan, force_redo: bool) -> GeneratePlan:
    """Refuse (or, with ``force_redo``, remove) task files another plan made, then write the plan; return it as stored."""
    if not force_redo and (out / PLAN_NAME).exists():
        write_plan(out, plan)  # refuses a different plan.json before anything is looked at
    stored = GeneratePlan(**json.loads(json.dumps(plan.to_dict())))
    known = {int(m.group(1)) for p in out.glob("shard-*.*") if (m := re.match(r"shard-(\d+)\.", p.name))}
    known |= {int(p.name[5:]) for p in (out / "parts").glob("task-*") if p.name[5:].isdigit()}
    for task in sorted(known):
        problem = (foreign_task_problem(out, task, stored) if task < stored.n_tasks
                   else f"{shard_name(task)} is task {task}, beyond this plan's {stored.n_tasks} tasks")
        if problem is None:
            continue
        if not force_redo:
            raise ValueError(f"{out}: {problem}")
        log.warning("--force-redo: removing task %d (%s)", task, problem)
        remove_task_files(out, task)
    remove_stale_temps(out)
    return write_plan(out, plan, replace=force_redo)


def _run_local(out: Path, plan: GeneratePlan, todo: list[int], loaded: LoadedModel | None) -> None:
    shared: list[TensorSampler] = []

    def shared_sampler(plan: GeneratePlan) -> TensorSampler:  # the model is loaded once for all tasks
        if not shared:
            shared.append(load_sampler(plan, loaded))
        return shared[0]

    total = sum(len(plan.task_range(k)) for k in todo)
    with Progress("sampling", total, "sample") as progress:
        for task in todo:
            run_task(out, task, sampler_factory=shared_sampler, progress=progress, plan=plan)


def _run_slurm(out: Path, todo: list[int], cluster: ClusterOptions) -> bool:
    from pccd_hpc.cluster.jobs import submit_array, wait_for_results

    jobs = submit_array(run_task, [(str(out), task) for task in todo], out / "slurm", cluster.resources())
    if not cluster.wait:
        log.info("not waiting: re-run the same command to merge once the array has finished")
        return False
    wait_for_results(jobs, [f"task {task}" for task in todo], what="generation tasks")
    return True
