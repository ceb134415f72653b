"""What ``generate --plan-only`` tells a user: the tasks, the sbatch command that runs them, and how long they will take."""

from __future__ import annotations

import shlex
from dataclasses import replace
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from pccd_hpc.cluster.slurm import SlurmResources, array_command
from pccd_hpc.generate.plan import GeneratePlan
from pccd_hpc.generate.tasks import load_sampler
from pccd_hpc.progress import format_duration

if TYPE_CHECKING:
    from pccd_hpc.sampling.checkpoint_sampler import LoadedModel

ARRAY_SCRIPT = Path(__file__).resolve().parents[1] / "jobs" / "generate_array.sh"
"""The sbatch array script shipped with the package (one generation task per array element)."""
SPEED_PROBE_SAMPLES = 4
"""Samples drawn once to measure the model's speed for the estimate."""


def measure_seconds_per_sample(loaded: LoadedModel, plan: GeneratePlan) -> tuple[float, str]:
    """Seconds per sample of ``plan``'s sampler, measured here on a small batch; and where it was measured."""
    sampler = load_sampler(plan, loaded)
    n = min(SPEED_PROBE_SAMPLES, plan.n)
    element_z = torch.tensor([plan.system_of(i) for i in range(n)], dtype=torch.int64)
    started = time.perf_counter()
    sampler.sample(element_z, plan.band_gap_class, torch.Generator().manual_seed(plan.seed))
    return (time.perf_counter() - started) / n, f"{n} samples on this machine's {sampler.device}"


def describe_plan(out_dir: Path, plan: GeneratePlan, slurm: SlurmResources,
                  seconds_per_sample: float | None, measured_on: str = "") -> str:
    """The lines ``--plan-only`` prints: tasks, the command to submit, the merge step and a time estimate."""
    sampler = f"DDIM {plan.steps} steps" if plan.sampler == "ddim" else "DDPM (every step)"
    lines = [f"plan written: {out_dir / 'plan.json'}",
             f"  {plan.n} samples of {len(plan.systems)} chemical system(s) in {plan.n_tasks} task(s) of up to "
             f"{plan.chunk} samples ({sampler}, batches of {plan.batch_size})"]
    if plan.n_tasks == 1 and plan.n > 1000:
        lines.append(f"  one task does all {plan.n} samples: --array-size K splits them into K array tasks")
    # no pre-timeout signal: the plain script does not catch it, and a task cut off resumes from its batches
    command = array_command(ARRAY_SCRIPT, [str(out_dir)], replace(slurm, signal_delay_s=0), plan.n_tasks)
    lines.append("  submit:  " + shlex.join(command))
    lines.append("  then merge (tables, CIFs, pictures, summary.json): re-run this command without --plan-only")
    if seconds_per_sample is not None:
        per_task = seconds_per_sample * plan.chunk
        lines.append(f"  estimate: {seconds_per_sample:.3g} s per sample ({measured_on}), so about "
                     f"{format_duration(per_task)} per task and {format_duration(per_task * plan.n_tasks)} of task time "
                     "in all; a GPU task is usually much faster than a CPU measurement")
        if per_task > 60 * slurm.time_min:
            lines.append(f"  warning: a task may need longer than --time {slurm.time_min} min: raise --time or "
                         "--array-size (a task cut off resumes from its finished batches when submitted again)")
    return "\n".join(lines)
