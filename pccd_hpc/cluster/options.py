"""Where a stage's array tasks run: this process, or a SLURM array submitted with submitit (generate, predict)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from pccd_hpc.cluster.slurm import TIME_HELP, SlurmResources, time_limit_arg
from pccd_hpc.stage_config import require


@dataclass
class ClusterOptions:
    """Where tasks run: ``local`` (this process) or ``slurm`` (a submitit array)."""

    cluster: str = "local"
    """``local`` or ``slurm``."""
    partition: str | None = None
    """SLURM partition (None: the default one)."""
    gpus_per_task: int = 0
    cpus_per_task: int = 1
    time_min: int = 60
    """Wall-clock limit of each array task in minutes."""
    array_parallelism: int = 64
    """Most array tasks running at once."""
    wait: bool = True
    """Block until the array has finished, then merge; else return at once (re-run to merge)."""
    extra: dict = field(default_factory=dict)
    """Further submitit parameters, passed through."""

    def __post_init__(self) -> None:
        require(self.cluster in ("local", "slurm"), "cluster", f"must be 'local' or 'slurm', got {self.cluster!r}")
        require(self.gpus_per_task >= 0, "gpus_per_task", f"must be >= 0, got {self.gpus_per_task}")
        require(self.cpus_per_task >= 1, "cpus_per_task", f"must be >= 1, got {self.cpus_per_task}")
        require(self.time_min >= 1, "time_min", f"must be >= 1, got {self.time_min}")
        require(self.array_parallelism >= 1, "array_parallelism", f"must be >= 1, got {self.array_parallelism}")

    def resources(self, job_name: str) -> SlurmResources:
        """What each array task asks SLURM for, under the job name ``job_name``."""
        return SlurmResources(partition=self.partition, nodes=1, tasks_per_node=1, gpus_per_node=self.gpus_per_task,
                              cpus_per_task=self.cpus_per_task, time_min=self.time_min,
                              array_parallelism=self.array_parallelism, extra={"name": job_name, **self.extra})


def add_array_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of where array tasks run: --partition, --gpus-per-task, --cpus-per-task, --time, --no-wait."""
    parser.add_argument("--partition", default=None, help="SLURM partition (default: the cluster's default)")
    parser.add_argument("--gpus-per-task", type=int, default=0, help="GPUs per array task (default 0)")
    parser.add_argument("--cpus-per-task", type=int, default=2, help="CPU cores per array task (default 2)")
    parser.add_argument("--time", type=time_limit_arg, default="60",
                        help=TIME_HELP.format(what="array task", default="60 minutes"))
    parser.add_argument("--no-wait", action="store_true", help="submit and return (re-run the command to merge)")


def cluster_options(args: argparse.Namespace) -> ClusterOptions:
    """The ClusterOptions of parsed ``--cluster`` and :func:`add_array_flags` flags."""
    return ClusterOptions(cluster=args.cluster, partition=args.partition, gpus_per_task=args.gpus_per_task,
                          cpus_per_task=args.cpus_per_task, time_min=args.time, wait=not args.no_wait)
