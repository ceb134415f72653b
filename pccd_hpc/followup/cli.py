"""``followup`` subcommand: DFT relaxation, band structure, phonons and a Fig. 4-style figure for chosen candidates.

Start a campaign (here, or as SLURM jobs with dependencies)::

    followup --val VDIR --top 2 --out FDIR [--backend gpaw|vasp] [--preset quick] [--cluster slurm]

Job scripts run single steps against a prepared FDIR::

    followup --out FDIR --step relax|static|bands|phonon-forces|phonons|finalize|collect --candidate ID
"""

from __future__ import annotations

from pccd_hpc.cluster.slurm import TIME_HELP, SlurmResources, time_limit_arg

import argparse
import json
import logging
from pathlib import Path

from pccd_hpc.followup.config import FollowupConfig, quick_config

log = logging.getLogger(__name__)

JOB_STEPS = ("relax", "static", "bands", "phonon-forces", "phonons", "finalize", "collect")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``followup`` subcommand."""
    p = subparsers.add_parser("followup", help="DFT relax, band structure, phonons and Fig. 4 figure for chosen candidates",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="followup folder FDIR")
    p.add_argument("--val", type=Path, help="validation folder VDIR (results.csv) to choose candidates from")
    p.add_argument("--ids", default="", help="comma-separated validation record ids")
    p.add_argument("--top", type=int, default=None, help="the K candidates with the lowest E_hull")
    p.add_argument("--backend", choices=["gpaw", "vasp"], default="gpaw", help="DFT backend (default gpaw)")
    p.add_argument("--preset", choices=["default", "quick"], default="default",
                   help="settings: default (production-like) or quick (coarse, for a first look)")
    p.add_argument("--config", type=Path, default=None,
                   help="TOML file of FollowupConfig fields merged over the preset (e.g. relax_cell = false)")
    p.add_argument("--ecut", type=float, default=None, help="GPAW plane-wave cutoff, eV (overrides the preset)")
    p.add_argument("--kpoint-density", type=float, default=None, help="SCF k-points per reciprocal Å (overrides the preset)")
    p.add_argument("--phonon-min-length", type=float, default=None, help="phonon supercell minimum width, Å")
    p.add_argument("--cluster", choices=["local", "slurm"], default="local", help="run here or submit SLURM jobs")
    p.add_argument("--partition", default=None, help="SLURM partition")
    p.add_argument("--time", type=time_limit_arg, default="04:00:00",
                   help=TIME_HELP.format(what="step job", default="04:00:00"))
    p.add_argument("--max-array-size", type=int, default=64, help="most tasks in a phonon-forces array")
    p.add_argument("--step", choices=JOB_STEPS, default=None, help="(job scripts) run one step of one candidate")
    p.add_argument("--candidate", default=None, help="(job scripts) the candidate id of --step")
    p.add_argument("--task-index", type=int, default=0, help="(phonon-forces array) this task's index")
    p.add_argument("--num-tasks", type=int, default=1, help="(phonon-forces array) number of tasks")
    p.set_defaults(func=main)


def config_from_args(args: argparse.Namespace) -> FollowupConfig:
    """The validated config from a preset plus the explicit overrides."""
    base = quick_config(args.backend) if args.preset == "quick" else FollowupConfig(backend=args.backend)
    overrides = {"ecut_ev": args.ecut, "kpoint_density_per_ang": args.kpoint_density,
                 "phonon_min_length_ang": args.phonon_min_length}
    data = base.to_dict()
    if args.config is not None:
        from pccd_hpc.config import load_toml

        data.update(load_toml(args.config))
    data.update({k: v for k, v in overrides.items() if v is not None})
    return FollowupConfig.from_dict(data)


def main(args: argparse.Namespace) -> int:
    """Run the followup subcommand; return an exit code (1 when a step failed)."""
    if args.step is not None:
        return _run_job_step(args)
    from pccd_hpc.followup.inputs import read_validation_candidates, select_candidates
    from pccd_hpc.followup.stage import prepare, run_local

    if args.val is None:
        raise ValueError("followup needs --val VDIR (or --step for a job script)")
    config = config_from_args(args)
    candidates, skipped = read_validation_candidates(args.val)
    for line in skipped:
        log.info("not a followup candidate: %s", line)
    chosen = select_candidates(candidates, [i for i in args.ids.split(",") if i], args.top)
    if not chosen:
        raise ValueError(f"no usable candidates in {args.val} ({len(skipped)} rows skipped; see the log)")
    log.info("followup: %d candidates with %s: %s", len(chosen), config.backend, ", ".join(c.record_id for c in chosen))
    folders = prepare(args.out.resolve(), chosen, config)
    if args.cluster == "slurm":
        from pccd_hpc.followup.submit import submit_followup

        slurm = SlurmResources(partition=args.partition, time_min=args.time, signal_delay_s=0)
        ids = submit_followup(args.out.resolve(), folders, config, slurm, max_array_size=args.max_array_size)
        print(" ".join(f"{name}={job_id}" for name, job_id in ids.items()))  # machine-readable for scripts
        return 0
    summaries = run_local(args.out.resolve(), folders)
    return 1 if any(s["errors"] for s in summaries) else 0


def _run_job_step(args: argparse.Namespace) -> int:
    from pccd_hpc.materials.errors import StepFailure
    from pccd_hpc.materials.backends.registry import get_dft_backend
    from pccd_hpc.followup.stage import candidate_dir, collect_summaries, load_config
    from pccd_hpc.followup.steps import run_step
    from pccd_hpc.followup.summary import finalize_candidate, write_campaign_summary

    out_dir = args.out.resolve()
    if args.step == "collect":
        write_campaign_summary(out_dir, collect_summaries(out_dir))
        return 0
    if not args.candidate:
        raise ValueError(f"--step {args.step} needs --candidate")
    folder = candidate_dir(out_dir, args.candidate)
    if not (folder / "input.json").exists():
        raise FileNotFoundError(f"candidate {args.candidate!r} not prepared in {out_dir} (no {folder / 'input.json'})")
    if args.step == "finalize":
        summary = finalize_candidate(folder)
        log.info("%s: summary %s", args.candidate, json.dumps({k: summary[k] for k in ("band_gap_ev", "imaginary_modes")}))
        return 0
    try:
        run_step(folder, args.step, get_dft_backend(load_config(out_dir)), args.task_index, args.num_tasks)
    except StepFailure as err:
        log.error("%s", err)
        return 1
    return 0
