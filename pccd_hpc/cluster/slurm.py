"""Every SLURM interaction of pccd_hpc: sbatch, sacct/squeue job states, submitit executors.

Commands are run with argument lists (never a shell) and the submitting environment, so a job
inherits PATH and finds the same Python (sbatch's default ``--export=ALL``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from pccd_hpc.stage_config import require

if TYPE_CHECKING:
    import submitit

log = logging.getLogger(__name__)

#: States after which a job (or array task) will not run again without a user action.
TERMINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
    }
)


class SlurmError(RuntimeError):
    """A SLURM command failed; the message carries the command and its stderr."""


@dataclass
class SlurmResources:
    """What one job (or each array task) asks SLURM for: the one spelling of SLURM resources in the package
    (train, generate, validate and followup all submit with it)."""

    partition: str | None = None
    """Partition name; None lets SLURM pick the default partition."""
    nodes: int = 1
    """Number of nodes."""
    tasks_per_node: int = 1
    """Tasks (processes, e.g. one per GPU) started on each node."""
    gpus_per_node: int = 0
    """GPUs per node; 0 requests none."""
    cpus_per_task: int = 1
    """CPUs per task."""
    time_min: int = 60
    """Wall-clock limit in minutes."""
    signal_delay_s: int = 120
    """Seconds before the time limit at which SLURM sends USR2 so the job can checkpoint."""
    array_parallelism: int = 256
    """Most array tasks running at once."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Further submitit parameters (e.g. ``{"slurm_mem_per_cpu": "1G"}``), passed through."""

    def __post_init__(self) -> None:
        require(self.partition is None or bool(self.partition.strip()), "partition", "must be None or a non-empty name")
        for name in ("nodes", "tasks_per_node", "cpus_per_task", "time_min", "array_parallelism"):
            value = getattr(self, name)
            require(isinstance(value, int) and value >= 1, name, f"must be an integer >= 1, got {value!r}")
        for name in ("gpus_per_node", "signal_delay_s"):
            value = getattr(self, name)
            require(isinstance(value, int) and value >= 0, name, f"must be an integer >= 0, got {value!r}")
        require(self.signal_delay_s < self.time_min * 60, "signal_delay_s",
                f"({self.signal_delay_s}) must be shorter than time_min ({self.time_min} min)")

    def sbatch_options(self, shape: bool = True) -> list[str]:
        """These resources as sbatch command-line options; ``shape=False`` leaves nodes, tasks, CPUs and
        GPUs to the job script's own ``#SBATCH`` lines (time, partition and signal only)."""
        options = []
        if shape:
            options += [f"--nodes={self.nodes}", f"--ntasks-per-node={self.tasks_per_node}",
                        f"--cpus-per-task={self.cpus_per_task}"]
            if self.gpus_per_node:
                options.append(f"--gpus-per-node={self.gpus_per_node}")
        options.append(f"--time={self.time_min}")
        if self.signal_delay_s:
            options.append(f"--signal=USR2@{self.signal_delay_s}")
        if self.partition is not None:
            options.append(f"--partition={self.partition}")
        return options


