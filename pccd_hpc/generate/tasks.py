"""One generation task: sample its batches (each saved atomically), decode, write its shard.

Layout inside the run folder ``DIR``::

    plan.json                      the plan every task reads
    parts/task-KKKKK/batch-BBBBB.npz  raw tensors of finished batches (removed once the shard exists)
    shard-KKKKK.h5                 the task's samples: tensors, decoded structures, valid/reason
    shard-KKKKK.cif                every valid structure of the task, one CIF data block each
    shard-KKKKK.json               the task's summary, written last: counts, timings, sha256 of both files
    cifs/<id>.cif                  one CIF per valid structure, with its space group (:mod:`pccd_hpc.generate.table`)

A task is done when its summary exists and both files still match its sha256 (as encode verifies
its shards); a task whose files were truncated or changed is done again (its seeds are fixed, so
it produces the same samples). A killed task resumes at its first missing batch, so it loses at
most the batch it was sampling.
"""

from __future__ import annotations

import contextlib
import io
import math
import logging
import time
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch
from pymatgen.core import Structure
from pymatgen.io.cif import CifWriter

from pccd_hpc.data.codec import CodecConfig
from pccd_hpc.data.geometry import PLAUSIBLE_BOND_FACTOR
from pccd_hpc.data.separation import decode_separated
from pccd_hpc.data.shards import ShardRecord, shard_name, write_shard
from pccd_hpc.data.symmetry import SpaceGroup, space_group
from pccd_hpc.generate.plan import GeneratePlan, read_plan
from pccd_hpc.generate.systems import system_label
from pccd_hpc.folder_lock import task_lock
from pccd_hpc.generate.table import write_structure_cifs
from pccd_hpc.progress import Progress
from pccd_hpc.sampling.checkpoint_sampler import CheckpointSampler, LoadedModel, load_model, pick_device
from pccd_hpc.io_utils import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json, remove_stale_temps, sha256_file

log = logging.getLogger(__name__)


class TensorSampler(Protocol):
    """What a task needs from a model: tensors in codec space for requested element slots."""

    def sample(self, element_z: torch.Tensor, band_gap_class: int | None, generator: torch.Generator) -> torch.Tensor:
        """Return (B, 3, 128, 3) float tensors for ``element_z`` (B, 3)."""
        ...


SamplerFactory = Callable[[GeneratePlan], TensorSampler]


def load_sampler(plan: GeneratePlan, loaded: LoadedModel | None = None) -> CheckpointSampler:
    """Build the sampler a generation plan asks for (loading its checkpoint unless given), checking the hash."""
    device = pick_device()
    loaded = loaded or load_model(plan.checkpoint, device)
    if loaded.sha256 != plan.checkpoint_sha256:
        raise ValueError(f"{plan.checkpoint} changed since the plan was made (sha256 differs); use a new --out folder")
    return CheckpointSampler(loaded, plan.sampler, plan.steps, plan.guidance, n_sites=plan.n_sites)


def _part_path(out_dir: Path, task: int, batch: int) -> Path:
    return out_dir / "parts" / f"task-{task:05d}" / f"batch-{batch:05d}.npz"


def task_summary_path(out_dir: Path, task: int) -> Path:
    """Where task ``task`` writes its summary (the marker that it finished)."""
    return Path(out_dir) / shard_name(task, ".json")


def task_problem(out_dir: Path, task: int) -> str | None:
    """Why task ``task`` is not (or no longer) done, naming the file; None when its files verify."""
    out_dir = Path(out_dir)
    summary_path = task_summary_path(out_dir, task)
    if not summary_path.exists():
        return f"{summary_path.name} missing (task not finished)"
    try:
        summary = read_json(summary_path, "task summary")
    except (OSError, ValueError) as err:
        return f"{summary_path} unreadable ({err})"
    for key, name in (("h5_sha256", shard_name(task)), ("cif_sha256", shard_name(task, ".cif"))):
        path = out_dir / name
        if not path.exists():
            return f"{path} missing"
        if sha256_file(path) != summary.get(key):
            return f"{path} does not match its sha256 in {summary_path.name} (truncated or changed)"
    return None


PARTS_PLAN_NAME = "plan-sha256.txt"


