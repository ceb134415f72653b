"""``validate`` subcommand: relax candidates, E_hull, phonons, metrics (locally or as a SLURM array)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from pccd_hpc.cluster.slurm import TIME_HELP, SlurmResources, time_limit_arg
from pccd_hpc.io_utils import checked_input_path
from pccd_hpc.stage_config import load_config_toml
from pccd_hpc.folder_lock import folder_lock
from pccd_hpc.validate.config import DEFAULT_MAX_MEMORY_GB, DEFAULT_MAX_SITES, ValidateConfig
from pccd_hpc.validate.finalize import finalize_validation
from pccd_hpc.validate.plan import ValidatePaths, plan, stores_for
from pccd_hpc.validate.stage import check_paths, run_validate

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``validate`` subcommand."""
    p = subparsers.add_parser("validate", help="relax candidates, energy above hull, phonons, metrics",
                              description=__doc__)
    p.add_argument("--input", required=True, type=Path, help="candidates: CIF (every data block) or POSCAR/*.vasp file or folder, shard folder, "
                   "or CSV with a cif column; unusable inputs are listed in VDIR/rejected_inputs.csv")
    p.add_argument("--out", required=True, type=Path, help="validation folder VDIR")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="validate only the first N candidates (in input order; after --ids): a quick try on part of a run")
    p.add_argument("--ids", default=None, metavar="FILE|ID,ID",
                   help="validate only these candidates: a file with one id per line, or ids separated by commas "
                   "(a generate run's ids look like gen-0000042; see its structures.csv)")
    p.add_argument("--config", type=Path, help="TOML file of ValidateConfig fields (tables [relax], [phonon]); "
                   "the options below override it")
    p.add_argument("--backend", default=None, help="energy backend: chgnet (default, offline) or vasp")
    p.add_argument("--reference", type=Path, help="your own hull reference, for a same-backend hull: shards/CIF folder/CSV "
                   "(relaxed with the backend) or ComputedStructureEntry JSON (default: the hull of all of MP-20 from "
                   "its DFT formation energies, candidates put on that scale by fitted element energies)")
    p.add_argument("--train", type=Path, help="training structures for structural novelty (default: none; novelty is "
                   "then only by composition, against MP-20's known compositions)")
    p.add_argument("--reference-cache", type=Path, help="shared cache of reference energies (default VDIR/reference_cache; "
                   "~/.cache/pccd_hpc for the bundled set)")
    p.add_argument("--phonons", action="store_true", default=None, help="phonopy phonons for every relaxed candidate")
    p.add_argument("--band-structure", default=None, help="comma-separated candidate ids to plot phonon bands for")
    p.add_argument("--optimizer", default=None, help="ASE optimizer (BFGS (default), FIRE, LBFGS)")
    p.add_argument("--fmax", type=float, default=None, help="force threshold, eV/Å (default 0.05)")
    p.add_argument("--max-steps", type=int, default=None, help="relaxation step cap (default 500)")
    p.add_argument("--timeout-s", type=float, default=None, help="per-structure relaxation wall-clock limit (default 600)")
    p.add_argument("--phonon-min-length", type=float, default=None, help="minimum supercell width, Å (default 10)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes in this task (default: the config's, else SLURM_CPUS_PER_TASK or 1)")
    p.add_argument("--cluster", choices=["local", "slurm"], default="local", help="run here or submit a SLURM array")
    p.add_argument("--array-size", type=int, default=1, help="number of array tasks (chunks)")
    p.add_argument("--task-index", type=int, default=None,
                   help="compute only this chunk (default: SLURM_ARRAY_TASK_ID if set, else all)")
    p.add_argument("--no-finalize", action="store_true", help="skip the merge step (array tasks)")
    p.add_argument("--finalize-only", action="store_true", help="only merge records into results.csv/metrics.json")
    p.add_argument("--max-sites", type=int, default=None,
                   help=f"structures with more sites are not relaxed, the record says why (default {DEFAULT_MAX_SITES})")
    p.add_argument("--max-memory-gb", type=float, default=None,
                   help=f"structures whose relaxation is estimated to need more memory per worker are not relaxed "
                   f"(default {DEFAULT_MAX_MEMORY_GB:g})")
    p.add_argument("--force-redo", action="store_true",
                   help="compute again the records an earlier run made with other settings (default: refuse them)")
    p.add_argument("--partition", default=None, help="SLURM partition (with --cluster slurm)")
    p.add_argument("--time", type=time_limit_arg, default="02:00:00",
                   help=TIME_HELP.format(what="array task", default="02:00:00"))
    p.set_defaults(func=main)


