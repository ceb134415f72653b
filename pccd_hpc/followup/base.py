"""What a followup DFT backend provides, and the errors and outcomes the steps exchange."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from pymatgen.core import Structure

from pccd_hpc.followup.config import FollowupConfig


class StepFailure(Exception):
    """One step of one candidate failed; the message names both. The batch records it and goes on."""

    def __init__(self, candidate: str, step: str, message: str) -> None:
        super().__init__(f"{candidate} [{step}]: {message}")
        self.candidate = candidate
        self.step = step
        self.message = message


@dataclass
class RelaxOutcome:
    """A DFT relaxation."""

    structure: Structure
    energy_ev_per_atom: float
    converged: bool
    n_steps: int
    max_force_ev_per_ang: float


@dataclass
class StaticOutcome:
    """A self-consistent run on the standard primitive cell."""

    energy_ev_per_atom: float
    efermi_ev: float
    n_electrons: float


@dataclass
class BandsOutcome:
    """Eigenvalues along the path and on a uniform mesh (eV), spin as the first axis."""

    path_eigenvalues_ev: np.ndarray
    """(n_spin, n_k_path, n_bands)."""
    mesh_eigenvalues_ev: np.ndarray
    """(n_spin, n_k_mesh, n_bands)."""
    mesh_weights: np.ndarray
    """(n_k_mesh,) k-point weights summing to 1."""
    efermi_ev: float
    """Fermi level of the SCF run."""
    n_electrons: float
    path_kpoints_frac: np.ndarray | None = None
    """The path the code actually ran, when it chose its own (VASP line mode); None: the one asked for."""
    path_labels: list[str] | None = None
    """Labels of ``path_kpoints_frac`` ('' for unlabelled points)."""


class DftBackend:
    """A DFT code behind the followup steps. Every method works in (and may write into) ``folder``."""

    name: ClassVar[str] = "base"

    def __init__(self, config: FollowupConfig) -> None:
        self.config = config

    def relax(self, structure: Structure, folder: Path, candidate: str) -> RelaxOutcome:
        """Relax atoms and cell; raise ``StepFailure`` naming ``candidate`` on failure."""
        raise NotImplementedError

    def static(self, structure: Structure, folder: Path, candidate: str) -> StaticOutcome:
        """Self-consistent run, keeping what the band step needs (charge density) in ``folder``."""
        raise NotImplementedError

    def bands(self, structure: Structure, static_folder: Path, kpoints_frac: np.ndarray, labels: list[str],
              folder: Path, candidate: str) -> BandsOutcome:
        """Non-self-consistent eigenvalues along ``kpoints_frac`` and on a uniform mesh."""
        raise NotImplementedError

    def forces(self, supercell: Structure, folder: Path, candidate: str) -> np.ndarray:
        """Forces (n_atoms, 3) in eV/Å on a displaced supercell."""
        raise NotImplementedError