def foreign_task_problem(out_dir: Path, task: int, plan: GeneratePlan) -> str | None:
    """Why task ``task``'s files in ``out_dir`` were made by another plan (naming the file and the changed
    settings), or None when they are absent or belong to ``plan``."""
    out_dir = Path(out_dir)
    summary_path = task_summary_path(out_dir, task)
    expected = plan.settings_sha256()
    if summary_path.exists():
        try:
            summary = read_json(summary_path, "task summary")
        except (OSError, ValueError):
            summary = None  # damaged: task_problem redoes it
        if isinstance(summary, dict) and summary.get("plan_sha256") != expected:
            return (f"{shard_name(task)} was made {_changed(summary.get('plan'), plan)}: use a new --out, or "
                    f"--force-redo to replace it")
    marker = _part_path(out_dir, task, 0).parent / PARTS_PLAN_NAME
    if marker.exists() and marker.read_text().strip() != expected:
        return (f"{marker.parent.relative_to(out_dir)}/ holds batches of another plan (seed, checkpoint or settings "
                f"differ from this plan): use a new --out, or --force-redo to replace them")
    return None


def _changed(made_with: dict | None, plan: GeneratePlan) -> str:
    """``with seed 1, this plan says seed 0`` for up to three changed settings (long values summarised)."""
    if not isinstance(made_with, dict):
        return "by another plan (it records none; written before shards carried their plan)"
    now = plan.to_dict()
    changed = sorted(k for k in set(now) | set(made_with) if now.get(k) != made_with.get(k))[:3]
    if not changed:
        return "by another plan"

    def show(settings: dict) -> str:
        return ", ".join(f"other {k}" if k in ("systems", "codec") else f"{k} {_short(settings.get(k))}" for k in changed)

    return f"with {show(made_with)}, this plan says {show(now)}"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def remove_task_files(out_dir: Path, task: int) -> None:
    """Delete task ``task``'s shard, CIF, summary and partial batches (``--force-redo`` of a foreign task)."""
    out_dir = Path(out_dir)
    for suffix in (".json", ".h5", ".cif"):
        (out_dir / shard_name(task, suffix)).unlink(missing_ok=True)
    part_dir = _part_path(out_dir, task, 0).parent
    if part_dir.is_dir():
        for item in part_dir.iterdir():
            item.unlink()
        part_dir.rmdir()


def task_done(out_dir: Path, task: int) -> bool:
    """True when the task's summary exists and its HDF5 and CIF files match their recorded sha256."""
    return task_problem(out_dir, task) is None


def read_task_summary(out_dir: Path, task: int) -> dict:
    """The summary task ``task`` wrote (``FileNotFoundError`` naming it when absent)."""
    path = task_summary_path(out_dir, task)
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: task {task} has not finished")
    return read_json(path, "task summary")


def sample_id(index: int) -> str:
    """Record id of generated sample ``index``."""
    return f"gen-{index:07d}"


def run_task(out_dir: str | Path, task: int, sampler_factory: SamplerFactory | None = None,
             progress: Progress | None = None, plan: GeneratePlan | None = None) -> Path:
    """Run task ``task`` of the plan in ``out_dir`` (idempotent, resumable); return its shard path.

    The picklable entry point of a generation array task. ``plan`` is ``out_dir``'s plan when the caller
    has read it already; the model is loaded (once) only when a batch is still missing. ``progress`` counts
    the samples across the caller's tasks; without one (an array task) the task reports its own.
    """
    out_dir = Path(out_dir)
    plan = plan or read_plan(out_dir)
    with task_lock(out_dir, f"{task:05d}", f"generate task {task} of {out_dir}"):
        return _run_task_locked(out_dir, task, plan, sampler_factory, progress)


