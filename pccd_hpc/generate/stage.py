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

if TYPE_CHECKING:
    from pccd_hpc.sampling.checkpoint_sampler import LoadedModel

log = logging.getLogger(__name__)


GENERATE_ARRAY_PARALLELISM = 64
"""Most generation array tasks running at once (``SlurmResources.array_parallelism`` as generate submits it)."""


def run_generate(plan: GeneratePlan, out_dir: str | Path, slurm: SlurmResources | None = None,
                 loaded: LoadedModel | None = None, force_redo: bool = False, wait: bool = True) -> dict | None:
    """Run (or resume) a generation; return the summary, or None when SLURM jobs were left running.

    ``slurm`` None runs the tasks in this process; else each task is a submitit array task asking for
    ``slurm``, and with ``wait`` this blocks until the array has finished, then merges (without: re-run to merge).

    ``loaded`` is the plan's model when the caller has it already (local tasks then share it). Task
    files made by another plan are refused by name, or with ``force_redo`` removed and made again;
    a second writer on the folder is refused (:class:`~pccd_hpc.folder_lock.FolderBusyError`).
    """
    out = checked_output_dir(out_dir)
    with folder_lock(out, f"generate --out {out}"):
        plan = _prepare(out, plan, force_redo)
        todo = [k for k in range(plan.n_tasks) if not task_done(out, k)]
        started = time.time()
        if todo and slurm is None:
            _run_local(out, plan, todo, loaded)
    if todo and slurm is not None:  # the array tasks take the folder lock shared, each with its own task lock
        from pccd_hpc.cluster.jobs import run_folder_tasks

        if not run_folder_tasks(run_task, out, todo, slurm, "pccd-generate", "generation tasks", wait):
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

