"""The backend hierarchy: every energy/force code the stages compute with.

``Backend`` is what validate relaxes structures with: a name, options merged over its defaults
(``{**defaults, **user}``, atomate2's ``ForceFieldRelaxMaker``) and ``relax``. A new ML potential is a
small subclass of ``AseBackend`` that builds an ASE calculator (see ``chgnet.py``). ``DftBackend`` adds
what followup's steps need from a DFT code (relaxation, SCF, bands, forces, each in its own folder).
Register a backend in ``registry.BACKENDS``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
from pymatgen.core import Structure

from pccd_hpc.materials.errors import ValidationFailure
from pccd_hpc.materials.relax import RelaxConfig, RelaxResult, relax_structure


class Backend(ABC):
    """An energy model that validate can relax structures with."""

    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    runs_in_process: ClassVar[bool] = True
    """False for backends whose calculations run as separate cluster jobs (VASP)."""

    def __init__(self, **options: Any) -> None:
        unknown = set(options) - set(self.defaults)
        if unknown:
            raise ValueError(f"backend {self.name!r}: unknown options {sorted(unknown)}; known: {sorted(self.defaults)}")
        self.options: dict[str, Any] = {**self.defaults, **options}

    @abstractmethod
    def relax(self, structure: Structure, config: RelaxConfig, record_id: str) -> RelaxResult:
        """Relax ``structure`` and return its final structure and energy per atom."""


class AseBackend(Backend):
    """A backend defined by an ASE calculator; relaxation is shared (``relax.relax_structure``)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._calculator = None

    @abstractmethod
    def make_calculator(self):
        """Build the ASE calculator (called once per process, then reused)."""

    @property
    def calculator(self):
        """The process's ASE calculator, built on first use."""
        if self._calculator is None:
            self._calculator = self.make_calculator()
        return self._calculator

    def relax(self, structure: Structure, config: RelaxConfig, record_id: str) -> RelaxResult:
        """Relax with the shared guarded ASE loop."""
        return relax_structure(structure, self.calculator, config, record_id)


class DftSettings(Protocol):
    """The settings a DFT backend reads (followup's ``FollowupConfig`` has them all)."""

    backend: str
    ecut_ev: float
    kpoint_density_per_ang: float
    dos_kpoint_density_per_ang: float
    line_density: int
    smearing_ev: float
    n_empty_bands: int
    spin_polarized: bool
    relax_fmax_ev_per_ang: float
    relax_max_steps: int
    relax_cell: bool
    relax_timeout_s: float
    phonon_kpoint_density_per_ang: float | None
    vasp_user_incar: dict[str, Any]
    vasp_timeout_s: float


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


class DftBackend(Backend):
    """A DFT code behind followup's steps. Every ``*_in`` method and ``static``/``bands``/``forces`` works in (and
    may write into) ``folder`` and raises ``StepFailure`` naming the candidate and step."""

    def __init__(self, config: DftSettings | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.config = config
        """The campaign's settings (None where the backend only validates, e.g. VASP array jobs)."""

    def relax(self, structure: Structure, config: RelaxConfig, record_id: str) -> RelaxResult:
        """A DFT code relaxes in a folder (``relax_in``), not in validate's workers."""
        raise ValidationFailure(record_id, f"backend {self.name!r} relaxes only as a followup step, in its folder")

    @abstractmethod
    def relax_in(self, structure: Structure, folder: Path, candidate: str) -> RelaxResult:
        """Relax atoms and cell; raise ``StepFailure`` naming ``candidate`` on failure."""

    @abstractmethod
    def static(self, structure: Structure, folder: Path, candidate: str) -> StaticOutcome:
        """Self-consistent run, keeping what the band step needs (charge density) in ``folder``."""

    @abstractmethod
    def bands(self, structure: Structure, static_folder: Path, kpoints_frac: np.ndarray, labels: list[str],
              folder: Path, candidate: str) -> BandsOutcome:
        """Non-self-consistent eigenvalues along ``kpoints_frac`` and on a uniform mesh."""

    @abstractmethod
    def forces(self, supercell: Structure, folder: Path, candidate: str) -> np.ndarray:
        """Forces (n_atoms, 3) in eV/Å on a displaced supercell."""
