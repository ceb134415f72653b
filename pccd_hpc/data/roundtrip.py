"""Does ``decode(encode(s))`` reproduce ``s``? A fast exact check with a StructureMatcher fallback."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure
from scipy.optimize import linear_sum_assignment

from pccd_hpc.data.codec import CodecConfig, EncodedStructure, decode_tensor, periodic_distances

# The tolerances the issue and the field use for "the same structure".
MATCHER_KWARGS = {"ltol": 0.3, "stol": 0.5, "angle_tol": 10.0}


def structure_matcher() -> StructureMatcher:
    """Return the StructureMatcher used for every match rate in this package."""
    return StructureMatcher(**MATCHER_KWARGS)


def match_sites(cost: np.ndarray, z_a: np.ndarray, z_b: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Pair sites ``a`` (n,) with sites ``b`` (n,) of the same species, minimising the summed ``cost`` (n, n).

    Returns the (rows, cols) of the Hungarian assignment, or None when the two species lists differ.
    """
    if sorted(np.asarray(z_a).tolist()) != sorted(np.asarray(z_b).tolist()):
        return None
    penalty = 1.0 + float(np.abs(cost).sum())  # larger than any assignment's cost: species never mix
    rows, cols = linear_sum_assignment(np.where(z_a[:, None] == z_b[None, :], cost, cost + penalty))
    return rows, cols


def coordinate_errors(true: Structure, pred: Structure) -> np.ndarray | None:
    """(n, 3) periodic fractional differences ``pred - true`` between one-to-one matched sites of the same species.

    Sites are paired by the Hungarian assignment on periodic fractional distance. Returns None when the
    two structures' species lists differ (different atom counts included).
    """
    zt = np.array([s.specie.Z for s in true])
    zp = np.array([s.specie.Z for s in pred])
    diff = pred.frac_coords[None, :, :] - true.frac_coords[:, None, :]
    diff -= np.round(diff)
    matched = match_sites(np.linalg.norm(diff, axis=-1), zt, zp)
    return None if matched is None else diff[matched]


def shifted_structure(structure: Structure, shift: np.ndarray) -> Structure:
    """``structure`` with ``shift`` (3,) added, mod 1, to every fractional coordinate (itself when the shift is 0)."""
    if not np.any(shift):
        return structure
    return Structure(structure.lattice, structure.species, np.mod(structure.frac_coords + shift, 1.0))


@dataclass
class RoundtripResult:
    """Outcome of one round trip."""

    matched: bool
    atom_count_matched: bool
    reason: str = ""


def _sites_identical(encoded: EncodedStructure, decoded: Structure, tol_ang: float) -> bool:
    """True when decoded has the encoded lattice and every site within ``tol_ang`` (same species)."""
    if len(decoded) != encoded.n_sites:
        return False
    d_params = np.concatenate([decoded.lattice.abc, decoded.lattice.angles])
    if not np.allclose(d_params, encoded.lattice_params, rtol=1e-4, atol=1e-3):
        return False
    decoded_z = np.array([site.specie.Z for site in decoded])
    encoded_z = encoded.element_z[encoded.slot_index]
    dist = periodic_distances(encoded.frac_coords, decoded.frac_coords, decoded.lattice.matrix)
    matched = match_sites(dist, encoded_z, decoded_z)
    if matched is None:
        return False
    return bool(dist[matched].max() <= tol_ang)


def check_roundtrip(
    original: Structure, encoded: EncodedStructure, config: CodecConfig, matcher: StructureMatcher | None = None
) -> RoundtripResult:
    """Decode ``encoded`` and compare it with ``original``.

    The fast path proves identity site by site (which implies a StructureMatcher match); only
    when it fails is pymatgen's StructureMatcher(ltol=0.3, stol=0.5, angle_tol=10) asked.
    """
    result = decode_tensor(encoded.tensor, encoded.element_z, config)
    if result.structure is None:
        return RoundtripResult(False, False, f"decode rejected: {result.reason} ({result.detail})")
    decoded = result.structure
    count_ok = len(decoded) == len(original)
    if _sites_identical(encoded, decoded, tol_ang=1e-3):
        return RoundtripResult(True, count_ok)
    matcher = matcher or structure_matcher()
    if matcher.fit(original, decoded):
        return RoundtripResult(True, count_ok)
    return RoundtripResult(False, count_ok, f"StructureMatcher found no match ({len(decoded)} vs {len(original)} sites)")
