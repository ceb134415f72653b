"""The validate stage's compute step: relax this task's chunk of candidates and references.

One record per structure is written atomically as soon as it is done (``store.RecordStore``);
a re-run skips finished records. Any failure of one structure is recorded and the task goes on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from pymatgen.core import Structure

from pccd_hpc.validate.backends.base import Backend, get_backend
from pccd_hpc.validate.config import ValidateConfig
from pccd_hpc.validate.errors import PhononFailure, RelaxationTimeout, ValidationFailure
from pccd_hpc.validate.store import RecordStore, record_filename

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One structure to compute: a candidate (relax + optional phonons) or a reference (relax)."""

    record_id: str
    kind: str  # "candidate" | "reference"
    structure: Structure
    note: str = ""


def structure_fingerprint(structure: Structure) -> str:
    """A short hash of lattice, species and fractional coordinates (detects a changed reference)."""
    payload = json.dumps(
        [np.round(structure.lattice.matrix, 5).tolist(), [s.species_string for s in structure],
         np.round(structure.frac_coords % 1.0, 5).tolist()]
    )
    return hashlib.sha1(payload.encode()).hexdigest()[:16]


def pending_jobs(jobs: list[Job], store: RecordStore) -> list[Job]:
    """Jobs without a finished record for the same structure (a changed structure is recomputed)."""
    todo = []
    for job in jobs:
        record = store.get(job.record_id)
        if record is None or record.get("structure_sha") != structure_fingerprint(job.structure):
            todo.append(job)
    return todo


def compute_jobs(jobs: list[Job], stores: dict[str, RecordStore], config: ValidateConfig, out_dir: Path) -> int:
    """Run ``jobs`` with ``config.workers`` processes, writing each record as it finishes; return the count."""
    if not jobs:
        return 0
    done = 0
    start = time.perf_counter()
    for record in iter_results(jobs, config, out_dir):
        stores[record["kind"]].put(record)
        done += 1
        if done % 10 == 0 or done == len(jobs):
            rate = done / max(time.perf_counter() - start, 1e-9) * 60
            log.info("validate: %d/%d structures done (%.1f/min)", done, len(jobs), rate)
    return done


def iter_results(jobs: list[Job], config: ValidateConfig, out_dir: Path) -> Iterator[dict[str, Any]]:
    """Yield one record per job, in completion order, from ``config.workers`` processes."""
    if config.workers == 1:
        _worker_init(config, out_dir)
        yield from map(_compute, jobs)
        return
    # spawn: each worker starts a clean interpreter (torch and fork do not mix) and loads the model once.
    context = multiprocessing.get_context("spawn")
    with context.Pool(config.workers, initializer=_worker_init, initargs=(config, out_dir), maxtasksperchild=200) as pool:
        yield from pool.imap_unordered(_compute, jobs, chunksize=1)


# Process-local worker state: the backend (and its loaded model) lives once per worker process.
_WORKER: dict[str, Any] = {}


def _worker_init(config: ValidateConfig, out_dir: Path) -> None:
    if _WORKER.get("config") == config and _WORKER.get("out_dir") == out_dir:
        return
    _WORKER.update(config=config, out_dir=out_dir, backend=get_backend(config.backend, **config.backend_options))


def _compute(job: Job) -> dict[str, Any]:
    config: ValidateConfig = _WORKER["config"]
    backend: Backend = _WORKER["backend"]
    return compute_record(job, backend, config, _WORKER["out_dir"])


def new_record(job: Job, backend_name: str) -> dict[str, Any]:
    """A record for ``job`` with every result field empty (filled by a backend)."""
    s = job.structure
    return {
        "id": job.record_id, "kind": job.kind, "formula": s.composition.reduced_formula,
        "composition": s.composition.formula, "n_sites": len(s), "backend": backend_name,
        "structure_sha": structure_fingerprint(s), "initial_cif": s.to(fmt="cif"), "note": job.note,
        "energy_ev_per_atom": None, "converged": False, "n_steps": None, "max_force_ev_per_ang": None,
        "wall_s": None, "relaxed_cif": None, "error": None, "error_kind": None,
        "imaginary_modes": None, "min_frequency_thz": None, "phonon_error": None,
    }


def compute_record(job: Job, backend: Backend, config: ValidateConfig, out_dir: Path) -> dict[str, Any]:
    """Relax one job (and run phonons for candidates when asked); never raises for a bad structure."""
    record = new_record(job, backend.name)
    start = time.perf_counter()
    try:
        with _hard_timeout(config.relax.timeout_s * 1.5 + 30, job.record_id):
            result = backend.relax(job.structure, config.relax, job.record_id)
        record.update(
            energy_ev_per_atom=float(result.energy_ev_per_atom), converged=bool(result.converged),
            n_steps=int(result.n_steps), max_force_ev_per_ang=float(result.max_force_ev_per_ang),
            relaxed_cif=result.structure.to(fmt="cif"),
        )
        if not result.converged:
            record["error_kind"] = "not_converged"
    except ValidationFailure as err:
        record.update(error=str(err), error_kind=err.kind)
        log.warning("%s", err)
    except Exception as err:  # noqa: BLE001 - batch boundary: a crash on one structure is recorded
        record.update(error=f"{job.record_id}: {type(err).__name__}: {err}", error_kind="exception")
        log.exception("validate: %s failed", job.record_id)
    if job.kind == "candidate" and config.phonons and record["relaxed_cif"] is not None:
        _add_phonons(record, Structure.from_str(record["relaxed_cif"], fmt="cif"), backend, config, out_dir)
    record["wall_s"] = time.perf_counter() - start
    return record


def _add_phonons(record: dict[str, Any], structure: Structure, backend: Backend, config: ValidateConfig, out_dir: Path) -> None:
    from pccd_hpc.validate.phonons import run_phonons

    plot = None
    if record["id"] in config.band_structure_ids:
        plot = out_dir / "phonons" / record_filename(record["id"]).replace(".json", "_bands.png")
    try:
        calculator = getattr(backend, "calculator", None)
        if calculator is None:
            raise PhononFailure(record["id"], f"backend {backend.name!r} has no in-process calculator for phonons")
        with _hard_timeout(config.relax.timeout_s * 3 + 60, record["id"]):
            result, _ = run_phonons(structure, calculator, config.phonon, record["id"], band_plot=plot)
        record.update(
            imaginary_modes=result.imaginary_modes, min_frequency_thz=result.min_frequency_thz,
            phonon_n_displacements=result.n_displacements, phonon_supercell=list(result.supercell_diagonal),
            phonon_wall_s=result.wall_s,
        )
    except ValidationFailure as err:
        record["phonon_error"] = str(err)
        log.warning("%s", err)
    except Exception as err:  # noqa: BLE001 - batch boundary
        record["phonon_error"] = f"{record['id']}: {type(err).__name__}: {err}"
        log.exception("phonons: %s failed", record["id"])


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
