"""Submitting stage entry points to SLURM with submitit: one requeueable job, or a job array.

Stages expose picklable entry points (module-level functions taking plain arguments: strings,
numbers, dicts) that resume from their own files; this module is where they are handed to
submitit. A requeueable job is wrapped in :class:`Requeueable`: when SLURM sends the
``--signal`` before the time limit (or a preemption), submitit calls its ``checkpoint`` method,
which returns the same call as a ``DelayedSubmission``, so the job is requeued and the entry
point continues from the newest files it wrote.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import submitit
from submitit.helpers import DelayedSubmission, TorchDistributedEnvironment

from pccd_hpc.cluster.slurm import SlurmResources, executor_for

log = logging.getLogger(__name__)


class Requeueable:
    """``fn(*args)`` as a submitit job that requeues itself at the time limit or on preemption.

    With ``torch_distributed`` every task first exports RANK / WORLD_SIZE / MASTER_ADDR (the first
    node of the allocation) / MASTER_PORT from the SLURM variables (submitit's
    ``TorchDistributedEnvironment``), so the entry point reads its rank from the environment.
    """

    def __init__(self, fn: Callable[..., Any], args: Sequence[Any], torch_distributed: bool = False) -> None:
        self.fn = fn
        self.args = tuple(args)
        self.torch_distributed = torch_distributed

    def __call__(self) -> Any:
        if self.torch_distributed:
            TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        return self.fn(*self.args)

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        """Called by submitit on timeout/preemption: requeue the same call (it resumes from its files)."""
        log.warning("time limit or preemption: requeueing %s", getattr(self.fn, "__qualname__", self.fn))
        return DelayedSubmission(Requeueable(self.fn, self.args, self.torch_distributed))


def submit_requeueable(fn: Callable[..., Any], args: Sequence[Any], folder: str | Path, resources: SlurmResources,
                       torch_distributed: bool = False) -> submitit.Job:
    """Submit ``fn(*args)`` on every task of one job; submitit logs and pickles go to ``folder``."""
    executor = executor_for(Path(folder), resources)
    job = executor.submit(Requeueable(fn, args, torch_distributed))
    log.info("submitted job %s (%d node(s) x %d task(s)); logs in %s", job.job_id, resources.nodes,
             resources.tasks_per_node, folder)
    return job


def submit_array(fn: Callable[..., Any], arg_lists: Sequence[Sequence[Any]], folder: str | Path,
                 resources: SlurmResources) -> list[submitit.Job]:
    """Submit ``fn(*args)`` for each ``args`` of ``arg_lists`` as one SLURM job array."""
    executor = executor_for(Path(folder), resources)
    columns = [list(column) for column in zip(*arg_lists)]
    jobs = executor.map_array(fn, *columns) if columns else []
    log.info("submitted %d array tasks: %s", len(jobs), jobs[0].job_id.split("_")[0] if jobs else "-")
    return jobs


def run_folder_tasks(fn: Callable[[str, int], Any], out: Path, tasks: Sequence[int], resources: SlurmResources,
                     name: str, what: str, wait: bool = True) -> bool:
    """Run ``fn(str(out), task)`` for each of ``tasks`` as one SLURM array named ``name`` (submitit's files in
    ``out/slurm``); wait for all of them (:func:`wait_for_results`) and return True, or with ``wait`` False return
    False at once (the caller merges on a later run)."""
    from dataclasses import replace

    resources = replace(resources, extra={"name": name, **resources.extra})
    jobs = submit_array(fn, [(str(out), task) for task in tasks], out / "slurm", resources)
    if not wait:
        log.info("not waiting: re-run the same command to merge once the array has finished")
        return False
    wait_for_results(jobs, [f"task {task}" for task in tasks], what=what)
    return True


def wait_for_results(jobs: Sequence[submitit.Job], labels: Sequence[str], what: str = "tasks") -> list[Any]:
    """Wait for every job and return their results; ``RuntimeError`` listing every failed job (not just the first)."""
    results, failures = [], []
    for label, job in zip(labels, jobs):
        try:
            results.append(job.result())
        except Exception as err:  # submitit re-raises the task's own failure; collect them all
            failures.append(f"{label} (job {job.job_id}): {err}")
    if failures:
        raise RuntimeError(f"{what} failed; re-run the same command to retry them:\n" + "\n".join(failures))
    return results
