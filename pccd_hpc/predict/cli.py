"""``predict`` subcommand (crystal structure prediction from formulas) and ``predict-task`` for array jobs."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pccd_hpc.cluster.slurm import SlurmResources, add_array_task_flags, array_task_resources
from pccd_hpc.io_utils import checked_input_path
from pccd_hpc.predict.config import MAX_CANDIDATES, PREDICT_FLAGS, PredictConfig
from pccd_hpc.stage_config import flags_in_errors
from pccd_hpc.data.separation import PUSH_APART_FACTOR
from pccd_hpc.model.samplers import DDIM_STEPS, GUIDANCE_SCALE

log = logging.getLogger(__name__)

PREDICT_ARRAY_PARALLELISM = 64
"""Most predict array tasks running at once."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` and ``predict-task`` subcommands."""
    p = subparsers.add_parser(
        "predict",
        help="crystal structure prediction: k candidate structures for each formula (optionally relaxed and ranked)",
        description="For each formula, sample --k crystals with exactly its composition (the element channel is "
        "held at the formula's value while positions and lattice are sampled), write them as CIFs and "
        "compositions/<formula>/candidates.csv, and with --relax rank them by relaxed energy per atom "
        "(ranking.csv: best guess first). summary.csv lists every formula: done, refused (with the reason) or "
        "pending. Re-running the same command resumes: finished formulas are verified and skipped.",
    )
    p.add_argument("--composition", action="append", default=None, metavar="FORMULA",
                   help="a formula such as Sr2TiO4 (every number of formula units that fits 16 sites) or Sr4Ti2O8 "
                   "(that cell as written); repeatable")
    p.add_argument("--compositions", default=None, metavar="FILE", help="file with one formula per line (# comments)")
    p.add_argument("--k", type=int, default=20, help=f"candidates per formula (default 20, at most {MAX_CANDIDATES})")
    p.add_argument("--formula-units", type=int, default=None, metavar="Z",
                   help="formula units per cell for every formula (default: as written, or every Z that fits)")
    p.add_argument("--out", required=True, help="output folder (re-use it to resume)")
    p.add_argument("--relax", action="store_true", help="relax every candidate and rank by energy per atom")
    p.add_argument("--backend", default="chgnet", help="relaxation backend (default chgnet)")
    p.add_argument("--relax-steps", type=int, default=500, help="most optimizer steps per relaxation (default 500)")
    p.add_argument("--checkpoint", default=None, help="checkpoint file, step-N/ folder or run folder (default: "
                   "the bundled model)")
    p.add_argument("--steps", type=int, default=DDIM_STEPS, help=f"DDIM steps (default {DDIM_STEPS})")
    p.add_argument("--guidance", type=float, default=GUIDANCE_SCALE,
                   help=f"classifier-free guidance scale (default {GUIDANCE_SCALE:g})")
    p.add_argument("--push-apart-factor", type=float, default=PUSH_APART_FACTOR,
                   help=f"push atoms apart to this x the sum of covalent radii after decoding (default {PUSH_APART_FACTOR:g})")
    p.add_argument("--no-push-apart", action="store_true", help="keep the candidates exactly as sampled")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument("--cluster", choices=["local", "slurm"], default="local",
                   help="local: this process (default); slurm: a submitit array over the formulas")
    p.add_argument("--array-size", type=int, default=None,
                   help="array tasks the formulas are split over (default: 1 locally, one per 20 formulas on slurm)")
    add_array_task_flags(p)
    p.add_argument("--plan-only", action="store_true",
                   help="write predict.json and print the sbatch command for jobs/predict_array.sh; samples nothing")
    p.add_argument("--force-redo", action="store_true", help="replace a predict.json made with other settings")
    p.set_defaults(func=_run_predict)

    task = subparsers.add_parser("predict-task", help="run one task of an existing predict run (array jobs)")
    task.add_argument("--out", required=True, help="predict folder holding predict.json")
    task.add_argument("--task", type=int, required=True, help="task index (e.g. $SLURM_ARRAY_TASK_ID)")
    task.set_defaults(func=_run_task)


def read_formulas(given: list[str] | None, path: str | None) -> list[str]:
    """The formulas of --composition and --compositions FILE, in order (blank lines and # comments skipped)."""
    formulas = list(given or [])
    if path:
        source = checked_input_path(path, "--compositions")
        for line in source.read_text(errors="replace").splitlines():
            text = line.split("#", 1)[0].strip()
            if text:
                formulas.append(text)
    if not formulas:
        raise ValueError("give at least one formula: --composition Sr2TiO4 or --compositions FILE")
    return formulas


def _run_predict(args: argparse.Namespace) -> int:
    from pccd_hpc.sampling.checkpoint_sampler import default_checkpoint, load_model, pick_device
    from pccd_hpc.predict.stage import run_predict

    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {args.out} is an existing file, not a folder")
    formulas = read_formulas(args.composition, args.compositions)
    n_tasks = args.array_size or (1 if args.cluster == "local" else max(1, -(-len(formulas) // 20)))
    with flags_in_errors(PREDICT_FLAGS):
        PredictConfig(compositions=formulas, k=args.k, formula_units=args.formula_units, steps=args.steps,
                      guidance=args.guidance, seed=args.seed, relax_steps=args.relax_steps, n_tasks=n_tasks)
        slurm = array_task_resources(args, PREDICT_ARRAY_PARALLELISM, signal=args.time * 60 > SlurmResources.signal_delay_s)
    checkpoint = checked_input_path(args.checkpoint, "--checkpoint") if args.checkpoint else default_checkpoint()
    loaded = load_model(checkpoint, pick_device())
    with flags_in_errors(PREDICT_FLAGS):
        config = PredictConfig(
            compositions=formulas, k=args.k, formula_units=args.formula_units, steps=args.steps,
            guidance=args.guidance, push_apart_factor=None if args.no_push_apart else args.push_apart_factor,
            seed=args.seed, relax=args.relax, backend=args.backend, relax_steps=args.relax_steps, n_tasks=n_tasks,
            checkpoint=str(loaded.path or checkpoint), checkpoint_sha256=loaded.sha256, codec=loaded.codec.to_dict())
    if args.plan_only:
        from pccd_hpc.folder_lock import folder_lock
        from pccd_hpc.io_utils import checked_output_dir
        from pccd_hpc.predict.stage import write_plan

        folder = checked_output_dir(out, "--out")
        with folder_lock(folder, f"predict --plan-only --out {folder}"):
            write_plan(folder, config, args.force_redo)
        print(f"{folder}/predict.json: {len(formulas)} formula(s) over {n_tasks} task(s)\n"
              f"  submit:  sbatch --array=0-{n_tasks - 1} jobs/predict_array.sh {folder}\n"
              f"  then merge (summary.csv): re-run this command without --plan-only")
        return 0
    on_slurm = args.cluster == "slurm"
    rows = run_predict(config, out, slurm if on_slurm else None, loaded=None if on_slurm else loaded,
                       force_redo=args.force_redo, wait=not args.no_wait)
    if rows is None:
        return 0
    for row in rows:
        best = f", best {row['best_id']} ({row['best_energy_ev_per_atom']} eV/atom)" if row.get("best_id") else ""
        print(f"{row['formula']}: {row['status']}" + (f": {row['reason']}" if row.get("reason") else best))
    refused = [r for r in rows if r["status"] != "done"]
    return 1 if refused else 0


def _run_task(args: argparse.Namespace) -> int:
    from pccd_hpc.predict.stage import run_predict_task

    run_predict_task(args.out, args.task)
    return 0
