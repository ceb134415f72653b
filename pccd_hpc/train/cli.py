"""``python -m pccd_hpc.launch train``: build the run config and train here, on K local processes, or on SLURM.

* ``--cluster local`` (default): one process, or ``--nproc K`` processes on this host joined with gloo
  (NCCL on GPUs). Under ``srun`` or ``torchrun`` each started process reads its rank from the
  environment, which is how ``slurm/train.sh`` runs it.
* ``--cluster slurm``: submit through submitit (``--nodes``, ``--gpus-per-node``/``--tasks-per-node``,
  ``--partition``, ``--time``); the job requeues itself at the time limit and resumes from the newest complete checkpoint.

Re-running the same command on the same ``--out`` resumes from its last checkpoint.
"""

from __future__ import annotations

from pccd_hpc.cluster.slurm import TIME_HELP, SlurmResources, time_limit_arg

import argparse
import logging
from pathlib import Path
from typing import Any

from pccd_hpc.config import PRESETS, RunConfig, resolve_config
from pccd_hpc.io_utils import checked_input_path

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add the ``train`` subcommand."""
    p = subparsers.add_parser("train", help="train the diffusion model (local, multi-process, or SLURM)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="folder of encoded HDF5 shards (from `encode`)")
    p.add_argument("--out", required=True, help="run folder (config, metrics.jsonl, checkpoints/)")
    p.add_argument("--preset", default="cpu", choices=sorted(PRESETS), help="starting configuration (default cpu)")
    p.add_argument("--config", help="TOML file overriding preset fields ([model], [diffusion], [train] tables)")
    p.add_argument("--max-steps", type=int, help="optimizer steps (overrides the config)")
    p.add_argument("--batch-size", type=int, help="global batch size (overrides the config)")
    p.add_argument("--seed", type=int, help="seed (overrides the config)")
    p.add_argument("--init-from", help="start a fresh run from this checkpoint's weights (fine-tuning; "
                   "run folder, step-N/ folder or exported .pt such as the bundled model)")
    p.add_argument("--cluster", choices=["local", "slurm"], default="local", help="run here or submit to SLURM")
    p.add_argument("--nproc", type=int, default=1, help="local processes (gloo on CPU) for --cluster local")
    p.add_argument("--nodes", type=int, default=1, help="SLURM nodes")
    p.add_argument("--gpus-per-node", type=int, default=0, help="GPUs per node (one process per GPU)")
    p.add_argument("--tasks-per-node", type=int, help="processes per node (default: GPUs per node, or 1)")
    p.add_argument("--cpus-per-task", type=int, default=1, help="CPU cores per process")
    p.add_argument("--partition", help="SLURM partition")
    p.add_argument("--time", type=time_limit_arg, default="60",
                   help=TIME_HELP.format(what="job (requeued after)", default="60 minutes"))
    p.add_argument("--signal-delay-s", type=int, default=90, help="seconds before the limit to checkpoint/requeue")
    p.add_argument("--wait", action="store_true", help="with --cluster slurm, block until the job ends")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Preset, TOML file, then the explicit command-line overrides."""
    train: dict[str, Any] = {}
    for name in ("max_steps", "batch_size", "seed"):
        if getattr(args, name, None) is not None:
            train[name] = getattr(args, name)
    if getattr(args, "init_from", None):
        train["init_from"] = str(checked_input_path(args.init_from, "checkpoint to start from"))
    return resolve_config(args.preset, args.config, {"train": train} if train else None)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``train``; returns the exit code."""
    config = config_from_args(args)
    data_dir = checked_input_path(args.data, "data folder")
    run_dir = Path(args.out).expanduser().resolve()
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"--out {args.out} is an existing file, not a run folder")
    if not 0 <= config.train.seed < 2**63:
        raise ValueError(f"--seed must be in [0, 2**63 - 1], got {config.train.seed}")
    if args.cluster == "slurm":
        from pccd_hpc.train.job import submit_training  # submitit is only needed here

        slurm = SlurmResources(partition=args.partition, nodes=args.nodes, gpus_per_node=args.gpus_per_node,
                               tasks_per_node=args.tasks_per_node or max(args.gpus_per_node, 1),
                               cpus_per_task=args.cpus_per_task, time_min=args.time, signal_delay_s=args.signal_delay_s)
        job = submit_training(config, data_dir, run_dir, slurm)
        print(job.job_id)
        if args.wait:
            result = job.result()
            log.info("job %s finished: %s", job.job_id, result)
        return 0
    if args.nproc > 1:
        from pccd_hpc.train.spawn import train_multiprocess

        train_multiprocess(config, data_dir, run_dir, args.nproc)
        return 0
    from pccd_hpc.train.distributed import destroy_process_group
    from pccd_hpc.train.loop import train

    try:
        result = train(config, data_dir, run_dir)  # under srun/torchrun the rank comes from the environment
    finally:
        destroy_process_group()
    log.info("finished at step %d, loss %.5f (%d non-finite steps skipped)", result.step, result.loss,
             result.skipped_nonfinite)
    return 0
