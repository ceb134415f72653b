"""Submit validate to SLURM: an array of compute tasks plus a dependent finalize job.

The config travels as a TOML file in ``VDIR/slurm-logs/`` that every job reads with
``validate --config``; the SLURM side (sbatch, options, dependencies) is :mod:`pccd_hpc.cluster.slurm`.
For the VASP backend, inputs are written here first and ``jobs/vasp_array.sh`` runs them; the
dependent job parses the finished runs and finalizes.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from pccd_hpc.cluster.slurm import SlurmResources, submit_script
from pccd_hpc.stage_config import require, save_config_toml
from pccd_hpc.validate.config import ValidateConfig
from pccd_hpc.validate.plan import ValidatePaths
from pccd_hpc.validate.stage import run_validate

log = logging.getLogger(__name__)

JOBS_DIR = Path(__file__).resolve().parents[1] / "jobs"
"""The job scripts ship inside the package (package data), so a non-editable install can submit them."""


def job_arguments(config_file: Path, paths: ValidatePaths) -> list[str]:
    """The ``validate`` options every job of the run gets (absolute paths)."""
    out = ["--input", str(paths.input.resolve()), "--out", str(paths.out_dir.resolve()), "--config", str(config_file)]
    for flag, value in (("--reference", paths.reference), ("--train", paths.train),
                        ("--reference-cache", paths.reference_cache)):
        if value is not None:
            out += [flag, str(Path(value).resolve())]
    return out


def submit_validate_array(config: ValidateConfig, paths: ValidatePaths, slurm: SlurmResources, array_size: int = 1,
                          force_redo: bool = False) -> dict[str, int]:
    """Submit the compute array (``array_size`` chunks of the candidates and references) and the finalize job;
    return both job ids. Each array task asks for ``slurm`` with one CPU per worker, every other job for one CPU
    (no pre-timeout signal needed: a task that is cut off resumes from its records). ``force_redo``: every job
    computes again the records an earlier run made with other settings (``--force-redo``)."""
    require(array_size >= 1, "array_size", f"must be >= 1, got {array_size}")
    one_cpu = replace(slurm, cpus_per_task=1)
    log_dir = paths.out_dir.resolve() / "slurm-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    config_file = log_dir / "validate.toml"
    save_config_toml(config, config_file)
    common = job_arguments(config_file, paths) + (["--force-redo"] if force_redo else [])
    if config.backend == "vasp":
        return _submit_vasp(config, paths, one_cpu, array_size, common, log_dir)
    script = JOBS_DIR / "validate_array.sh"
    array_id = submit_script(script, [*common, "--array-size", str(array_size), "--no-finalize"],
                             replace(slurm, cpus_per_task=config.workers), name="pccd-validate",
                             log_file=log_dir / "validate-%A_%a.out", array_size=array_size)
    finalize_id = submit_script(script, [*common, "--finalize-only"], one_cpu,
                                name="pccd-validate-finalize", log_file=log_dir / "validate-finalize-%j.out",
                                after=array_id)
    return {"array": array_id, "finalize": finalize_id}


def _submit_vasp(config: ValidateConfig, paths: ValidatePaths, one_cpu: SlurmResources, array_size: int,
                 common: list[str], log_dir: Path) -> dict[str, int]:
    summary = run_validate(config, paths, finalize=False)  # writes inputs, parses what is already done
    n_pending = int(summary.get("pending_external", 0))
    if n_pending == 0:
        raise ValueError(f"no pending VASP runs under {paths.out_dir}/vasp: run validate --backend vasp without --cluster to finalize")
    tasks = min(array_size, n_pending)
    array_id = submit_script(JOBS_DIR / "vasp_array.sh", [summary["pending_list"]], one_cpu,
                             name="pccd-vasp", log_file=log_dir / "vasp-%A_%a.out", array_size=tasks, script_shape=True)
    finalize_id = submit_script(JOBS_DIR / "validate_array.sh", common, one_cpu,
                                name="pccd-vasp-collect", log_file=log_dir / "vasp-collect-%j.out", after=array_id)
    return {"array": array_id, "finalize": finalize_id}
