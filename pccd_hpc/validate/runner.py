"""The validate stage's compute step: relax this task's chunk of candidates and references.

One record per structure is written atomically as soon as it is done (``store.RecordStore``);
a re-run skips finished records. Any failure of one structure is recorded and the task goes on.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from pymatgen.core import Structure

from pccd_hpc.progress import Progress
from pccd_hpc.data.symmetry import space_group, symmetrized_cif
from pccd_hpc.materials.backends.base import Backend
from pccd_hpc.materials.backends.registry import get_backend
from pccd_hpc.validate.config import ValidateConfig
from pccd_hpc.materials.errors import PhononFailure, RelaxationTimeout, ValidationFailure
from pccd_hpc.validate.limits import site_limit_problem, size_problem
from pccd_hpc.validate.record import Job, ValidationRecord, structure_fingerprint
from pccd_hpc.validate.store import RecordStore
from pccd_hpc.records import record_stem

log = logging.getLogger(__name__)


class OtherSettingsError(ValueError):
    """Finished records were computed with other settings than this run's (the message names one)."""


def pending_jobs(jobs: list[Job], store: RecordStore, refuse_other_settings: bool = False, changed: str = "") -> list[Job]:
    """Jobs without a usable record: none yet, a changed structure, a damaged or edited record (named in the
    log), one refused as too large (the limits may have changed), or one computed with other settings
    than ``store.settings_sha256``: those are redone, or with ``refuse_other_settings`` refused
    (:class:`OtherSettingsError`, naming a record and ``changed``, what differs) before anything is computed."""
    todo, other = [], []
    for job in jobs:
        record, problem = store.load(job.record_id)
        if problem is not None:
            log.warning("%s: computing it again", problem)
            todo.append(job)
        elif record is None or record.structure_sha != structure_fingerprint(job.structure) or record.error_kind == "too_large":
            todo.append(job)
        elif store.settings_sha256 is not None and record.settings_sha256 != store.settings_sha256:
            other.append(job)
    if other and refuse_other_settings:
        more = f" (and {len(other) - 1} more)" if len(other) > 1 else ""
        raise OtherSettingsError(f"{store.path(other[0].record_id)}{more} was computed with other settings"
                                 f"{f' ({changed})' if changed else ''}: use a new --out, or --force-redo to compute "
                                 f"them again with these settings")
    if other:
        log.warning("%d records in %s were computed with other settings: computing them again", len(other), store.folder)
    return todo + other


def compute_jobs(jobs: list[Job], stores: dict[str, RecordStore], config: ValidateConfig, out_dir: Path) -> int:
    """Run ``jobs`` with ``config.workers`` processes, writing each record as it finishes; return the count."""
    if not jobs:
        return 0
    done = 0
    with Progress("validation", len(jobs), "structure") as progress:
        for record in iter_results(jobs, config, out_dir):
            stores[record.kind].put(record)
            done += 1
            progress.update()
    return done


def iter_results(jobs: list[Job], config: ValidateConfig, out_dir: Path, pids: list[int] | None = None) -> Iterator[ValidationRecord]:
    """Yield one record per job, in completion order, from ``config.workers`` processes.

    A worker that dies (OOM kill, signal) costs only the structure it held: that record says
    ``error_kind = "worker_died"`` with the signal, and a new worker takes the remaining jobs.
    ``pids`` is kept filled with the live worker process ids.
    """
    if config.workers == 1:
        _worker_init(config, out_dir)
        yield from map(_compute, jobs)
        return
    from pccd_hpc.validate.pool import run_pool

    def _failed(job: Job, reason: str, kind: str) -> ValidationRecord:
        record = ValidationRecord.for_job(job, config.backend)
        record.fail(f"{job.record_id}: {reason}", kind)
        return record

    yield from run_pool(jobs, config.workers, _compute, _worker_init, (config, out_dir),
                        on_death=lambda job, reason: _failed(job, reason, "worker_died"),
                        on_error=lambda job, reason: _failed(job, reason, "exception"), pids=pids)


