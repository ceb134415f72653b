"""Physical plausibility of a crystal's geometry: interatomic distances against covalent radii.

A structure is *plausible* when every pair of atoms (minimum image, all periodic images within the
cut-off) is at least ``factor`` x (r_i + r_j) apart, with r the covalent radii of Cordero et al.
(2008) as tabulated by pymatgen (``CovalentRadius.radius``). Real crystals of MP-20 all pass at
``factor = 0.7``; overlapping or half-merged atoms (the typical failure of a point-cloud decoder)
do not. The 0.5 A rule of the codec is far weaker: it accepts atoms at a third of a bond length.
"""

from __future__ import annotations

import math

import numpy as np
from pymatgen.analysis.molecule_structure_comparator import CovalentRadius
from pymatgen.core import Structure

PLAUSIBLE_BOND_FACTOR = 0.7
"""Default lower bound on d_ij / (r_i + r_j) for every atom pair."""

_FALLBACK_RADIUS_ANG = 1.5
"""Radius used for an element missing from the table (none of Z <= 96 is)."""


def covalent_radius_ang(symbol: str) -> float:
    """Covalent radius in Angstrom of an element symbol (Cordero 2008, pymatgen's table)."""
    return float(CovalentRadius.radius.get(symbol, _FALLBACK_RADIUS_ANG))


_MAX_CUTOFF_ANG = 64.0
"""Beyond this no pair is searched (``min_bond_ratio`` returns ``inf``)."""


def min_bond_ratio(structure: Structure) -> float:
    """Smallest d_ij / (r_i + r_j) over all atom pairs including periodic images (exact, also above 1).

    Self-images (an atom and its own copy one lattice vector away) count too: a cell shorter than
    an atom's diameter is as unphysical as two overlapping atoms. ``inf`` only when no pair lies
    within 64 A.
    """
    if len(structure) == 0:
        raise ValueError("empty structure has no bonds")
    radii = np.array([covalent_radius_ang(site.specie.symbol) for site in structure])
    two_r_max = 2.0 * float(radii.max())
    cutoff = two_r_max + 1e-6  # a ratio < 1 needs d < r_i + r_j <= 2 r_max
    while cutoff <= _MAX_CUTOFF_ANG:
        centers, points, _images, dists = structure.get_neighbor_list(cutoff)
        if len(dists):
            best = float((dists / (radii[centers] + radii[points])).min())
            # a pair beyond the cut-off has a ratio above cutoff / (2 r_max): the minimum is exact below that
            if best <= cutoff / two_r_max:
                return best
        cutoff *= 2.0
    return math.inf


def is_plausible(structure: Structure, factor: float = PLAUSIBLE_BOND_FACTOR) -> bool:
    """True when every interatomic distance is at least ``factor`` x the sum of covalent radii."""
    return min_bond_ratio(structure) >= factor


def shortest_distance_ang(structure: Structure) -> float:
    """Shortest interatomic distance in Angstrom (periodic images included); ``inf`` when none is below 8 A."""
    if len(structure) == 0:
        raise ValueError("empty structure has no distances")
    _c, _p, _i, dists = structure.get_neighbor_list(8.0)
    return float(dists.min()) if len(dists) else math.inf


SUPERCELL_TOLERANCE_ANG = 0.25
"""Site tolerance (Angstrom) of :func:`is_supercell`: pymatgen's default for ``get_primitive_structure``."""


def is_supercell(structure: Structure, tolerance_ang: float = SUPERCELL_TOLERANCE_ANG) -> bool:
    """True when a smaller cell holds the same crystal (pymatgen's primitive cell has fewer sites).

    Real MP-20 cells are primitive; a generator can satisfy a large asked number of sites with a
    repeated small crystal, which this flags.
    """
    if len(structure) == 0:
        raise ValueError("empty structure has no primitive cell")
    return len(structure.get_primitive_structure(tolerance=tolerance_ang)) < len(structure)
