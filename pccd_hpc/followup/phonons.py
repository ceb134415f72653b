"""Finite-displacement phonons of a followup candidate from any backend's forces: set-up with the campaign's
settings, displaced supercells, post-processing."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from pymatgen.core import Lattice, Structure

from pccd_hpc.followup.config import FollowupConfig
from pccd_hpc.materials.phonons import displaced_phonopy, supercell_diagonal


def candidate_phonopy(structure: Structure, config: FollowupConfig):
    """The phonopy set-up (:func:`~pccd_hpc.materials.phonons.displaced_phonopy`) of ``structure``, a standard
    primitive cell, with the followup's settings.

    Raises ``ValueError`` when the supercell exceeds ``config.phonon_max_supercell_atoms``.
    """
    diagonal = supercell_diagonal(structure, config.phonon_min_length_ang)
    n_super = len(structure) * int(np.prod(diagonal))
    if n_super > config.phonon_max_supercell_atoms:
        raise ValueError(f"phonon supercell {diagonal} has {n_super} atoms > phonon_max_supercell_atoms "
                         f"{config.phonon_max_supercell_atoms}")
    return displaced_phonopy(structure, diagonal, config.phonon_displacement_ang, config.symprec, primitive_matrix="auto")


def displaced_supercells(phonon) -> list[Structure]:
    """The displaced supercells as pymatgen structures, in phonopy's order."""
    return [Structure(Lattice(cell.cell), list(cell.symbols), cell.scaled_positions)
            for cell in phonon.supercells_with_displacements]


def supercell_fingerprint(structure: Structure) -> str:
    """sha256 of species, lattice and rounded fractional coordinates (identifies a displacement)."""
    payload = repr((tuple(str(s.specie) for s in structure), np.round(structure.lattice.matrix, 6).tolist(),
                    np.round(structure.frac_coords, 6).tolist()))
    return hashlib.sha256(payload.encode()).hexdigest()


def analyse(phonon, forces: list[np.ndarray], qpoints_frac: np.ndarray, config: FollowupConfig) -> dict[str, Any]:
    """Force constants from ``forces``; frequencies (THz) along ``qpoints_frac``, the mesh DOS, the
    lowest frequency (path and mesh) and the imaginary-mode flag."""
    phonon.forces = np.array(forces)
    phonon.produce_force_constants()
    phonon.symmetrize_force_constants()
    phonon.run_qpoints(np.asarray(qpoints_frac, dtype=float))
    path_freqs = np.asarray(phonon.qpoints.frequencies, dtype=float)
    phonon.run_mesh(list(config.phonon_mesh), is_gamma_center=True)
    mesh_freqs = np.asarray(phonon.mesh.frequencies, dtype=float)
    phonon.run_total_dos()
    dos = phonon.total_dos
    lowest = float(min(path_freqs.min(), mesh_freqs.min()))
    return {
        "path_frequencies_thz": path_freqs.tolist(),
        "dos_frequencies_thz": np.asarray(dos.frequency_points, dtype=float).tolist(),
        "dos": np.asarray(dos.dos, dtype=float).tolist(),
        "lowest_frequency_thz": lowest,
        "max_frequency_thz": float(max(path_freqs.max(), mesh_freqs.max())),
        "imaginary_modes": bool(lowest < -config.imaginary_tol_thz),
        "imaginary_tol_thz": config.imaginary_tol_thz,
        "supercell_matrix": np.asarray(phonon.supercell_matrix).astype(int).tolist(),
        "n_displacements": len(forces),
    }