# Process-local worker state: the backend (and its loaded model) lives once per worker process.
_WORKER: dict[str, Any] = {}


def _worker_init(config: ValidateConfig, out_dir: Path) -> None:
    if _WORKER.get("config") == config and _WORKER.get("out_dir") == out_dir:
        return
    _WORKER.update(config=config, out_dir=out_dir, backend=get_backend(config.backend, **config.backend_options))


def _compute(job: Job) -> ValidationRecord:
    config: ValidateConfig = _WORKER["config"]
    backend: Backend = _WORKER["backend"]
    return compute_record(job, backend, config, _WORKER["out_dir"])


def compute_record(job: Job, backend: Backend, config: ValidateConfig, out_dir: Path) -> ValidationRecord:
    """Relax one job (and run phonons for candidates when asked); never raises for a bad structure."""
    record = ValidationRecord.for_job(job, backend.name)
    start = time.perf_counter()
    if len(job.structure) > config.max_sites:  # refused before any neighbour search can take the memory
        return _too_large(record, site_limit_problem(len(job.structure), config.max_sites))
    try:
        ratio, problem = geometry_problem(job.structure, config.no_relax_bond_factor)
    except Exception as err:  # noqa: BLE001 - batch boundary: a structure the check cannot read is recorded
        record.fail(f"{job.record_id}: geometry check failed: {type(err).__name__}: {err}", "exception")
        record.wall_s = 0.0
        log.warning("%s", record.error)
        return record
    record.min_bond_ratio_initial = ratio
    record.space_group_initial, record.space_group_number_initial = _space_group_fields(job.structure)
    record.plausible_initial = problem is None and (ratio is None or ratio >= config.min_bond_factor)
    if problem is not None:
        # Not relaxed: overlapping atoms give huge forces and neighbour lists (one 0.05 A cell took 22 GB).
        record.unphysical, record.unphysical_reason = True, f"before relaxation: {problem}"
        record.fail(f"{job.record_id}: unphysical before relaxation ({problem}); not relaxed", "unphysical_initial")
        record.wall_s = 0.0
        log.warning("%s", record.error)
        return record
    too_large = size_problem(job.structure, config.max_sites, config.max_memory_gb, config.relax.optimizer)
    if too_large is not None:  # refused before a force call can take the memory
        return _too_large(record, too_large)
    try:
        with _hard_timeout(config.relax.timeout_s * 1.5 + 30, job.record_id):
            result = backend.relax(job.structure, config.relax, job.record_id)
        record.energy_ev_per_atom, record.converged = float(result.energy_ev_per_atom), bool(result.converged)
        record.n_steps, record.max_force_ev_per_ang = int(result.n_steps), float(result.max_force_ev_per_ang)
        record.relaxed_cif = result.structure.to(fmt="cif")
        record.space_group_relaxed, record.space_group_number_relaxed = _space_group_fields(result.structure)
        record.symmetrized_cif = symmetrized_cif(result.structure)
        if not result.converged:
            record.error_kind = "not_converged"
        _check_relaxed_geometry(record, job.structure, result.structure, config)
    except ValidationFailure as err:
        record.fail(str(err), err.kind)
        log.warning("%s", err)
    except Exception as err:  # noqa: BLE001 - batch boundary: a crash on one structure is recorded
        record.fail(f"{job.record_id}: {type(err).__name__}: {err}", "exception")
        log.exception("validate: %s failed", job.record_id)
    if job.kind == "candidate" and config.phonons and record.relaxed_cif is not None and not record.unphysical:
        _add_phonons(record, Structure.from_str(record.relaxed_cif, fmt="cif"), backend, config, out_dir)
    record.wall_s = time.perf_counter() - start
    return record


def _too_large(record: ValidationRecord, reason: str) -> ValidationRecord:
    record.fail(f"{record.id}: not relaxed, {reason}", "too_large")
    record.wall_s = 0.0
    log.warning("%s", record.error)
    return record


