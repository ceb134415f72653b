"""``generate`` subcommand (and ``generate-task`` for sbatch array scripts)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from pccd_hpc.cluster.slurm import ARRAY_TASK_FLAGS, add_array_task_flags, array_task_resources
from pccd_hpc.data.codec import DECODE_METHODS
from pccd_hpc.data.separation import PUSH_APART_FACTOR
from pccd_hpc.folder_lock import folder_lock
from pccd_hpc.generate.plan import GeneratePlan, generate_bounds_problem, read_plan, tasks_needed
from pccd_hpc.generate.stage import GENERATE_ARRAY_PARALLELISM, run_generate
from pccd_hpc.generate.systems import read_systems
from pccd_hpc.generate.tasks import run_task
from pccd_hpc.io_utils import checked_input_path
from pccd_hpc.model.samplers import DDIM_STEPS, GUIDANCE_SCALE
from pccd_hpc.sampling.checkpoint_sampler import check_site_request, default_checkpoint, load_model, pick_device
from pccd_hpc.sampling.decoding import DECODE_METHOD, DECODE_MIN_POINTS, decode_codec
from pccd_hpc.stage_config import flags_in_errors

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``generate`` and ``generate-task`` subcommands."""
    gen = subparsers.add_parser(
        "generate",
        help="sample N crystal structures for chemical systems (locally or as a SLURM array)",
        description="Sample N structures with a trained model (default: the bundled one), decode them "
        "and write one HDF5 shard + one multi-structure CIF per task, then for the run: structures.csv (one row "
        "per sample), cifs/<id>.cif (one file per structure), structures.extxyz, structures.png and summary.json. "
        "Re-running the same command on the same --out resumes: finished tasks are skipped, partial ones completed.",
    )
    gen.add_argument("--n", type=int, required=True, help="number of samples (>= 1); exactly this many are made")
    gen.add_argument("--elements", action="append", default=None, metavar="SYSTEM",
                     help="a chemical system such as Mg,Mn,O or with families (exact upper-case RE, AE, AM, TM, "
                     "or @-prefixed such as @tm; Tm, Re, Am are elements) such as AE,TM,O, "
                     "or 'paper' (the paper's RE/AE/TM oxide batch); repeatable (default: paper)")
    gen.add_argument("--systems", default=None, metavar="FILE", help="file with one system per line")
    gen.add_argument("--band-gap-class", type=int, choices=[0, 1, 2], default=None,
                     help="0 metal, 1 gap < 1.5 eV, 2 gap >= 1.5 eV (default: unconditioned)")
    gen.add_argument("--n-sites", type=int, default=None,
                     help="number of sites of every sample, for a model conditioned on it (default: each sample's "
                     "count drawn from the training set's distribution for its number of elements)")
    gen.add_argument("--checkpoint", default=None, help="checkpoint file, step-N/ folder, or training run folder (its "
                     "newest complete checkpoint); default: the bundled model")
    gen.add_argument("--sampler", choices=["ddim", "ddpm"], default="ddim",
                     help="ddim (deterministic, --steps steps; default) or ddpm (ancestral, every one of the model's steps)")
    gen.add_argument("--steps", type=int, default=DDIM_STEPS, help=f"DDIM steps (default {DDIM_STEPS})")
    gen.add_argument("--guidance", type=float, default=GUIDANCE_SCALE,
                     help=f"classifier-free guidance scale (default {GUIDANCE_SCALE:g})")
    gen.add_argument("--cluster-eps", type=float, default=None,
                     help="decode: DBSCAN radius in Angstrom (default: the checkpoint's codec, 0.5)")
    gen.add_argument("--decode", choices=list(DECODE_METHODS), default=DECODE_METHOD,
                     help="how atoms are read from a sampled tensor: blocks (the codec's row layout, default; "
                     "DBSCAN where no atom count fits) or dbscan (PCCD's clustering)")
    gen.add_argument("--cluster-min-points", type=int, default=DECODE_MIN_POINTS,
                     help=f"decode: points an atom needs (default {DECODE_MIN_POINTS}: half of the 8 points "
                     "each atom of a 16-site crystal owns; sparser clusters are noise)")
    gen.add_argument("--push-apart-factor", type=float, default=PUSH_APART_FACTOR,
                     help=f"after decoding, push atoms apart until every distance is >= this x the sum of covalent "
                     f"radii (AIRSS-style; default {PUSH_APART_FACTOR}); the shards keep the ratio as sampled too")
    gen.add_argument("--no-push-apart", action="store_true",
                     help="keep the structures exactly as the model sampled them")
    gen.add_argument("--batch-size", type=int, default=256,
                     help="samples denoised together (default 256; a killed task loses at most one batch)")
    gen.add_argument("--seed", type=int, default=0, help="base seed: the same seed and options give the same structures (default 0)")
    gen.add_argument("--out", required=True, help="output folder (re-use it to resume or merge)")
    gen.add_argument("--cluster", choices=["local", "slurm"], default="local",
                     help="local: run the tasks in this process (default); slurm: submit them as a submitit array")
    gen.add_argument("--array-size", type=int, default=None,
                     help="number of tasks (default: the plan's in an existing --out, else 1 for --cluster local "
                     "and ceil(N/1000) for slurm or --plan-only)")
    add_array_task_flags(gen)
    gen.add_argument("--plan-only", action="store_true",
                     help="write plan.json and print the tasks, the sbatch command for jobs/generate_array.sh and "
                     "an estimated time from the model's speed measured here; samples nothing")
    gen.add_argument("--force-redo", action="store_true",
                     help="replace a different plan.json and every task file another plan made (default: refuse them)")
    gen.set_defaults(func=_run_generate)

    task = subparsers.add_parser("generate-task", help="run one task of an existing generation plan (array jobs)")
    task.add_argument("--out", required=True, help="generation folder holding plan.json")
    task.add_argument("--task", type=int, required=True, help="task index (e.g. $SLURM_ARRAY_TASK_ID)")
    task.set_defaults(func=_run_task)
    register_reconstruct(subparsers)


