"""The one phonopy set-up of the package: a supercell repeated to a minimum width, and its displacements.

validate (ML-potential phonons of every candidate) and followup (DFT phonons of a few) both start here;
what they do with the forces afterwards is their own.
"""

from __future__ import annotations

import math

import numpy as np
from pymatgen.core import Structure


def supercell_diagonal(structure: Structure, min_length_ang: float) -> tuple[int, int, int]:
    """Repeats along a, b, c so that each perpendicular width of the supercell is >= ``min_length_ang``."""
    matrix = structure.lattice.matrix
    volume = abs(np.linalg.det(matrix))
    reps = []
    for i in range(3):
        cross = np.cross(matrix[(i + 1) % 3], matrix[(i + 2) % 3])
        width = volume / np.linalg.norm(cross)
        reps.append(max(1, math.ceil(min_length_ang / width - 1e-6)))
    return tuple(reps)  # type: ignore[return-value]


def displaced_phonopy(structure: Structure, diagonal: tuple[int, int, int], displacement_ang: float, symprec: float,
                      primitive_matrix: str):
    """A ``Phonopy`` of ``structure`` with supercell ``diag(diagonal)`` and its displacements generated
    (deterministic: every array task regenerates the same set).

    ``primitive_matrix`` is phonopy's: ``"P"`` takes ``structure`` itself as the primitive cell (validate: the
    q-mesh and the Latimer-Munro band path are then in the relaxed cell's own reciprocal basis); ``"auto"``
    (phonopy's default) lets spglib find the primitive cell (followup: ``structure`` is already the standard
    primitive cell, so the two agree there). Each caller keeps the choice its results were computed with.
    """
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    unitcell = PhonopyAtoms(symbols=[site.specie.symbol for site in structure], cell=structure.lattice.matrix,
                            scaled_positions=structure.frac_coords)
    phonon = Phonopy(unitcell, supercell_matrix=np.diag(diagonal), primitive_matrix=primitive_matrix, symprec=symprec)
    phonon.generate_displacements(distance=displacement_ang)
    return phonon
