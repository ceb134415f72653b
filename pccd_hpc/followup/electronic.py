"""Band gap and DOS from eigenvalues (pure functions; the gap itself is pymatgen's)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pymatgen.core import Structure

from pccd_hpc.materials.kpath import BandPath


def band_edges(path_eigs: np.ndarray, mesh_eigs: np.ndarray, n_electrons: float, spin_polarized: bool) -> tuple[float, float] | None:
    """(VBM, CBM) over path and mesh for a non-magnetic even-electron count; None otherwise."""
    if spin_polarized or path_eigs.shape[0] != 1 or abs(n_electrons / 2 - round(n_electrons / 2)) > 1e-6:
        return None
    n_occ = int(round(n_electrons / 2))
    all_eigs = np.concatenate([path_eigs.reshape(-1, path_eigs.shape[-1]), mesh_eigs.reshape(-1, mesh_eigs.shape[-1])])
    if n_occ < 1 or n_occ >= all_eigs.shape[1]:
        return None
    return float(all_eigs[:, n_occ - 1].max()), float(all_eigs[:, n_occ].min())


def reference_energy(efermi_ev: float, edges: tuple[float, float] | None) -> float:
    """Mid-gap for an insulator (robust gap detection), the SCF Fermi level otherwise."""
    if edges is not None and edges[1] > edges[0]:
        return 0.5 * (edges[0] + edges[1])
    return efermi_ev


def band_structure(structure: Structure, path: BandPath, path_eigs: np.ndarray, efermi_ev: float):
    """A pymatgen ``BandStructureSymmLine`` of ``path_eigs`` (n_spin, n_k, n_bands) along ``path``."""
    from pymatgen.electronic_structure.bandstructure import BandStructureSymmLine
    from pymatgen.electronic_structure.core import Spin

    spins = [Spin.up, Spin.down][: path_eigs.shape[0]]
    eigenvals = {spin: np.asarray(path_eigs[i]).T for i, spin in enumerate(spins)}  # (n_bands, n_k)
    labels_dict: dict[str, Any] = {}
    for k, label in zip(path.kpoints_frac, path.labels):
        if label:
            labels_dict[label] = k
    return BandStructureSymmLine(list(path.kpoints_frac), eigenvals, structure.lattice.reciprocal_lattice, efermi_ev,
                                 labels_dict, structure=structure)


def gap_summary(bs) -> dict[str, Any]:
    """Gap (eV), direct or not, the transition, and the smallest direct gap, from pymatgen."""
    if bs.is_metal():
        return {"is_metal": True, "band_gap_ev": 0.0, "gap_is_direct": None, "gap_transition": None, "direct_gap_ev": None}
    gap = bs.get_band_gap()
    return {"is_metal": False, "band_gap_ev": float(gap["energy"]), "gap_is_direct": bool(gap["direct"]),
            "gap_transition": gap["transition"], "direct_gap_ev": float(bs.get_direct_band_gap())}


def gaussian_dos(mesh_eigs: np.ndarray, weights: np.ndarray, sigma_ev: float, n_points: int = 1500,
                 window_ev: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Total DOS (states/eV/cell, spins summed; 2 per band without spin) on an energy grid."""
    n_spin = mesh_eigs.shape[0]
    lo = float(mesh_eigs.min()) - 5 * sigma_ev if window_ev is None else window_ev[0]
    hi = float(mesh_eigs.max()) + 5 * sigma_ev if window_ev is None else window_ev[1]
    energies = np.linspace(lo, hi, n_points)
    dos = np.zeros_like(energies)
    occupancy = 2.0 if n_spin == 1 else 1.0
    norm = occupancy / (sigma_ev * np.sqrt(2 * np.pi))
    for s in range(n_spin):
        for k, w in enumerate(weights):
            diff = energies[:, None] - mesh_eigs[s, k][None, :]
            dos += w * norm * np.exp(-0.5 * (diff / sigma_ev) ** 2).sum(axis=1)
    return energies, dos
