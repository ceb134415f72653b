"""The cell filter's closed-form 3x3 matrix functions against SciPy's, and the filter they go into."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import expm, expm_frechet, logm

from pccd_hpc.materials.cell_filter import expm_frechet_3x3, frechet_cell_filter, logm_3x3


@pytest.mark.parametrize("scale", [0.0, 1e-4, 0.05, 0.3])
def test_logm_and_frechet_derivative_match_scipy(scale: float) -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        deform = np.eye(3) + rng.normal(0.0, scale, (3, 3))
        log = logm_3x3(deform)
        assert np.allclose(log, np.real(logm(deform)), atol=1e-10)
        for mu in range(3):
            for nu in range(3):
                direction = np.zeros((3, 3))
                direction[mu, nu] = 1.0
                assert np.allclose(expm_frechet_3x3(log, direction, compute_expm=False),
                                   expm_frechet(log, direction, compute_expm=False), atol=1e-10)
        full_exp, derivative = expm_frechet_3x3(log, np.eye(3))
        assert np.allclose(full_exp, expm(log)) and np.allclose(derivative, expm(log), atol=1e-10)


def test_defective_and_rotation_matrices_fall_back_or_stay_real() -> None:
    jordan = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.2]])  # not diagonalizable: SciPy's path
    assert np.allclose(logm_3x3(jordan), np.real(logm(jordan)), atol=1e-10)
    angle = 0.4
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1.0]])
    log = logm_3x3(rotation)  # complex eigenvalues, real logarithm
    assert np.isrealobj(log) and np.allclose(log, np.real(logm(rotation)), atol=1e-10)


def test_filter_uses_the_closed_forms_and_gives_ases_positions_and_forces() -> None:
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.filters import FrechetCellFilter

    atoms = bulk("Cu", "fcc", a=3.7, cubic=True)
    atoms.set_cell(atoms.cell * [1.03, 0.98, 1.01], scale_atoms=True)
    atoms.rattle(0.02, seed=1)
    atoms.calc = EMT()
    fast, plain = frechet_cell_filter(atoms), FrechetCellFilter(atoms.copy())
    plain.atoms.calc = EMT()
    assert fast._utility.logm is logm_3x3  # the closed forms are in place on this ASE
    assert np.allclose(fast.get_positions(), plain.get_positions(), atol=1e-10)
    assert np.allclose(fast.get_forces(), plain.get_forces(), atol=1e-8)
