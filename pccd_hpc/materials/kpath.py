"""The standard primitive cell, its high-symmetry path, and path distances for band plots (pure functions)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Structure


@dataclass(frozen=True)
class BandPath:
    """k-points along the high-symmetry path of ``structure`` (fractional, in its reciprocal basis)."""

    kpoints_frac: np.ndarray
    """(n_k, 3) fractional coordinates; branch ends appear twice, as pymatgen writes them."""
    labels: list[str]
    """One label per k-point ('' for unlabelled points)."""
    distances: np.ndarray
    """(n_k,) cumulative path length in 1/Å (2π included); no length across a jump such as U|K."""
    breaks: list[int]
    """Indices i where the path jumps between i-1 and i (start of a new branch)."""

    def ticks(self) -> list[tuple[float, str]]:
        """(x, label) of every labelled point, jumps merged as 'U|K'."""
        out: list[tuple[float, str]] = []
        for i, label in enumerate(self.labels):
            if not label:
                continue
            x = float(self.distances[i])
            if out and abs(out[-1][0] - x) < 1e-9:
                if out[-1][1] != label:
                    out[-1] = (x, f"{out[-1][1]}|{label}")
            else:
                out.append((x, label))
        return out


def standard_primitive(structure: Structure, symprec: float = 0.01, path_type: str = "setyawan_curtarolo") -> Structure:
    """The cell in which ``path_type``'s path is defined (Setyawan-Curtarolo's standard primitive, or Hinuma's)."""
    from pymatgen.symmetry.bandstructure import HighSymmKpath

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kpath = HighSymmKpath(structure, path_type=path_type, symprec=symprec)
    return kpath.prim


def band_path(structure: Structure, line_density: int = 20, symprec: float = 0.01,
              path_type: str = "setyawan_curtarolo") -> BandPath:
    """The high-symmetry path of ``structure`` (which must already be ``standard_primitive``)."""
    from pymatgen.symmetry.bandstructure import HighSymmKpath

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kpath = HighSymmKpath(structure, path_type=path_type, symprec=symprec)
    if not np.allclose(kpath.prim.lattice.matrix, structure.lattice.matrix, atol=1e-4):
        raise ValueError(f"band_path: {structure.composition.reduced_formula} is not in the {path_type} standard "
                         "primitive cell; convert it with standard_primitive first")
    kpoints, labels = kpath.get_kpoints(line_density=line_density, coords_are_cartesian=False)
    kfrac = np.array([np.asarray(k, dtype=float) for k in kpoints])
    distances, breaks = path_distances(kfrac, labels, structure.lattice.reciprocal_lattice.matrix)
    return BandPath(kfrac, [str(label) for label in labels], distances, breaks)


def path_distances(kpoints_frac: np.ndarray, labels: list[str], reciprocal_matrix: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Cumulative Cartesian path length; two consecutive labelled points with different labels are a jump."""
    cart = np.asarray(kpoints_frac, dtype=float) @ np.asarray(reciprocal_matrix, dtype=float)
    distances = np.zeros(len(cart))
    breaks: list[int] = []
    for i in range(1, len(cart)):
        jump = bool(labels[i]) and bool(labels[i - 1]) and labels[i] != labels[i - 1]
        if jump:
            breaks.append(i)
            distances[i] = distances[i - 1]
        else:
            distances[i] = distances[i - 1] + float(np.linalg.norm(cart[i] - cart[i - 1]))
    return distances, breaks


def segments(values: np.ndarray, breaks: list[int]) -> list[slice]:
    """Slices of the path between jumps (for plotting lines that do not bridge a jump)."""
    edges = [0, *breaks, len(values)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]
