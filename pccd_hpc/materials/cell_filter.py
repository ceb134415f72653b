"""ASE's FrechetCellFilter with its 3x3 matrix functions computed from one eigendecomposition.

The filter relaxes the cell through the matrix logarithm of the deformation gradient and needs, on
every force call, the logarithm and nine directional (Fréchet) derivatives of the exponential. SciPy's
general-purpose ``logm`` and ``expm_frechet`` took a third of a CHGNet relaxation step on small cells.
For a diagonalizable 3x3 matrix ``A = V diag(l) V^-1`` both have closed forms:
``logm(A) = V diag(log l) V^-1`` and ``L_exp(A, E) = V ((V^-1 E V) * Phi) V^-1`` with
``Phi_ij = exp(l_j) expm1(l_i - l_j) / (l_i - l_j)`` (``exp(l_i)`` on the diagonal). Where the
eigenvectors are ill-conditioned or a logarithm would leave the reals, SciPy's functions are used,
so results never change beyond rounding; a test compares both on random deformations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.linalg import expm, expm_frechet, logm

MAX_CONDITION = 1e6


_LAST: dict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray] | None] = {}


def _eig(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Eigenvalues, eigenvectors and their inverse, or None when the eigenvectors are ill-conditioned.
    The last matrix's result is kept: the filter asks for nine derivatives at the same point."""
    key = np.ascontiguousarray(matrix, dtype=float).tobytes()
    if key in _LAST:
        return _LAST[key]
    values, vectors = np.linalg.eig(matrix)
    parts = None
    if np.all(np.isfinite(values)) and np.linalg.cond(vectors) <= MAX_CONDITION:
        parts = (values, vectors, np.linalg.inv(vectors))
    _LAST.clear()
    _LAST[key] = parts
    return parts


def logm_3x3(matrix: np.ndarray) -> np.ndarray:
    """Real matrix logarithm of a 3x3 matrix with eigenvalues off the closed negative real axis."""
    parts = _eig(matrix)
    if parts is None or np.any((np.abs(parts[0].imag) < 1e-12) & (parts[0].real <= 0)):
        return np.real(logm(matrix))
    values, vectors, inverse = parts
    result = vectors @ np.diag(np.log(values.astype(complex))) @ inverse
    if np.abs(result.imag).max() > 1e-9 * max(1.0, np.abs(result.real).max()):
        return np.real(logm(matrix))
    return result.real


def expm_frechet_3x3(matrix: np.ndarray, direction: np.ndarray, compute_expm: bool = True) -> Any:
    """Fréchet derivative of the matrix exponential at ``matrix`` along ``direction`` (SciPy's signature)."""
    parts = _eig(matrix)
    if parts is None:
        return expm_frechet(matrix, direction, compute_expm=compute_expm)
    values, vectors, inverse = parts
    diff = values[:, None] - values[None, :]
    small = np.abs(diff) < 1e-12
    ratio = np.where(small, 1.0, np.expm1(diff) / np.where(small, 1.0, diff))
    phi = np.exp(values)[None, :] * ratio
    derivative = (vectors @ ((inverse @ direction @ vectors) * phi) @ inverse).real
    return (expm(matrix), derivative) if compute_expm else derivative


def frechet_cell_filter(atoms, closed_form: bool = True, **kwargs: Any):
    """``FrechetCellFilter(atoms, **kwargs)`` using the closed forms above (when ``closed_form`` and ASE
    exposes its matrix functions: ASE 3.23+ keeps them on the filter's cell utility); the plain filter otherwise."""
    from ase.filters import FrechetCellFilter

    cell_filter = FrechetCellFilter(atoms, **kwargs)
    utility = getattr(cell_filter, "_utility", None)
    if closed_form and utility is not None and hasattr(utility, "logm") and hasattr(utility, "expm_frechet"):
        utility.logm, utility.expm_frechet = logm_3x3, expm_frechet_3x3
    return cell_filter
