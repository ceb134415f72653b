"""The validate stage entry point: plan jobs, compute this task's chunk, finalize.

``run_validate`` is a module-level function taking a config and paths, so submitit can pickle it
and a SLURM array task is just ``run_validate(..., task_index=i, num_tasks=K, finalize=False)``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pccd_hpc.folder_lock import folder_lock, task_lock
from pccd_hpc.io_utils import atomic_write_json, checked_output_dir, read_json, remove_stale_temps
from pccd_hpc.materials.backends.registry import get_backend, get_backend_class
from pccd_hpc.validate.config import ValidateConfig
from pccd_hpc.validate.finalize import finalize_validation
from pccd_hpc.validate.plan import Plan, ValidatePaths, plan, stores_for
from pccd_hpc.validate.runner import compute_jobs, pending_jobs

__all__ = ["Plan", "ValidatePaths", "plan", "run_validate", "stores_for"]

log = logging.getLogger(__name__)


def run_validate(
    config: ValidateConfig, paths: ValidatePaths, task_index: int = 0, num_tasks: int = 1, finalize: bool = True,
    force_redo: bool = False,
) -> dict[str, Any]:
    """Compute this task's chunk (every ``num_tasks``-th candidate and reference from ``task_index``),
    then, if ``finalize``, merge all records into results.csv and metrics.json. Returns a summary.

    Records computed with other settings are refused by name, or with ``force_redo`` computed again; a second
    writer on ``--out`` (or on this task of it) is refused (:class:`~pccd_hpc.folder_lock.FolderBusyError`)."""
    if not 0 <= task_index < num_tasks:
        raise ValueError(f"task_index must be in [0, {num_tasks}), got {task_index}")
    check_paths(paths)
    the_plan = plan(paths, config.backend, config.candidate_ids, config.candidate_limit)  # refusals come before --out exists
    out_dir = checked_output_dir(paths.out_dir, "--out")
    whole = num_tasks == 1
    lock = (folder_lock(out_dir, f"validate --out {out_dir}") if whole
            else task_lock(out_dir, f"{task_index}-of-{num_tasks}", f"validate task {task_index} of {num_tasks}, --out {out_dir}"))
    with lock:
        if whole:
            remove_stale_temps(out_dir)
            remove_stale_temps(out_dir / "records")
        return _run_locked(config, paths, the_plan, task_index, num_tasks, finalize, force_redo)


def check_paths(paths: ValidatePaths) -> None:
    """``ValueError`` when ``--out`` is the ``--input`` folder or inside it (validate would read its own files as
    candidates, and a rerun would find results.csv among them), or an existing file."""
    if not paths.input.exists() and not paths.input.is_symlink():
        raise FileNotFoundError(f"validate input not found: {paths.input}")
    out, given = paths.out_dir.expanduser().resolve(), paths.input.expanduser().resolve()
    if out == given or given in out.parents:
        raise ValueError(f"--out {paths.out_dir} is inside --input {paths.input}: validate would read its own records "
                         f"and results as candidates; choose an --out folder outside the input")
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {paths.out_dir} is an existing file, not a folder")


def _run_locked(config: ValidateConfig, paths: ValidatePaths, the_plan: Plan, task_index: int, num_tasks: int,
                finalize: bool, force_redo: bool) -> dict[str, Any]:
    out_dir = paths.out_dir
    stores = stores_for(config, paths)
    for kind, store in stores.items():
        store.settings_sha256 = config.record_settings_sha256(kind)
    my_candidates = the_plan.candidates[task_index::num_tasks]
    my_references = the_plan.references[task_index::num_tasks]
    mine = my_candidates + my_references
    # Candidate records of other settings are refused (or, --force-redo, redone) before config.json says the new
    # ones; the reference cache may be shared between runs of several settings, so its records are redone.
    todo = (pending_jobs(my_candidates, stores["candidate"], refuse_other_settings=not force_redo,
                         changed=_changed_settings(out_dir / "config.json", config))
            + pending_jobs(my_references, stores["reference"]))
    atomic_write_json(out_dir / "config.json", {"validate": config.to_dict(), "paths": {k: str(v) for k, v in vars(paths).items()}})
    log.info("task %d/%d: %d jobs, %d already done", task_index, num_tasks, len(mine), len(mine) - len(todo))
    summary: dict[str, Any] = {"task_index": task_index, "jobs": len(mine), "computed": 0, "pending_external": 0}
    if get_backend_class(config.backend).runs_in_process:
        summary["computed"] = compute_jobs(todo, stores, config, out_dir)
    else:
        from pccd_hpc.validate.vasp_jobs import sync_vasp_jobs

        backend = get_backend(config.backend, **config.backend_options)
        summary.update(sync_vasp_jobs(todo, stores, backend, out_dir / "vasp"))
    if finalize:
        summary["metrics"] = finalize_validation(config, paths, the_plan, stores)
    return summary


def _changed_settings(config_path: Path, config: ValidateConfig) -> str:
    """The record settings that differ from the previous run's ``config.json`` ("relax.max_steps 40 -> 200"), or ""."""
    try:
        previous = ValidateConfig.from_dict(read_json(config_path, "validate config")["validate"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    before, now = previous.record_settings("candidate"), config.record_settings("candidate")
    changes = []
    for key in sorted(now):
        a, b = before.get(key), now[key]
        if isinstance(a, dict) and isinstance(b, dict):
            changes += [f"{key}.{k} {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(b) if a.get(k) != b.get(k)]
        elif a != b:
            changes.append(f"{key} {a!r} -> {b!r}")
    return ", ".join(changes[:4])
