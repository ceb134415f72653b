"""Finite-displacement phonons with phonopy and any ASE calculator (atomate2's phonon flow, in small steps).

Steps: symmetry-constrained re-relaxation (FixSymmetry, or broken symmetry multiplies the
displacements), supercell by minimum length, displacements, forces, force constants, q-mesh
frequencies, imaginary-mode flag (``PhononConfig.imaginary_tol_thz``), optional band plot.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pymatgen.core import Structure

from pccd_hpc.validate.config import PhononConfig
from pccd_hpc.materials.relax import RelaxConfig, relax_structure
from pccd_hpc.materials.errors import PhononFailure
from pccd_hpc.materials.phonons import displaced_phonopy, supercell_diagonal
from pccd_hpc.validate.limits import estimate_memory_bytes

log = logging.getLogger(__name__)


@dataclass
class PhononResult:
    """Summary of one phonon calculation."""

    imaginary_modes: bool
    min_frequency_thz: float
    n_displacements: int
    supercell_diagonal: tuple[int, int, int]
    wall_s: float


def run_phonons(
    structure: Structure, calculator, config: PhononConfig, record_id: str, band_plot: Path | None = None,
    max_memory_gb: float | None = None,
):
    """Re-relax with fixed symmetry, compute phonons and return ``(PhononResult, phonopy object)``.

    Raises ``PhononFailure`` naming ``record_id`` when the supercell is too large (``max_supercell_atoms``,
    or its estimated memory above ``max_memory_gb``) or forces fail.
    """
    from ase import Atoms

    start = time.perf_counter()
    relax_cfg = RelaxConfig(fix_symmetry=True, symprec=config.symprec, fmax_ev_per_ang=config.fmax_ev_per_ang, max_steps=300)
    structure = relax_structure(structure, calculator, relax_cfg, record_id).structure
    diagonal = supercell_diagonal(structure, config.min_length_ang)
    n_super = len(structure) * int(np.prod(diagonal))
    if n_super > config.max_supercell_atoms:
        raise PhononFailure(record_id, f"supercell {diagonal} has {n_super} atoms > max_supercell_atoms {config.max_supercell_atoms}")
    need_gb = estimate_memory_bytes(n_super, structure.volume * float(np.prod(diagonal)), "none") / 1e9
    if max_memory_gb is not None and need_gb > max_memory_gb:
        raise PhononFailure(record_id, f"supercell {diagonal} of {n_super} atoms would need about {need_gb:.1f} GB for its "
                            f"force calls, above the limit of {max_memory_gb:g} GB per worker (--max-memory-gb)")
    phonon = displaced_phonopy(structure, diagonal, config.displacement_ang, config.symprec, primitive_matrix="P")
    forces = []
    for cell in phonon.supercells_with_displacements:
        atoms = Atoms(cell.symbols, cell=cell.cell, scaled_positions=cell.scaled_positions, pbc=True)
        atoms.calc = calculator
        f = np.asarray(atoms.get_forces(), dtype=float)
        if not np.isfinite(f).all():
            raise PhononFailure(record_id, "non-finite forces on a displaced supercell")
        forces.append(f)
    phonon.forces = np.array(forces)
    phonon.produce_force_constants()
    phonon.symmetrize_force_constants()
    phonon.run_mesh(config.mesh_length_ang, is_gamma_center=True)
    frequencies = phonon.get_mesh_dict()["frequencies"]
    min_freq = float(np.min(frequencies))
    if band_plot is not None:
        plot_band_structure(phonon, structure, band_plot, title=f"{record_id} ({structure.composition.reduced_formula})")
    result = PhononResult(
        imaginary_modes=bool(min_freq < -config.imaginary_tol_thz),
        min_frequency_thz=min_freq,
        n_displacements=len(forces),
        supercell_diagonal=diagonal,
        wall_s=time.perf_counter() - start,
    )
    return result, phonon


def plot_band_structure(phonon, structure: Structure, target: Path, title: str = "", points_per_segment: int = 41) -> None:
    """Plot the phonon band structure along pymatgen's high-symmetry path (Setyawan-Curtarolo) to a PNG."""
    from pymatgen.symmetry.bandstructure import HighSymmKpath

    from pccd_hpc.plotting import pyplot, save_figure

    plt = pyplot()

    # Latimer-Munro paths are expressed in the input cell's own reciprocal basis, so the force
    # constants of our (unstandardised) cell can be used without rotating anything.
    kpath = HighSymmKpath(structure, path_type="latimer_munro")
    kpoints = kpath.kpath["kpoints"]
    paths, ticks_labels = [], []
    for branch in kpath.kpath["path"]:
        for k, (a, b) in enumerate(zip(branch[:-1], branch[1:])):
            qa, qb = np.asarray(kpoints[a], float), np.asarray(kpoints[b], float)
            paths.append([qa + (qb - qa) * t for t in np.linspace(0, 1, points_per_segment)])
            ticks_labels.append((a if k == 0 else None, b))
    phonon.run_band_structure(paths)
    bands = phonon.get_band_structure_dict()
    fig, ax = plt.subplots(figsize=(6, 4))
    ticks: list[float] = []
    labels: list[str] = []
    for dist, freq, (start_label, end_label) in zip(bands["distances"], bands["frequencies"], ticks_labels):
        ax.plot(dist, freq, color="tab:blue", lw=1)
        if start_label is not None:  # a new branch: merge with the previous branch's end label
            if ticks:
                labels[-1] = f"{labels[-1]}|{start_label}"
            else:
                ticks.append(float(dist[0]))
                labels.append(start_label)
        ticks.append(float(dist[-1]))
        labels.append(end_label)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(ticks, [f"${t}$" if "_" in t else t for t in labels])
    ax.set_xlim(0, ticks[-1])
    ax.set_ylabel("Frequency (THz)")
    ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, target)