def _run(cmd: Sequence[str], env: Mapping[str, str] | None = None, timeout_s: float = 60.0) -> str:
    """Run a SLURM client command and return its stdout; raise SlurmError when it fails."""
    try:
        proc = subprocess.run(
            list(cmd), capture_output=True, text=True, env=None if env is None else dict(env), timeout=timeout_s
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SlurmError(f"{cmd[0]} could not run: {exc}") from exc
    if proc.returncode != 0:
        raise SlurmError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def slurm_available() -> bool:
    """True when sbatch exists and the controller answers ``sinfo``."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return False
    try:
        _run(["sinfo", "-h", "-o", "%P"], timeout_s=15.0)
    except SlurmError:
        return False
    return True


def sbatch(
    script: Path,
    args: Sequence[str] = (),
    sbatch_options: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> int:
    """Submit ``script`` with ``args`` and return the job id.

    ``env`` is merged over ``os.environ`` for the sbatch process; with sbatch's default
    ``--export=ALL`` the job sees the same variables.
    """
    cmd = ["sbatch", "--parsable", *sbatch_options, str(script), *args]
    full_env = None if env is None else {**os.environ, **env}
    out = _run(cmd, env=full_env).strip()
    # --parsable prints "jobid" or "jobid;cluster".
    job_id = int(out.splitlines()[-1].split(";")[0])
    log.info("submitted %s as job %d", script, job_id)
    return job_id


def submit_script(
    script: Path,
    args: Sequence[str],
    resources: SlurmResources,
    *,
    name: str,
    log_file: str | Path,
    array_size: int | None = None,
    after: int | None = None,
    script_shape: bool = False,
    env: Mapping[str, str] | None = None,
) -> int:
    """Submit a job script with ``resources`` (an array of ``array_size`` tasks when given, starting after job
    ``after`` has ended when given); its log goes to ``log_file`` (may hold %j, %A, %a); return the job id.

    ``script_shape`` keeps the script's own node/task/CPU lines (e.g. an MPI code's) instead of ``resources``'.
    """
    options = [*resources.sbatch_options(shape=not script_shape), f"--job-name={name}", f"--output={log_file}"]
    if array_size is not None:
        limit = f"%{resources.array_parallelism}" if array_size > resources.array_parallelism else ""
        options.append(f"--array=0-{array_size - 1}{limit}")
    if after is not None:
        options.append(f"--dependency=afterany:{after}")
    return sbatch(script, args, options, env)


def array_command(script: Path, args: Sequence[str], resources: SlurmResources, array_size: int) -> list[str]:
    """The ``sbatch`` command (an argument list) that runs ``script`` as an array of ``array_size`` tasks with ``resources``,
    for a user to read or run by hand."""
    limit = f"%{resources.array_parallelism}" if array_size > resources.array_parallelism else ""
    return ["sbatch", f"--array=0-{array_size - 1}{limit}", *resources.sbatch_options(), str(script), *args]


def parse_time_min(text: str | int) -> int:
    """A SLURM time limit (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``) in whole minutes, rounded up."""
    value = str(text).strip()
    try:
        if value.startswith("-"):
            raise ValueError(value)
        days, _, clock = value.rpartition("-")
        parts = [int(p) for p in clock.split(":")]
        if len(parts) > 3:
            raise ValueError(value)
        if days:
            hours, minutes, seconds = (parts + [0, 0])[:3]
        elif len(parts) == 3:
            hours, minutes, seconds = parts
        else:
            hours, (minutes, seconds) = 0, (parts + [0])[:2]
        total_s = ((int(days or 0) * 24 + hours) * 60 + minutes) * 60 + seconds
    except ValueError:
        raise ValueError(f"not a SLURM time limit: {text!r} (use minutes or [D-]HH:MM:SS)") from None
    if total_s <= 0:
        raise ValueError(f"SLURM time limit must be positive, got {text!r}")
    return -(-total_s // 60)


def time_limit_arg(text: str) -> int:
    """The argparse type of every ``--time`` option: minutes or ``[D-]HH:MM:SS``, returned in whole minutes."""
    import argparse

    try:
        return parse_time_min(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


TIME_HELP = "SLURM time limit per {what}: minutes (90) or [D-]HH:MM:SS (01:30:00, 1-00:00:00); default {default}"
"""Help text of every ``--time`` option (format with ``what`` and ``default``)."""


ARRAY_TASK_FLAGS = {"partition": "--partition", "gpus_per_node": "--gpus-per-task", "cpus_per_task": "--cpus-per-task",
                    "time_min": "--time"}
"""The :class:`SlurmResources` fields that :func:`add_array_task_flags` sets, and the flag of each (for error messages)."""


def add_array_task_flags(parser: Any, default_time: str = "60") -> None:
    """The flags of a stage that runs as a SLURM array: ``--partition``, ``--gpus-per-task``, ``--cpus-per-task``,
    ``--time`` and ``--no-wait`` (argparse ``parser``)."""
    parser.add_argument("--partition", default=None, help="SLURM partition (default: the cluster's default)")
    parser.add_argument("--gpus-per-task", type=int, default=0, help="GPUs per array task (default 0)")
    parser.add_argument("--cpus-per-task", type=int, default=2, help="CPU cores per array task (default 2)")
    parser.add_argument("--time", type=time_limit_arg, default=default_time,
                        help=TIME_HELP.format(what="array task", default=f"{default_time} minutes"))
    parser.add_argument("--no-wait", action="store_true", help="submit and return (re-run the command to merge)")


def array_task_resources(args: Any, array_parallelism: int, signal: bool) -> SlurmResources:
    """The resources that :func:`add_array_task_flags`' flags in ``args`` ask for; ``signal`` asks for SLURM's
    warning signal before the time limit (only a submitted task needs it)."""
    return SlurmResources(partition=args.partition, gpus_per_node=args.gpus_per_task, cpus_per_task=args.cpus_per_task,
                          time_min=args.time, array_parallelism=array_parallelism,
                          signal_delay_s=SlurmResources.signal_delay_s if signal else 0)


def _parse_states(text: str) -> dict[str, str]:
    """``ID|STATE`` lines to a dict; "CANCELLED by 0" becomes "CANCELLED"."""
    states: dict[str, str] = {}
    for line in text.splitlines():
        if "|" not in line:
            continue
        key, state = line.split("|", 1)
        key, state = key.strip(), state.strip()
        if key:
            states[key] = state.split()[0] if state else "UNKNOWN"
    return states


def job_states(job_id: int | str) -> dict[str, str]:
    """Accounting state of a job from sacct: ``{"123": "COMPLETED"}`` or ``{"123_0": ..., ...}``.

    Array tasks appear as ``ID_K``; tasks not started yet as one ``ID_[a-b]`` entry. Empty when
    the accounting database has not heard of the job yet (it lags submission slightly).
    """
    out = _run(["sacct", "-X", "-n", "-P", "-j", str(job_id), "--format=JobID,State"])
    return _parse_states(out)


def _live_states(job_id: int | str) -> dict[str, str]:
    """The job's tasks as slurmctld holds them now, finished ones included (squeue); empty once
    slurmctld has forgotten the job (MinJobAge after it ended)."""
    try:
        out = _run(["squeue", "-h", "-r", "--states=all", "-j", str(job_id), "-o", "%i|%T"])
    except SlurmError:  # "Invalid job id" once the job has left slurmctld's memory
        return {}
    return _parse_states(out)


def _finished(live: Mapping[str, str], recorded: Mapping[str, str]) -> bool:
    """Whether slurmctld (``live``) and the accounting database (``recorded``) agree it is over."""
    if any(state not in TERMINAL_STATES for state in live.values()):
        return False  # running, pending, or being requeued after preemption/node failure
    if not recorded or any(state not in TERMINAL_STATES for state in recorded.values()):
        return False
    # sacct lags slurmctld: a finished array may first appear as one bare "ID" record, or with
    # only some of its tasks. Tasks never started are one "ID_[a-b]" record there.
    if any("_" in key for key in live) and any("_" not in key for key in recorded):
        return False
    has_range = any("_[" in key for key in recorded)
    return all(key in recorded or has_range for key in live)


def wait_for_job(job_id: int | str, timeout_s: float = 600.0, poll_s: float = 1.0) -> dict[str, str]:
    """Wait until every task of ``job_id`` is in a terminal state; return ``job_states(job_id)``.

    slurmctld (squeue) is asked first, because sacct lags it and may show a task as PREEMPTED or
    REQUEUED just before it is requeued; the job counts as finished once both agree. Raises
    TimeoutError after ``timeout_s`` seconds.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        live = _live_states(job_id)
        recorded = job_states(job_id)
        if _finished(live, recorded):
            log.info("job %s finished: %s", job_id, recorded)
            return recorded
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} not finished after {timeout_s} s: squeue {live}, sacct {recorded}")
        time.sleep(poll_s)