def _run_generate(args: argparse.Namespace) -> int:
    if args.n < 1:  # before the model is loaded
        raise ValueError(f"--n must be >= 1 (the number of samples), got {args.n}")
    # Every argument is checked before anything is loaded or written: a refused command leaves no plan.json behind.
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {args.out} is an existing file, not a folder")
    n_tasks = args.array_size or _existing_task_count(args.out) or (
        tasks_needed(args.n) if args.cluster == "local" and not args.plan_only else max(1, -(-args.n // 1000)))
    problem = generate_bounds_problem(args.n, min(n_tasks, args.n), args.batch_size, args.seed)
    if problem is not None:
        raise ValueError(problem)
    checkpoint = _checkpoint_path(args.checkpoint)
    loaded = load_model(checkpoint, pick_device())  # once: its hash and codec go into the plan, local tasks reuse it
    check_site_request(loaded, args.n_sites)
    systems = read_systems(args.elements or (None if args.systems else ["paper"]), args.systems)
    with flags_in_errors(PLAN_FLAGS):
        plan = _plan(args, loaded, checkpoint, systems, n_tasks)
        submits = args.cluster == "slurm" and not args.plan_only  # the pre-timeout signal only matters then
        slurm = array_task_resources(args, GENERATE_ARRAY_PARALLELISM, signal=submits)
    if args.plan_only:
        from pccd_hpc.generate.plan import write_plan
        from pccd_hpc.generate.plan_report import describe_plan, measure_seconds_per_sample
        from pccd_hpc.io_utils import checked_output_dir

        out = checked_output_dir(args.out)
        with folder_lock(out, f"generate --plan-only --out {out}"):
            plan = write_plan(out, plan, replace=args.force_redo)
        seconds, where = measure_seconds_per_sample(loaded, plan)
        print(describe_plan(out, plan, slurm, seconds, where))
        return 0
    summary = run_generate(plan, args.out, slurm if args.cluster == "slurm" else None, loaded=loaded,
                           force_redo=args.force_redo, wait=not args.no_wait)
    if summary is not None:
        print(json.dumps(summary, indent=2))
    return 0


PLAN_FLAGS = {"n": "--n", "steps": "--steps", "batch_size": "--batch-size", "n_tasks": "--array-size",
              "guidance": "--guidance", "n_sites": "--n-sites", "push_apart_factor": "--push-apart-factor",
              "cluster_eps_ang": "--cluster-eps", "cluster_min_points": "--cluster-min-points", **ARRAY_TASK_FLAGS}
"""Config fields of the plan and its SLURM resources, and the generate flag that sets each (for error messages)."""


def _plan(args: argparse.Namespace, loaded, checkpoint: Path, systems, n_tasks: int) -> GeneratePlan:
    """The generation plan the command line asks for."""
    return GeneratePlan(
        n=args.n, systems=systems, checkpoint=str(loaded.path or checkpoint), checkpoint_sha256=loaded.sha256,
        sampler=args.sampler, steps=args.steps, guidance=args.guidance, band_gap_class=args.band_gap_class,
        batch_size=args.batch_size, seed=args.seed, n_tasks=min(n_tasks, args.n),
        codec=decode_codec(loaded.codec, args.cluster_eps, args.cluster_min_points, args.decode).to_dict(),
        push_apart_factor=None if args.no_push_apart else args.push_apart_factor, n_sites=args.n_sites,
    )


def _existing_task_count(out: str) -> int | None:
    """The task count of a plan already in ``out`` (a merge after ``--plan-only`` needs no --array-size)."""
    return read_plan(out).n_tasks if (Path(out) / "plan.json").is_file() else None


def _checkpoint_path(given: str | None) -> Path:
    """The checkpoint a user named (checked to exist), else the bundled model."""
    return checked_input_path(given, "--checkpoint") if given else default_checkpoint()


def _run_task(args: argparse.Namespace) -> int:
    run_task(args.out, args.task, plan=read_plan(args.out))  # read_plan: a clear error when the plan is missing
    return 0


def register_reconstruct(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``reconstruct`` subcommand (paper Fig. 1 / Table 1)."""
    rec = subparsers.add_parser(
        "reconstruct",
        help="noise encoded structures to step t, denoise, compare one-to-one (paper Fig. 1 / Table 1)",
        description="Reconstruction experiment. --t 1000 is the paper's protocol (pure noise with the item's "
        "conditions); smaller t (e.g. 300) is partial-noise reconstruction. Run it on held-out shards as well "
        "as training shards and label them.",
    )
    rec.add_argument("--data", required=True, help="encoded shard folder")
    rec.add_argument("--n", type=int, default=1280, help="records to reconstruct (default 1280)")
    rec.add_argument("--t", type=int, default=300, help="noise step (1..T; T = pure noise)")
    rec.add_argument("--steps", type=int, default=DDIM_STEPS, help=f"DDIM steps from t to 0 (default {DDIM_STEPS})")
    rec.add_argument("--guidance", type=float, default=GUIDANCE_SCALE,
                     help=f"classifier-free guidance scale (default {GUIDANCE_SCALE:g})")
    rec.add_argument("--batch-size", type=int, default=128, help="records denoised together (default 128)")
    rec.add_argument("--seed", type=int, default=0, help="seed of the record choice and the noise (default 0)")
    rec.add_argument("--label", default="", help="e.g. held-out or training (written into the results)")
    rec.add_argument("--checkpoint", default=None, help="checkpoint file, step-N/ folder or run folder "
                     "(default: the bundled model)")
    rec.add_argument("--cluster-eps", type=float, default=None, help="decode: DBSCAN radius in Angstrom")
    rec.add_argument("--cluster-min-points", type=int, default=DECODE_MIN_POINTS, help="decode: points an atom needs")
    rec.add_argument("--decode", choices=list(DECODE_METHODS), default=DECODE_METHOD,
                     help="decode: blocks (the codec's row layout, default) or dbscan")
    rec.add_argument("--push-apart-factor", type=float, default=PUSH_APART_FACTOR,
                     help=f"decode as generate does, with its push-apart (default {PUSH_APART_FACTOR}); the figures "
                     "without it are reported too, under as_sampled")
    rec.add_argument("--no-push-apart", action="store_true", help="decode without the push-apart")
    rec.add_argument("--out", required=True, help="output folder (reconstruct.json, reconstruct.png)")
    rec.set_defaults(func=_run_reconstruct)


def _run_reconstruct(args: argparse.Namespace) -> int:
    from pccd_hpc.sampling.reconstruction import ReconstructConfig, run_reconstruct

    checkpoint = _checkpoint_path(args.checkpoint)
    loaded = load_model(checkpoint, pick_device())
    config = ReconstructConfig(n=args.n, t=min(args.t, loaded.config.diffusion.timesteps - 1), steps=args.steps,
                               guidance=args.guidance, batch_size=args.batch_size, seed=args.seed,
                               push_apart_factor=None if args.no_push_apart else args.push_apart_factor)
    codec = decode_codec(loaded.codec, args.cluster_eps, args.cluster_min_points, args.decode)
    metrics = run_reconstruct(loaded, checked_input_path(args.data, "--data"), args.out, config, args.label, codec)
    print(json.dumps({k: v for k, v in metrics.items() if k != "paper"}, indent=2))
    return 0
