"""Merge finished task shards into ``summary.json``: counts, rejection reasons, compositions, speed.

Speed figures (``elapsed_s``, ``samples_per_s``) are those of the run that sampled: a re-run that
finds every task done keeps the previous figures instead of dividing by a zero-second run.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import logging

import h5py
import numpy as np
from pymatgen.core import Composition, Element

from pccd_hpc.data.shards import shard_name
from pccd_hpc.data.geometry import PLAUSIBLE_BOND_FACTOR
from pccd_hpc.generate.plan import GeneratePlan
from pccd_hpc.generate.table import write_run_table
from pccd_hpc.io_utils import atomic_write_json, read_json

log = logging.getLogger(__name__)

SUMMARY_NAME = "summary.json"


def _text(values: np.ndarray) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def summarise(out_dir: str | Path, plan: GeneratePlan, elapsed_s: float | None = None, n_sampled: int | None = None) -> dict:
    """Read every verified task shard of ``out_dir`` and write ``summary.json``; return it.

    ``elapsed_s`` and ``n_sampled`` describe this run's work; with no work done (None or 0 samples)
    the speed figures of the run that did it are kept. Raises ``FileNotFoundError`` naming the
    tasks whose files are missing or fail verification, ``RuntimeError`` naming an unreadable shard.
    """
    from pccd_hpc.generate.tasks import read_task_summary, task_problem

    out_dir = Path(out_dir)
    problems = {k: p for k in range(plan.n_tasks) if (p := task_problem(out_dir, k)) is not None}
    if problems:
        listed = "; ".join(f"task {k}: {p}" for k, p in list(problems.items())[:20])
        raise FileNotFoundError(f"tasks not finished or not verified ({len(problems)}): {listed}{' ...' if len(problems) > 20 else ''}")
    n_generated = n_valid = 0
    n_plausible: int | None = 0  # None once a shard predates the plausibility flag
    n_plausible_sampled: int | None = 0  # the same before the push-apart; None once a shard predates it
    n_valid_sampled: int | None = 0
    reasons: Counter = Counter()
    per_system: Counter = Counter()
    compositions: set[str] = set()
    indices: list[np.ndarray] = []
    tasks_elapsed = 0.0
    for k in range(plan.n_tasks):
        path = out_dir / shard_name(k)
        try:
            with h5py.File(path, "r") as h5:
                valid = h5["valid"][:]
                plausible = h5["plausible"][:] if "plausible" in h5 else None
                plausible_sampled = h5["plausible_sampled"][:] if "plausible_sampled" in h5 else None
                valid_sampled = h5["valid_sampled"][:] if "valid_sampled" in h5 else None
                reason = _text(h5["reason"][:])
                z = h5["atomic_numbers"][:]
                indices.append(h5["input_index"][:])
                systems = _text(h5["system"][:])
        except (OSError, KeyError, ValueError) as err:
            raise RuntimeError(f"{path}: unreadable generation shard ({type(err).__name__}: {err}); delete it and re-run generate") from err
        task_summary = read_task_summary(out_dir, k)
        if task_summary.get("n_valid") != int(valid.sum()) or task_summary.get("n_cif_blocks") != int(valid.sum()):
            raise RuntimeError(f"{path}: {int(valid.sum())} valid samples but its task summary records "
                               f"{task_summary.get('n_valid')} valid and {task_summary.get('n_cif_blocks')} CIF blocks")
        tasks_elapsed += float(task_summary.get("elapsed_s") or 0.0)
        n_generated += len(valid)
        n_valid += int(valid.sum())
        n_plausible = None if plausible is None or n_plausible is None else n_plausible + int(plausible.sum())
        n_plausible_sampled = _add(n_plausible_sampled, plausible_sampled)
        n_valid_sampled = _add(n_valid_sampled, valid_sampled)
        reasons.update(r for r, ok in zip(reason, valid) if not ok)
        for row, ok, system in zip(z, valid, systems):
            per_system[(system, bool(ok))] += 1
            if ok:
                counts = Counter(Element.from_Z(int(a)).symbol for a in row if a > 0)
                compositions.add(Composition(counts).reduced_formula)
    all_indices = np.concatenate(indices) if indices else np.zeros(0)
    if len(np.unique(all_indices)) != len(all_indices):
        raise RuntimeError(f"{out_dir}: duplicated sample indices across shards")
    systems_seen = sorted({s for s, _ in per_system})
    summary = {
        "n_requested": plan.n,
        "n_generated": n_generated,
        "n_valid": n_valid,
        "valid_fraction": n_valid / max(n_generated, 1),
        # valid AND every bond >= 0.7 x the sum of covalent radii (pccd_hpc.data.geometry); the 0.5 A rule
        # behind "valid" accepts atoms at a third of a bond length
        "n_plausible": n_plausible,
        "plausible_fraction": None if n_plausible is None else n_plausible / max(n_generated, 1),
        "plausible_bond_factor": PLAUSIBLE_BOND_FACTOR,
        # the model's own output: the same counts before the push-apart moved any atom
        "n_valid_as_sampled": n_valid_sampled,
        "n_plausible_as_sampled": n_plausible_sampled,
        "plausible_fraction_as_sampled": None if n_plausible_sampled is None else n_plausible_sampled / max(n_generated, 1),
        "push_apart_factor": plan.push_apart_factor,
        "rejection_reasons": dict(sorted(reasons.items())),
        "n_unique_compositions": len(compositions),
        "n_systems": len(plan.systems),
        "valid_per_system": {s: per_system[(s, True)] for s in systems_seen[:200]},
        "sampler": plan.sampler,
        "steps": plan.steps if plan.sampler == "ddim" else None,
        "guidance": plan.guidance,
        "seed": plan.seed,
        "checkpoint_sha256": plan.checkpoint_sha256,
        "n_tasks": plan.n_tasks,
    }
    summary["tasks_elapsed_s"] = round(tasks_elapsed, 2)  # summed over tasks (array tasks run in parallel)
    summary["samples_per_task_s"] = round(n_generated / tasks_elapsed, 3) if tasks_elapsed > 0 else None
    if elapsed_s is not None and (n_sampled if n_sampled is not None else n_generated) > 0:
        n_run = n_sampled if n_sampled is not None else n_generated
        summary["elapsed_s"] = round(elapsed_s, 2)
        summary["n_sampled_in_run"] = n_run
        summary["samples_per_s"] = round(n_run / max(elapsed_s, 1e-9), 3)
    else:
        previous = _previous_summary(out_dir / SUMMARY_NAME)
        for key in ("elapsed_s", "n_sampled_in_run", "samples_per_s"):
            if previous.get(key) is not None:
                summary[key] = previous[key]
        if "samples_per_s" not in summary:  # no earlier figures: none can be claimed
            summary["elapsed_s"] = summary["samples_per_s"] = None
    summary.update(write_run_table(out_dir, plan))  # structures.csv, structures.extxyz, cifs/: what a user opens first
    atomic_write_json(out_dir / SUMMARY_NAME, summary)
    return summary


def _add(total: int | None, flags: np.ndarray | None) -> int | None:
    """A running count of True flags; None once a shard lacks the flags (it predates them)."""
    return None if total is None or flags is None else total + int(flags.sum())


def _previous_summary(path: Path) -> dict:
    try:
        return read_json(path, "generation summary")
    except (OSError, ValueError):
        return {}