def make_submitit_executor(
    folder: Path,
    *,
    partition: str | None = None,
    nodes: int = 1,
    tasks_per_node: int = 1,
    gpus_per_node: int = 0,
    cpus_per_task: int = 1,
    time_min: int = 60,
    signal_delay_s: int = 120,
    array_parallelism: int = 256,
    extra: Mapping[str, Any] | None = None,
) -> submitit.AutoExecutor:
    """A submitit executor for SLURM with these resources (validated by SlurmResources).

    ``folder`` holds submitit's pickles and logs (may contain ``%j``); ``extra`` passes further
    submitit parameters through unchanged (e.g. ``slurm_setup``, ``slurm_mem_per_cpu``).
    """
    resources = SlurmResources(
        partition=partition,
        nodes=nodes,
        tasks_per_node=tasks_per_node,
        gpus_per_node=gpus_per_node,
        cpus_per_task=cpus_per_task,
        time_min=time_min,
        signal_delay_s=signal_delay_s,
        array_parallelism=array_parallelism,
        extra=dict(extra or {}),
    )
    return executor_for(folder, resources)


def executor_for(folder: Path, resources: SlurmResources) -> submitit.AutoExecutor:
    """A submitit executor (cluster="slurm") asking for ``resources``."""
    import submitit  # imported here so that describing resources does not need it

    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    params: dict[str, Any] = {
        "nodes": resources.nodes,
        "tasks_per_node": resources.tasks_per_node,
        "cpus_per_task": resources.cpus_per_task,
        "timeout_min": resources.time_min,
        "slurm_signal_delay_s": resources.signal_delay_s,
        "slurm_array_parallelism": resources.array_parallelism,
    }
    if resources.partition is not None:
        params["slurm_partition"] = resources.partition
    if resources.gpus_per_node:
        params["gpus_per_node"] = resources.gpus_per_node
    params.update(resources.extra)
    executor.update_parameters(**params)
    return executor


