"""Minimum-separation "push-apart" of a crystal's atoms (the hard-sphere step of AIRSS, Pickard & Needs 2011).

A generated structure often has two atoms far closer than any bond (the diffusion model learns lattices,
compositions and the codec's atom blocks long before it learns where atoms sit relative to each other).
``push_apart`` moves atoms apart, keeping the lattice, until every pair (periodic images included) is at
least ``factor`` x (r_i + r_j) apart, r the covalent radii of :mod:`pccd_hpc.data.geometry`. Where the
cell is too small for its atoms it is expanded isotropically a few percent at a time, up to
``max_length_scale``. The search runs in the Niggli-reduced cell (so that 27 images hold every nearest
neighbour), but the result is written in the input's own cell vectors and site order: a sampled
structure keeps the frame the model made it in, so it can be compared site by site with a reference. The result keeps composition, lattice shape and the sampled arrangement as far
as the separations allow; it is a starting point for relaxation (as in AIRSS), not a relaxed crystal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from pymatgen.core import Lattice, Structure

from pccd_hpc.data.codec import IMAGES as _IMAGES
from pccd_hpc.data.codec import CodecConfig, DecodeResult, closest_pair_ang, decode_tensor
from pccd_hpc.data.geometry import covalent_radius_ang, min_bond_ratio

PUSH_APART_FACTOR = 0.8
"""Separation the push-apart reaches unless told otherwise: d_ij >= 0.8 x (r_i + r_j) (generate, reconstruct, evaluate)."""
_ZERO_IMAGE = 13  # the (0, 0, 0) offset in _IMAGES
_TOLERANCE_ANG = 1e-3
_EXPANSION_STEP = 1.05


@dataclass(frozen=True)
class SeparationResult:
    """What :func:`push_apart` did to one structure."""

    structure: Structure
    """The pushed-apart structure, in the input's cell vectors and site order (scaled by ``length_scale``)."""
    converged: bool
    """Every pair now satisfies the separation (checked independently with ``min_bond_ratio``)."""
    min_bond_ratio_before: float
    """Smallest d_ij / (r_i + r_j) of the input structure."""
    min_bond_ratio_after: float
    """The same of the result."""
    length_scale: float
    """Isotropic factor applied to the lattice lengths (1.0: cell unchanged)."""
    max_shift_ang: float
    """Largest displacement of an atom in Angstrom, measured in the final (possibly expanded) cell."""


def _separate(frac: np.ndarray, matrix: np.ndarray, target: np.ndarray, iterations: int) -> tuple[np.ndarray, bool]:
    """Move fractional coordinates (n, 3) so that all pair distances in ``matrix`` reach ``target`` (n, n)."""
    inverse = np.linalg.inv(matrix)
    n = len(frac)
    frac = frac.copy()
    for _ in range(iterations):
        diff = frac[:, None, :] - frac[None, :, :]
        diff -= np.round(diff)
        cart = (diff[None] + _IMAGES[:, None, None, :]) @ matrix  # (27, n, n, 3): vector from j (imaged) to i
        dist = np.linalg.norm(cart, axis=-1)
        dist[_ZERO_IMAGE, np.arange(n), np.arange(n)] = np.inf  # an atom and itself
        violation = np.maximum(target[None] - dist, 0.0)
        if violation.max() < _TOLERANCE_ANG:
            return frac, True
        unit = cart / np.maximum(dist, 1e-9)[..., None]
        coincident = dist < 1e-6  # no direction to push along: part such a pair along a fixed axis
        if coincident.any():
            sign = np.sign(np.arange(n)[:, None] - np.arange(n)[None, :])[None].repeat(len(_IMAGES), 0)
            unit[coincident] = sign[coincident][:, None] * np.array([1.0, 1.0, 1.0]) / np.sqrt(3.0)
        # each atom of a too-close pair takes half of the missing distance (its partner the other half)
        shift = (0.5 * violation[..., None] * unit).sum(axis=(0, 2))
        frac = np.mod(frac + shift @ inverse, 1.0)
    return frac, False