def _run_task_locked(out_dir: Path, task: int, plan: GeneratePlan, sampler_factory: SamplerFactory | None,
                     progress: Progress | None) -> Path:
    shard_path = out_dir / shard_name(task)
    foreign = foreign_task_problem(out_dir, task, plan)
    if foreign is not None:
        raise ValueError(f"{out_dir}: {foreign}")
    remove_stale_temps(out_dir, shard_name(task, "."))  # what a killed attempt of this task left
    problem = task_problem(out_dir, task)
    if problem is None:
        log.info("task %d: %s verified, nothing to do", task, shard_path.name)
        return shard_path
    if shard_path.exists() or task_summary_path(out_dir, task).exists():
        log.warning("task %d: %s: doing the task again", task, problem)
        task_summary_path(out_dir, task).unlink(missing_ok=True)
    part_dir = _part_path(out_dir, task, 0).parent
    part_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(part_dir)
    if not (part_dir / PARTS_PLAN_NAME).exists():
        atomic_write_text(part_dir / PARTS_PLAN_NAME, plan.settings_sha256() + "\n")
    if sampler_factory is None:
        sampler_factory = load_sampler
    sampler = None
    started = time.time()
    own_progress = progress is None
    progress = progress or Progress(f"task {task} sampling", len(plan.task_range(task)), "sample")
    try:
        for b, indices in enumerate(plan.batches(task)):
            part = _part_path(out_dir, task, b)
            if part.exists():
                progress.skip(len(indices))
                continue
            sampler = sampler or sampler_factory(plan)
            element_z = torch.tensor([plan.system_of(i) for i in indices], dtype=torch.int64)
            generator = torch.Generator().manual_seed(_batch_seed(plan.seed, task, b))
            t0 = time.time()
            tensors = _sample_batch(sampler, element_z, plan.band_gap_class, generator, progress, len(indices))
            buffer = io.BytesIO()  # built in memory: a full disk then names the file's size (DiskFullError)
            np.savez(buffer, tensors=tensors, element_z=element_z.numpy(), indices=np.asarray(indices))
            atomic_write_bytes(part, buffer.getvalue())
            log.debug("task %d: batch %d/%d (%d samples) in %.1f s", task, b + 1, len(plan.batches(task)), len(indices), time.time() - t0)
            progress.update(len(indices))
    finally:
        if own_progress:
            progress.close()
    _write_task_shard(out_dir, plan, task, elapsed_s=time.time() - started)
    for part in sorted(part_dir.glob("batch-*.npz")):
        part.unlink()
    (part_dir / PARTS_PLAN_NAME).unlink(missing_ok=True)
    for folder in (part_dir, part_dir.parent):
        with contextlib.suppress(OSError):  # another task may still be using parts/
            folder.rmdir()
    log.info("task %d: done in %.1f s", task, time.time() - started)
    return shard_path


def _sample_batch(sampler: TensorSampler, element_z: torch.Tensor, band_gap_class: int | None,
                  generator: torch.Generator, progress: Progress, n: int) -> np.ndarray:
    """One batch of tensors; a sampler that reports its denoising steps moves ``progress`` within the batch."""
    if getattr(sampler, "reports_steps", False):
        tensors = sampler.sample(element_z, band_gap_class, generator,
                                 on_step=lambda step, steps: progress.within(n * step / steps))
    else:
        tensors = sampler.sample(element_z, band_gap_class, generator)
    return tensors.detach().cpu().numpy().astype(np.float32)


def _batch_seed(seed: int, task: int, batch: int) -> int:
    return int(np.random.SeedSequence([seed, task, batch]).generate_state(1, dtype=np.uint64)[0] % (2**63))


MULTI_CIF_NOTE = ("# every valid structure of this task, one data block each; one-structure loaders such as\n"
                  "# pymatgen's Structure.from_file or ase.io.read read one block only: open cifs/<id>.cif,\n"
                  "# structures.extxyz (ase.io.read(path, index=':')) or CifParser(path).parse_structures()\n")
"""Header of the multi-structure CIF (kept for compatibility), pointing to the files one loader reads whole."""