def _space_group_fields(structure: Structure) -> tuple[str | None, int | None]:
    """(symbol, number) of ``structure``'s space group at the package's tolerance, or (None, None)."""
    group = space_group(structure)
    return (None, None) if group is None else (group.symbol, group.number)


def geometry_problem(structure: Structure, factor: float) -> tuple[float | None, str | None]:
    """``(min bond ratio, problem)``: problem says why ``structure`` is unphysical (atoms closer than
    ``factor`` x the sum of covalent radii, or a cell too small for its atoms), else None.

    The cell-size test runs first so that the neighbour search never meets a 0.05 A cell.
    """
    from pccd_hpc.data.geometry import min_bond_ratio, shortest_distance_ang

    matrix = structure.lattice.matrix
    volume = abs(float(np.linalg.det(matrix)))
    widths = volume / np.linalg.norm(np.cross(matrix[[1, 2, 0]], matrix[[2, 0, 1]]), axis=1) if volume > 0 else np.zeros(3)
    if widths.min() < 0.3 or volume / len(structure) < 1.0:
        return None, f"cell too small for its atoms (width {widths.min():.3g} A, {volume / len(structure):.3g} A^3 per atom)"
    ratio = min_bond_ratio(structure)
    if ratio < factor:
        return ratio, (f"shortest distance {shortest_distance_ang(structure):.3f} A is {ratio:.2f} x the sum of "
                       f"covalent radii (< {factor:g})")
    return (ratio if np.isfinite(ratio) else None), None


def _check_relaxed_geometry(record: ValidationRecord, initial: Structure, relaxed: Structure, config: ValidateConfig) -> None:
    """Flag a relaxed structure with short bonds or an exploded/collapsed volume as unphysical."""
    ratio, problem = geometry_problem(relaxed, config.min_bond_factor)
    record.min_bond_ratio_relaxed = ratio
    volume_ratio = relaxed.volume / initial.volume
    if problem is None and not (1 / config.max_relaxed_volume_ratio <= volume_ratio <= config.max_relaxed_volume_ratio):
        problem = f"volume changed by a factor {volume_ratio:.3g} during relaxation (limit {config.max_relaxed_volume_ratio:g})"
    if problem is not None:
        record.unphysical, record.unphysical_reason = True, f"after relaxation: {problem}"
        log.warning("%s: unphysical after relaxation: %s", record.id, problem)


def _add_phonons(record: ValidationRecord, structure: Structure, backend: Backend, config: ValidateConfig, out_dir: Path) -> None:
    from pccd_hpc.validate.phonons import run_phonons

    plot = None
    if record.id in config.band_structure_ids:
        plot = out_dir / "phonons" / f"{record_stem(record.id)}_bands.png"
    try:
        calculator = getattr(backend, "calculator", None)
        if calculator is None:
            raise PhononFailure(record.id, f"backend {backend.name!r} has no in-process calculator for phonons")
        with _hard_timeout(config.relax.timeout_s * 3 + 60, record.id):
            result, _ = run_phonons(structure, calculator, config.phonon, record.id, band_plot=plot,
                                       max_memory_gb=config.max_memory_gb)
        record.imaginary_modes, record.min_frequency_thz = result.imaginary_modes, result.min_frequency_thz
        record.phonon_n_displacements, record.phonon_supercell = result.n_displacements, list(result.supercell_diagonal)
        record.phonon_wall_s = result.wall_s
    except ValidationFailure as err:
        record.phonon_error = str(err)
        log.warning("%s", err)
    except Exception as err:  # noqa: BLE001 - batch boundary
        record.phonon_error = f"{record.id}: {type(err).__name__}: {err}"
        log.exception("phonons: %s failed", record.id)


@contextlib.contextmanager
def _hard_timeout(seconds: float, record_id: str) -> Iterator[None]:
    """Interrupt a calculation stuck inside one force call (SIGALRM; main thread only, else a no-op)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def _raise(signum, frame):  # noqa: ARG001
        raise RelaxationTimeout(record_id, f"hard wall-clock limit of {seconds:g} s reached")

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