def config_from_args(args: argparse.Namespace) -> ValidateConfig:
    """The validated config: ``--config`` TOML (else the defaults), then every option given on the command line."""
    base = load_config_toml(ValidateConfig, args.config) if getattr(args, "config", None) else None
    top: dict[str, Any] = {"backend": args.backend, "phonons": args.phonons, "workers": args.workers,
                           "max_sites": getattr(args, "max_sites", None), "max_memory_gb": getattr(args, "max_memory_gb", None)}
    if args.band_structure is not None:
        top["band_structure_ids"] = tuple(i for i in args.band_structure.split(",") if i)
    if getattr(args, "ids", None) is not None:
        top["candidate_ids"] = read_id_list(args.ids)
    if getattr(args, "limit", None) is not None:
        if args.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {args.limit}")
        top["candidate_limit"] = args.limit
    relax = {"optimizer": args.optimizer, "fmax_ev_per_ang": args.fmax, "max_steps": args.max_steps,
             "timeout_s": args.timeout_s}
    phonon = {"min_length_ang": args.phonon_min_length}
    if base is None and args.workers is None:
        top["workers"] = int(os.environ.get("SLURM_CPUS_PER_TASK", "1"))
    base = base or ValidateConfig()
    given = {k: v for k, v in top.items() if v is not None}
    return dataclasses.replace(
        base, **given,
        relax=dataclasses.replace(base.relax, **{k: v for k, v in relax.items() if v is not None}),
        phonon=dataclasses.replace(base.phonon, **{k: v for k, v in phonon.items() if v is not None}),
    )


def read_id_list(text: str) -> tuple[str, ...]:
    """``--ids``: the ids in a file (one per line; blank lines and ``#`` comments skipped), or ``id,id,...``."""
    path = Path(text)
    if path.is_file():
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise ValueError(f"--ids {path}: unreadable id file ({err})") from err
        ids = [line.split("#", 1)[0].strip() for line in lines]
    else:
        ids = [part.strip() for part in text.split(",")]
    ids = [i for i in ids if i]
    if not ids:
        raise ValueError(f"--ids {text!r}: no ids given (a file with one id per line, or ids separated by commas)")
    return tuple(dict.fromkeys(ids))


def paths_from_args(args: argparse.Namespace) -> ValidatePaths:
    """Input, output and reference paths from parsed arguments."""
    return ValidatePaths(input=args.input, out_dir=args.out, reference=args.reference, train=args.train,
                         reference_cache=args.reference_cache)


def main(args: argparse.Namespace) -> int:
    """Run the validate subcommand; return an exit code."""
    config = config_from_args(args)
    paths = paths_from_args(args)
    checked_input_path(paths.input, "--input")  # before anything is created under --out
    check_paths(paths)
    if args.cluster == "slurm":
        from pccd_hpc.validate.submit import submit_validate_array

        slurm = SlurmResources(partition=args.partition, time_min=args.time, signal_delay_s=0)
        job_ids = submit_validate_array(config, paths, slurm, args.array_size, force_redo=args.force_redo)
        log.info("submitted validate array %s and finalize job %s", job_ids["array"], job_ids["finalize"])
        print(f"array={job_ids['array']} finalize={job_ids['finalize']}")  # machine-readable for scripts
        return 0
    if args.array_size < 1:
        raise ValueError(f"--array-size must be >= 1, got {args.array_size}")
    task_index = args.task_index
    if task_index is None and "SLURM_ARRAY_TASK_ID" in os.environ and args.array_size > 1:
        task_index = int(os.environ["SLURM_ARRAY_TASK_ID"]) - int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0"))
    if args.finalize_only:
        with folder_lock(paths.out_dir, f"validate --finalize-only --out {paths.out_dir}"):
            the_plan = plan(paths, config.backend, config.candidate_ids, config.candidate_limit)
            finalize_validation(config, paths, the_plan, stores_for(config, paths))
        return 0
    if task_index is None:
        summary = run_validate(config, paths, 0, 1, finalize=not args.no_finalize, force_redo=args.force_redo)
    else:
        summary = run_validate(config, paths, task_index, args.array_size, finalize=not args.no_finalize,
                               force_redo=args.force_redo)
    log.info("validate summary: %s", {k: v for k, v in summary.items() if k != "metrics"})
    if summary.get("pending_external"):
        log.info("%d VASP runs pending; run jobs/vasp_array.sh (or --cluster slurm), then re-run validate", summary["pending_external"])
    return 0
