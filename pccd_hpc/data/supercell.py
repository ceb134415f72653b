"""Supercell augmentation: a crystal's sites in a cell doubled along one lattice vector.

A 2x1x1 supercell is the same crystal (the same bonds, density and energy per atom) with twice the
sites, so a crystal of at most ``max_sites / 2`` sites gives the network a larger-cell example whose
geometry is real. The doubled cell is Niggli-reduced like every encoded cell (the codec's
``niggli_reduce``), so its lattice follows the same conventions as the stored records.
"""

from __future__ import annotations

import numpy as np
from pymatgen.core import Lattice


def doubled_cell_sites(
    frac_coords: np.ndarray, slot_index: np.ndarray, lattice_params: np.ndarray, axis: int, niggli_reduce: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sites of the supercell doubled along lattice vector ``axis`` (0, 1 or 2).

    ``frac_coords`` (n, 3), ``slot_index`` (n,), ``lattice_params`` (6,) as (a, b, c) in Angstrom and
    (alpha, beta, gamma) in degrees. Returns ``(frac (2n, 3) in [0, 1), slots (2n,), lattice_params (6,))``;
    site ``i < n`` is the original site ``i``, site ``n + i`` its copy one old lattice vector away.
    """
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis!r}")
    frac = np.asarray(frac_coords, dtype=np.float64)
    scale = np.ones(3)
    scale[axis] = 2.0
    offset = np.zeros(3)
    offset[axis] = 1.0
    big_frac = np.concatenate([frac, frac + offset]) / scale
    lattice = Lattice.from_parameters(*np.asarray(lattice_params, dtype=np.float64))
    big = Lattice(lattice.matrix * scale[:, None])
    if niggli_reduce:
        reduced = big.get_niggli_reduced_lattice()
        big_frac = reduced.get_fractional_coords(big.get_cartesian_coords(big_frac))
        big = reduced
    big_frac = np.mod(big_frac, 1.0)
    big_frac[big_frac >= 1.0] = 0.0  # np.mod can return 1.0 for tiny negative inputs
    params = np.array([*big.abc, *big.angles], dtype=np.float64)
    return big_frac, np.concatenate([slot_index, slot_index]), params
