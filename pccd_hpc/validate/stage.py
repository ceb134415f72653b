"""The validate stage entry point: plan jobs, compute this task's chunk, finalize.

``run_validate`` is a module-level function taking a config and paths, so submitit can pickle it
and a SLURM array task is just ``run_validate(..., task_index=i, num_tasks=K, finalize=False)``.
"""

from __future__ import annotations

import logging
from typing import Any

from pccd_hpc.io_utils import atomic_write_json
from pccd_hpc.validate.backends.registry import get_backend, get_backend_class
from pccd_hpc.validate.config import ValidateConfig
from pccd_hpc.validate.finalize import finalize_validation
from pccd_hpc.validate.plan import Plan, ValidatePaths, plan, stores_for
from pccd_hpc.validate.runner import compute_jobs, pending_jobs

__all__ = ["Plan", "ValidatePaths", "plan", "run_validate", "stores_for"]

log = logging.getLogger(__name__)


def run_validate(
    config: ValidateConfig, paths: ValidatePaths, task_index: int = 0, num_tasks: int = 1, finalize: bool = True
) -> dict[str, Any]:
    """Compute this task's chunk (every ``num_tasks``-th candidate and reference from ``task_index``),
    then, if ``finalize``, merge all records into results.csv and metrics.json. Returns a summary."""
    if not 0 <= task_index < num_tasks:
        raise ValueError(f"task_index must be in [0, {num_tasks}), got {task_index}")
    out_dir = paths.out_dir
    the_plan = plan(paths, config.backend, config.candidate_ids, config.candidate_limit)  # a missing input raises here
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "config.json", {"validate": config.to_dict(), "paths": {k: str(v) for k, v in vars(paths).items()}})
    stores = stores_for(config, paths)
    my_candidates = the_plan.candidates[task_index::num_tasks]
    my_references = the_plan.references[task_index::num_tasks]
    mine = my_candidates + my_references
    todo = pending_jobs(my_candidates, stores["candidate"]) + pending_jobs(my_references, stores["reference"])
    log.info("task %d/%d: %d jobs, %d already done", task_index, num_tasks, len(mine), len(mine) - len(todo))
    summary: dict[str, Any] = {"task_index": task_index, "jobs": len(mine), "computed": 0, "pending_external": 0}
    if get_backend_class(config.backend).runs_in_process:
        summary["computed"] = compute_jobs(todo, stores, config, out_dir)
    else:
        from pccd_hpc.validate.backends.vasp import sync_vasp_jobs

        backend = get_backend(config.backend, **config.backend_options)
        summary.update(sync_vasp_jobs(todo, stores, backend, out_dir / "vasp"))
    if finalize:
        summary["metrics"] = finalize_validation(config, paths, the_plan, stores)
    return summary
