"""Submit validate to SLURM: an array of compute tasks plus a dependent finalize job.

For the VASP backend, inputs are written here first and ``jobs/vasp_array.sh`` runs them; the
dependent job parses the finished runs and finalizes.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pccd_hpc.cluster.slurm import sbatch

log = logging.getLogger(__name__)

JOBS_DIR = Path(__file__).resolve().parents[1] / "jobs"
"""The job scripts ship inside the package (package data), so a non-editable install can submit them."""


def validate_args(args: argparse.Namespace) -> list[str]:
    """The validate options of ``args`` as an argument list (absolute paths) for the job script."""
    out = ["--input", str(args.input.resolve()), "--out", str(args.out.resolve()), "--backend", args.backend,
           "--optimizer", args.optimizer, "--fmax", repr(args.fmax), "--max-steps", str(args.max_steps),
           "--timeout-s", repr(args.timeout_s), "--phonon-min-length", repr(args.phonon_min_length)]
    for flag, value in (("--reference", args.reference), ("--train", args.train), ("--reference-cache", args.reference_cache)):
        if value is not None:
            out += [flag, str(Path(value).resolve())]
    if args.phonons:
        out.append("--phonons")
    if args.band_structure:
        out += ["--band-structure", args.band_structure]
    return out


def _options(args: argparse.Namespace, log_dir: Path, name: str, array: bool = False) -> list[str]:
    pattern = "%A_%a" if array else "%j"
    options = [f"--time={args.time}", f"--output={log_dir}/{name}-{pattern}.out", f"--job-name=pccd-{name}"]
    if args.partition:
        options.append(f"--partition={args.partition}")
    return options


def submit_validate_array(args: argparse.Namespace, array_size: int) -> dict[str, int]:
    """Submit the compute array (``array_size`` tasks) and the finalize job; return both job ids."""
    if array_size < 1:
        raise ValueError(f"--array-size must be >= 1, got {array_size}")
    log_dir = args.out.resolve() / "slurm-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    common = validate_args(args)
    if args.backend == "vasp":
        return _submit_vasp(args, array_size, common, log_dir)
    array_id = sbatch(
        JOBS_DIR / "validate_array.sh",
        [*common, "--array-size", str(array_size), "--no-finalize"],
        [f"--array=0-{array_size - 1}", f"--cpus-per-task={args.workers}", *_options(args, log_dir, "validate", array=True)],
    )
    finalize_id = sbatch(
        JOBS_DIR / "validate_array.sh",
        [*common, "--finalize-only"],
        [f"--dependency=afterany:{array_id}", "--cpus-per-task=1", *_options(args, log_dir, "validate-finalize")],
    )
    return {"array": array_id, "finalize": finalize_id}


def _submit_vasp(args: argparse.Namespace, array_size: int, common: list[str], log_dir: Path) -> dict[str, int]:
    from pccd_hpc.validate.cli import config_from_args
    from pccd_hpc.validate.stage import ValidatePaths, run_validate

    config = config_from_args(args)
    paths = ValidatePaths(input=args.input, out_dir=args.out, reference=args.reference, train=args.train,
                          reference_cache=args.reference_cache)
    summary = run_validate(config, paths, finalize=False)  # writes inputs, parses what is already done
    n_pending = int(summary.get("pending_external", 0))
    if n_pending == 0:
        raise ValueError(f"no pending VASP runs under {args.out}/vasp: run validate --backend vasp without --cluster to finalize")
    tasks = min(array_size, n_pending)
    array_id = sbatch(JOBS_DIR / "vasp_array.sh", [summary["pending_list"]],
                      [f"--array=0-{tasks - 1}", *_options(args, log_dir, "vasp", array=True)])
    finalize_id = sbatch(JOBS_DIR / "validate_array.sh", [*common],
                         [f"--dependency=afterany:{array_id}", "--cpus-per-task=1", *_options(args, log_dir, "vasp-collect")])
    return {"array": array_id, "finalize": finalize_id}