def _write_task_shard(out_dir: Path, plan: GeneratePlan, task: int, elapsed_s: float) -> None:
    codec = CodecConfig.from_dict(plan.codec)
    records: list[ShardRecord] = []
    valid, reasons, systems = [], [], []
    # min d_ij / (r_i + r_j) as sampled and as written (after the push-apart, when the plan asks for it)
    sampled_valid, sampled_ratios, bond_ratios, shifts, scales = [], [], [], [], []
    cif_blocks = []
    decoding = Progress(f"task {task} decoding", len(plan.task_range(task)), "sample", heartbeat=False)
    groups: list[str] = []
    group_numbers: list[int] = []
    written: list[tuple[str, Structure, SpaceGroup | None]] = []  # (id, structure, space group) of every valid sample
    for b in range(len(plan.batches(task))):
        with np.load(_part_path(out_dir, task, b)) as part:
            tensors, element_z, indices = part["tensors"], part["element_z"], part["indices"]
        for tensor, slots, index in zip(tensors, element_z, indices):
            decoded = decode_separated(tensor, slots, codec, plan.push_apart_factor, require_all_elements=True)
            result, separation = decoded.result, decoded.separation
            sampled_valid.append(decoded.sampled_valid)
            sampled_ratios.append(decoded.sampled_min_bond_ratio)
            shift = math.nan if separation is None else separation.max_shift_ang
            scale = math.nan if separation is None else separation.length_scale
            rid = sample_id(int(index))
            if result.structure is not None:
                s = result.structure
                z = np.array([site.specie.Z for site in s], dtype=np.int64)
                params = np.concatenate([s.lattice.abc, s.lattice.angles])
                records.append(ShardRecord(rid, f"task-{task}", int(index), tensor, slots, z, s.frac_coords, params))
                cif_blocks.append(str(CifWriter(s)).replace("data_", f"data_{rid}_", 1))
                group = space_group(s)
                written.append((rid, s, group))
                groups.append("" if group is None else group.symbol)
                group_numbers.append(0 if group is None else group.number)
                # computed once: the push-apart measured its result, and without one the final ratio is the sampled one
                bond_ratios.append(decoded.sampled_min_bond_ratio if separation is None else separation.min_bond_ratio_after)
            else:
                bond_ratios.append(math.nan)
                groups.append("")
                group_numbers.append(0)
                records.append(ShardRecord(rid, f"task-{task}", int(index), tensor, slots, np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros(6)))
            shifts.append(shift)
            scales.append(scale)
            valid.append(result.valid)
            reasons.append(result.reason or "")
            systems.append(system_label(tuple(int(z) for z in slots)))
            decoding.update()
    decoding.close()
    attrs = {"task": task, "checkpoint": plan.checkpoint, "checkpoint_sha256": plan.checkpoint_sha256,
             "sampler": plan.sampler, "steps": plan.steps, "guidance": plan.guidance, "seed": plan.seed,
             "push_apart_factor": -1.0 if plan.push_apart_factor is None else plan.push_apart_factor,
             "plan_sha256": plan.settings_sha256()}
    ratios = np.array(bond_ratios, dtype=np.float64)
    sampled = np.array(sampled_ratios, dtype=np.float64)
    is_valid = np.array(valid, dtype=bool)
    plausible = is_valid & (np.nan_to_num(ratios, nan=0.0) >= PLAUSIBLE_BOND_FACTOR)
    plausible_sampled = np.array(sampled_valid, dtype=bool) & (np.nan_to_num(sampled, nan=0.0) >= PLAUSIBLE_BOND_FACTOR)
    extra = {"valid": is_valid, "reason": reasons, "system": systems,
             "min_bond_ratio": ratios, "plausible": plausible,
             "min_bond_ratio_sampled": sampled, "plausible_sampled": plausible_sampled,
             "valid_sampled": np.array(sampled_valid, dtype=bool),
             "push_max_shift_ang": np.array(shifts, dtype=np.float64),
             "push_length_scale": np.array(scales, dtype=np.float64),
             "space_group": groups, "space_group_number": np.array(group_numbers, dtype=np.int16)}
    cif_path = out_dir / shard_name(task, ".cif")
    h5_path = out_dir / shard_name(task)
    atomic_write_text(cif_path, MULTI_CIF_NOTE + "\n".join(cif_blocks))
    write_shard(h5_path, records, codec.to_dict(), codec.max_sites, extra=extra, attrs=attrs)
    write_structure_cifs(out_dir, written)
    summary = {"task": task, "n_samples": len(valid), "n_valid": int(sum(valid)), "n_plausible": int(plausible.sum()),
               "n_plausible_sampled": int(plausible_sampled.sum()), "n_valid_sampled": int(sum(sampled_valid)),
               "n_cif_blocks": len(cif_blocks),
               "elapsed_s": round(elapsed_s, 3), "h5_sha256": sha256_file(h5_path), "cif_sha256": sha256_file(cif_path),
               "checkpoint_sha256": plan.checkpoint_sha256, "plan_sha256": plan.settings_sha256(), "plan": plan.to_dict()}
    atomic_write_json(task_summary_path(out_dir, task), summary)  # written last: the task's completion marker
