"""The followup steps of one candidate, each in its own folder, resumable and verified.

Candidate folder ``FDIR/candidates/<id>/``::

    input.json     the candidate structure (the only input of the DFT steps)
    validation.json  its validation figures (E_hull, source row), read by the summary only
    relax/         DFT relaxation                       -> result.json
    static/        SCF on the standard primitive cell   -> result.json (+ scf.gpw / vasprun.xml)
    bands/         path + uniform non-SCF, gap, DOS     -> result.json, bandstructure.json
    phonons/       disp-NNN/forces.json per displacement -> result.json (frequencies, DOS, flag)

A step counts as done only when its ``result.json`` (written atomically, last) names the sha256
of the upstream result it was computed from and the files it lists still hash the same; a stale,
truncated or mismatched result is redone, never trusted. A failure writes ``failed.json`` and
raises ``StepFailure``; a re-run retries it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pymatgen.core import Structure

from pccd_hpc.followup import electronic, phonons as ph
from pccd_hpc.materials.backends.base import DftBackend
from pccd_hpc.materials.errors import StepFailure
from pccd_hpc.materials.kpath import BandPath, band_path, path_distances, standard_primitive
from pccd_hpc.io_utils import atomic_write_json, read_json, sha256_file

log = logging.getLogger(__name__)

STEPS = ("relax", "static", "bands", "phonon-forces", "phonons")
RESULT = "result.json"
FAILED = "failed.json"
UPSTREAM = {"relax": "input.json", "static": "relax/result.json", "bands": "static/result.json",
            "phonons": "static/result.json"}


def load_result(cand_dir: Path, step: str) -> dict[str, Any] | None:
    """The verified result of ``step`` (folder name), or None when absent, stale or corrupt."""
    path = cand_dir / step / RESULT
    if not path.exists():
        return None
    try:
        result = read_json(path, "step result")
        upstream = cand_dir / UPSTREAM[step]
        if result.get("step") != step or result.get("upstream_sha256") != sha256_file(upstream):
            log.warning("%s: stale (upstream changed or other step); redoing", path)
            return None
        for name, digest in result.get("files", {}).items():
            if sha256_file(cand_dir / step / name) != digest:
                log.warning("%s: %s changed since the step finished; redoing", path, name)
                return None
    except (OSError, ValueError, AttributeError) as err:
        log.warning("%s unreadable (%s); redoing the step", path, err)
        return None
    return result


def run_step(cand_dir: Path, step: str, backend: DftBackend, task_index: int = 0, num_tasks: int = 1) -> dict[str, Any]:
    """Run ``step`` for the candidate in ``cand_dir`` unless it is already done; return its result."""
    if step not in STEPS:
        raise ValueError(f"unknown followup step {step!r}; one of {STEPS}")
    candidate = read_json(cand_dir / "input.json", "candidate input")["id"]
    if step == "phonon-forces":
        try:
            return _phonon_forces(cand_dir, candidate, backend, task_index, num_tasks)
        except StepFailure as err:  # recorded where the summary looks for the phonons' reason
            atomic_write_json(cand_dir / "phonons" / FAILED, {"step": step, "error": err.message})
            raise
    done = load_result(cand_dir, step)
    if done is not None:
        log.info("%s [%s]: already done, verified", candidate, step)
        return done
    upstream_path = cand_dir / UPSTREAM[step]
    if not upstream_path.exists():
        raise StepFailure(candidate, step, f"upstream result {upstream_path} missing: run the earlier step first")
    folder = cand_dir / step
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FAILED).unlink(missing_ok=True)
    upstream = read_json(upstream_path, "upstream step result")
    runner: Callable[..., tuple[dict[str, Any], list[str]]] = {"relax": _relax, "static": _static, "bands": _bands,
                                                               "phonons": _phonons}[step]
    start = time.perf_counter()
    try:
        payload, files = runner(cand_dir, candidate, upstream, backend)
    except StepFailure as err:
        atomic_write_json(folder / FAILED, {"step": step, "error": err.message})
        raise
    except (ValueError, KeyError, OSError, RuntimeError) as err:
        atomic_write_json(folder / FAILED, {"step": step, "error": f"{type(err).__name__}: {err}"})
        raise StepFailure(candidate, step, f"{type(err).__name__}: {err}") from err
    result = {"step": step, "candidate": candidate, "backend": backend.name, "wall_s": time.perf_counter() - start,
              "upstream_sha256": sha256_file(upstream_path),
              "files": {name: sha256_file(folder / name) for name in files}, **payload}
    atomic_write_json(folder / RESULT, result)
    log.info("%s [%s]: done in %.1f s", candidate, step, result["wall_s"])
    return result


def _structure(data: dict[str, Any]) -> Structure:
    return Structure.from_dict(data["structure"])


def _relax(cand_dir: Path, candidate: str, upstream: dict[str, Any], backend: DftBackend):
    out = backend.relax_in(_structure(upstream), cand_dir / "relax", candidate)
    return {"structure": out.structure.as_dict(), "energy_ev_per_atom": out.energy_ev_per_atom, "converged": out.converged,
            "n_steps": out.n_steps, "max_force_ev_per_ang": out.max_force_ev_per_ang}, []


def _static(cand_dir: Path, candidate: str, upstream: dict[str, Any], backend: DftBackend):
    cfg = backend.config
    prim = standard_primitive(_structure(upstream), cfg.symprec, cfg.kpath_type)
    out = backend.static(prim, cand_dir / "static", candidate)
    files = [n for n in ("scf.gpw", "vasprun.xml", "vasprun.xml.gz") if (cand_dir / "static" / n).exists()]
    return {"structure": prim.as_dict(), "energy_ev_per_atom": out.energy_ev_per_atom, "efermi_ev": out.efermi_ev,
            "n_electrons": out.n_electrons}, files


def _bands(cand_dir: Path, candidate: str, upstream: dict[str, Any], backend: DftBackend):
    cfg = backend.config
    structure = _structure(upstream)
    path = band_path(structure, cfg.line_density, cfg.symprec, cfg.kpath_type)
    folder = cand_dir / "bands"
    out = backend.bands(structure, cand_dir / "static", path.kpoints_frac, path.labels, folder, candidate)
    if out.path_kpoints_frac is not None:  # the code ran its own sampling of the same path
        kfrac = np.asarray(out.path_kpoints_frac, dtype=float)
        distances, breaks = path_distances(kfrac, out.path_labels, structure.lattice.reciprocal_lattice.matrix)
        path = BandPath(kfrac, list(out.path_labels), distances, breaks)
    if out.path_eigenvalues_ev.shape[1] != len(path.kpoints_frac):
        raise StepFailure(candidate, "bands", f"{out.path_eigenvalues_ev.shape[1]} path k-points computed, "
                          f"{len(path.kpoints_frac)} asked for")
    edges = electronic.band_edges(out.path_eigenvalues_ev, out.mesh_eigenvalues_ev, out.n_electrons, cfg.spin_polarized)
    ref = electronic.reference_energy(out.efermi_ev, edges)
    bs = electronic.band_structure(structure, path, out.path_eigenvalues_ev, ref)
    atomic_write_json(folder / "bandstructure.json", bs.as_dict())
    energies, dos = electronic.gaussian_dos(out.mesh_eigenvalues_ev, out.mesh_weights, cfg.dos_sigma_ev)
    payload = {**electronic.gap_summary(bs), "reference_energy_ev": ref, "scf_efermi_ev": out.efermi_ev,
               "vbm_ev": None if edges is None else edges[0], "cbm_ev": None if edges is None else edges[1],
               "distances": path.distances.tolist(), "breaks": path.breaks, "ticks": path.ticks(),
               "path_eigenvalues_ev": out.path_eigenvalues_ev.tolist(), "dos_energies_ev": energies.tolist(),
               "dos": dos.tolist(), "n_kpoints_path": len(path.kpoints_frac), "n_kpoints_mesh": len(out.mesh_weights)}
    return payload, ["bandstructure.json"]


def _phonon_forces(cand_dir: Path, candidate: str, backend: DftBackend, task_index: int, num_tasks: int) -> dict[str, Any]:
    """Forces for displacements ``task_index``, ``task_index + num_tasks``, ... (one array task's share)."""
    if not 0 <= task_index < num_tasks:
        raise ValueError(f"task_index must be in [0, {num_tasks}), got {task_index}")
    static_path = cand_dir / "static" / RESULT
    if load_result(cand_dir, "static") is None:
        raise StepFailure(candidate, "phonon-forces", f"no verified {static_path}: run the static step first")
    structure = _structure(read_json(static_path, "static step result"))
    try:
        phonon = ph.candidate_phonopy(structure, backend.config)
    except ValueError as err:
        raise StepFailure(candidate, "phonon-forces", str(err)) from err
    cells = ph.displaced_supercells(phonon)
    computed = 0
    for index in range(task_index, len(cells), num_tasks):
        folder = cand_dir / "phonons" / f"disp-{index:03d}"
        if _load_forces(folder, cells[index]) is not None:
            continue
        start = time.perf_counter()
        forces = backend.forces(cells[index], folder, candidate)
        if forces.shape != (len(cells[index]), 3) or not np.isfinite(forces).all():
            raise StepFailure(candidate, "phonon-forces", f"{folder.name}: forces of shape {forces.shape} (finite: "
                              f"{bool(np.isfinite(forces).all())}) for a supercell of {len(cells[index])} atoms")
        atomic_write_json(folder / "forces.json", {"fingerprint": ph.supercell_fingerprint(cells[index]),
                                                   "forces_ev_per_ang": forces.tolist(), "wall_s": time.perf_counter() - start})
        log.info("%s [phonon-forces]: displacement %d of %d in %.1f s", candidate, index + 1, len(cells),
                 time.perf_counter() - start)
        computed += 1
    return {"step": "phonon-forces", "n_displacements": len(cells), "computed": computed}


def _load_forces(folder: Path, cell: Structure) -> np.ndarray | None:
    path = folder / "forces.json"
    if not path.exists():
        return None
    try:
        data = read_json(path, "displacement forces")
        forces = np.asarray(data["forces_ev_per_ang"], dtype=float)
    except (OSError, ValueError, KeyError):
        return None
    if data.get("fingerprint") != ph.supercell_fingerprint(cell) or forces.shape != (len(cell), 3):
        return None
    return forces


def _phonons(cand_dir: Path, candidate: str, upstream: dict[str, Any], backend: DftBackend):
    cfg = backend.config
    structure = _structure(upstream)
    try:
        phonon = ph.candidate_phonopy(structure, cfg)
    except ValueError as err:
        raise StepFailure(candidate, "phonons", str(err)) from err
    cells = ph.displaced_supercells(phonon)
    forces, missing = [], []
    for index, cell in enumerate(cells):
        f = _load_forces(cand_dir / "phonons" / f"disp-{index:03d}", cell)
        (missing.append(index) if f is None else forces.append(f))
    if missing:
        raise StepFailure(candidate, "phonons", f"forces missing or stale for displacement(s) {missing} of {len(cells)}: "
                          "run the phonon-forces step (array) first")
    path = band_path(structure, cfg.line_density, cfg.symprec, cfg.kpath_type)
    payload = ph.analyse(phonon, forces, path.kpoints_frac, cfg)
    payload.update(distances=path.distances.tolist(), breaks=path.breaks, ticks=path.ticks())
    return payload, [f"disp-{index:03d}/forces.json" for index in range(len(cells))]