def push_apart(structure: Structure, factor: float = PUSH_APART_FACTOR, max_length_scale: float = 1.3,
               iterations: int = 300) -> SeparationResult:
    """Push the atoms of ``structure`` apart until every d_ij >= ``factor`` x (r_i + r_j) (periodic images included).

    The lattice is kept while atoms alone can be moved apart; otherwise it is scaled up by 5 % at a
    time up to ``max_length_scale`` in length. ``converged`` is False when even that did not reach the
    separation; the returned structure is then the last attempt.
    """
    if not factor > 0:
        raise ValueError(f"factor must be > 0, got {factor}")
    if not max_length_scale >= 1.0:
        raise ValueError(f"max_length_scale must be >= 1, got {max_length_scale}")
    if len(structure) == 0:
        raise ValueError("empty structure")
    before = min_bond_ratio(structure)
    reduced = structure.get_reduced_structure()
    radii = np.array([covalent_radius_ang(site.specie.symbol) for site in reduced])
    target = factor * (radii[:, None] + radii[None, :])
    start = np.mod(reduced.frac_coords, 1.0)
    matrix = reduced.lattice.matrix
    scale, frac = 1.0, start
    while True:
        frac, done = _separate(frac, matrix * scale, target, iterations)
        if done or scale * _EXPANSION_STEP > max_length_scale + 1e-9:
            break
        scale *= _EXPANSION_STEP
    shift = frac - start
    shift -= np.round(shift)
    max_shift = float(np.linalg.norm(shift @ (matrix * scale), axis=1).max())
    # back to the input's cell vectors: each atom's displacement added to where it was in that cell
    original = structure.lattice.matrix * scale
    moved = np.mod(structure.frac_coords + (shift @ (matrix * scale)) @ np.linalg.inv(original), 1.0)
    result = Structure(Lattice(original), structure.species, moved)
    after = min_bond_ratio(result)
    return SeparationResult(result, bool(after >= factor - 0.01), before, after, scale, max_shift)


@dataclass(frozen=True)
class SeparatedDecode:
    """A tensor decoded, then (when asked) pushed apart: the final result and what was sampled."""

    result: DecodeResult
    """The final decode: the pushed-apart structure, or a rejection (the codec's rules hold for what is kept)."""
    sampled_valid: bool
    """The structure as sampled passed every codec rule (including the overlap rule) before any push-apart."""
    sampled_min_bond_ratio: float
    """min d_ij / (r_i + r_j) as sampled (NaN when nothing decoded)."""
    separation: SeparationResult | None
    """What the push-apart did (None without one, or when nothing decoded)."""


def decode_separated(tensor: np.ndarray, element_z: np.ndarray, codec: CodecConfig, factor: float | None,
                     require_all_elements: bool = False) -> SeparatedDecode:
    """Decode a (3, n_points, 3) tensor and push its atoms apart to ``factor`` x (r_i + r_j) (None: no push-apart).

    With a push-apart, atoms closer than the codec's ``min_distance_ang`` are kept at decoding (the model
    placed two atoms badly, it did not make one) and separated; the overlap rule then applies to the
    pushed-apart structure, so a structure the push-apart could not separate is still rejected.
    """
    if factor is None:
        result = decode_tensor(tensor, element_z, codec, require_all_elements)
        ratio = min_bond_ratio(result.structure) if result.structure is not None else math.nan
        return SeparatedDecode(result, result.valid, ratio, None)
    loose = decode_tensor(tensor, element_z, replace(codec, min_distance_ang=0.0), require_all_elements)
    if loose.structure is None:
        return SeparatedDecode(loose, False, math.nan, None)
    sampled = loose.structure
    sampled_valid = closest_pair_ang(sampled.frac_coords, sampled.lattice.matrix) >= codec.min_distance_ang
    separation = push_apart(sampled, factor)
    pushed = separation.structure
    closest = closest_pair_ang(pushed.frac_coords, pushed.lattice.matrix)
    if closest < codec.min_distance_ang:
        final = DecodeResult(None, "overlapping_atoms",
                             f"two atoms {closest:.2f} A apart after the push-apart", loose.n_atoms)
    else:
        final = DecodeResult(separation.structure, None, "", loose.n_atoms)
    return SeparatedDecode(final, sampled_valid, separation.min_bond_ratio_before, separation)