@dataclass(frozen=True)
class ChainJob:
    """One job of a dependency chain (``submit_chain``); dependencies name earlier jobs of the chain."""

    name: str
    """Unique name within the chain (also used in ``--job-name``)."""
    script: Path
    """Job script passed to sbatch."""
    args: tuple[str, ...] = ()
    """Arguments after the script."""
    sbatch_options: tuple[str, ...] = ()
    """Further sbatch options (``--array=...``, ``--time=...``, ``--output=...``)."""
    after_ok: tuple[str, ...] = ()
    """Start only after these jobs all completed successfully."""
    after_any: tuple[str, ...] = ()
    """Start after these jobs ended, whatever their state (collect/finalize jobs)."""


def submit_chain(jobs: Sequence[ChainJob], env: Mapping[str, str] | None = None) -> dict[str, int]:
    """Submit ``jobs`` in order with ``--dependency`` from their ``after_ok``/``after_any`` names; return name -> job id.

    ``--kill-on-invalid-dep=yes`` makes SLURM cancel a job whose ``afterok`` can never be met (an
    upstream step failed) instead of leaving it pending forever; ``afterany`` jobs still run. If a
    submission fails, the jobs already submitted are cancelled and ``SlurmError`` is raised.
    """
    ids: dict[str, int] = {}
    try:
        for job in jobs:
            if job.name in ids:
                raise ValueError(f"duplicate chain job name {job.name!r}")
            unknown = [n for n in (*job.after_ok, *job.after_any) if n not in ids]
            if unknown:
                raise ValueError(f"chain job {job.name!r} depends on {unknown}, not submitted before it")
            deps = [f"afterok:{':'.join(str(ids[n]) for n in job.after_ok)}"] if job.after_ok else []
            deps += [f"afterany:{':'.join(str(ids[n]) for n in job.after_any)}"] if job.after_any else []
            options = [*job.sbatch_options]
            if deps:
                options += [f"--dependency={','.join(deps)}", "--kill-on-invalid-dep=yes"]
            ids[job.name] = sbatch(job.script, job.args, options, env=env)
    except (SlurmError, ValueError):
        if ids:
            with contextlib.suppress(SlurmError):
                _run(["scancel", *(str(i) for i in ids.values())])
        raise
    return ids
