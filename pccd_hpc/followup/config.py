"""Settings of the ``followup`` DFT campaign (relax -> static -> bands -> phonons -> figure), validated."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from pccd_hpc.materials.backends.registry import DFT_BACKENDS



@dataclass(frozen=True)
class FollowupConfig:
    """Everything a followup step needs besides its folder; written to ``FDIR/config.json``.

    Defaults are production-like for small cells (a few minutes per 2-atom cell on one core with
    GPAW); tests and quick looks lower ``ecut_ev`` and the k-point densities.
    """

    backend: str = "gpaw"
    """DFT backend: ``gpaw`` (in process, open source) or ``vasp`` (runs ``VASP_CMD`` per step)."""
    ecut_ev: float = 400.0
    """GPAW plane-wave cutoff (eV). VASP uses the Materials Project input sets' ENCUT (520 eV)."""
    kpoint_density_per_ang: float = 3.0
    """GPAW SCF/force k-mesh: points per reciprocal Å (ASE ``kpts={'density': ...}``), Gamma-centred."""
    dos_kpoint_density_per_ang: float = 5.0
    """GPAW uniform non-SCF mesh for the DOS (points per reciprocal Å)."""
    line_density: int = 20
    """k-points per reciprocal Å along the high-symmetry path (pymatgen ``HighSymmKpath.get_kpoints``)."""
    kpath_type: str = "setyawan_curtarolo"
    """High-symmetry path convention: ``setyawan_curtarolo`` or ``hinuma``."""
    smearing_ev: float = 0.05
    """Fermi-Dirac width (GPAW) for the SCF."""
    n_empty_bands: int = 8
    """Bands above the occupied ones in the band-structure and DOS runs."""
    dos_sigma_ev: float = 0.1
    """Gaussian broadening of the electronic DOS."""
    spin_polarized: bool = False
    """Collinear spin polarisation (GPAW: magnetic moments from pymatgen/ASE defaults)."""
    relax_fmax_ev_per_ang: float = 0.05
    """Force threshold of the DFT relaxation (atoms and cell, FrechetCellFilter)."""
    relax_max_steps: int = 60
    """Step cap of the DFT relaxation; hitting it marks the relaxation not converged (it still counts)."""
    relax_cell: bool = True
    """Relax the cell as well as the positions."""
    relax_timeout_s: float = 6 * 3600.0
    """Wall-clock limit of one relaxation."""
    symprec: float = 0.01
    """Symmetry tolerance (Å) for the standard primitive cell and phonopy."""
    phonon_min_length_ang: float = 8.0
    """Phonon supercell: repeat until each perpendicular width is at least this (Å)."""
    phonon_displacement_ang: float = 0.01
    """Finite-displacement amplitude (Å, phonopy default)."""
    phonon_kpoint_density_per_ang: float | None = None
    """GPAW k density for the displaced supercells (None: ``kpoint_density_per_ang``); supercells
    need fewer k-points for the same sampling, and the forces dominate the cost."""
    phonon_max_supercell_atoms: int = 200
    """Refuse larger phonon supercells (the step fails with the reason)."""
    phonon_mesh: tuple[int, int, int] = (12, 12, 12)
    """q-mesh for the phonon DOS and the lowest frequency."""
    imaginary_tol_thz: float = 0.1
    """A mode below ``-imaginary_tol_thz`` counts as imaginary (acoustic noise near Gamma is absorbed)."""
    vasp_user_incar: dict[str, Any] = field(default_factory=dict)
    """INCAR settings merged over every Materials Project input set (VASP backend)."""
    vasp_timeout_s: float = 48 * 3600.0
    """Wall-clock limit of one ``VASP_CMD`` run."""

    def __post_init__(self) -> None:
        if self.backend not in DFT_BACKENDS:
            raise ValueError(f"FollowupConfig.backend must be one of {DFT_BACKENDS}, got {self.backend!r}")
        if self.kpath_type not in ("setyawan_curtarolo", "hinuma"):
            raise ValueError(f"FollowupConfig.kpath_type must be setyawan_curtarolo or hinuma, got {self.kpath_type!r}")
        for name in ("ecut_ev", "kpoint_density_per_ang", "dos_kpoint_density_per_ang", "smearing_ev", "dos_sigma_ev",
                     "relax_fmax_ev_per_ang", "relax_timeout_s", "symprec", "phonon_min_length_ang",
                     "phonon_displacement_ang", "vasp_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"FollowupConfig.{name} must be > 0, got {value!r}")
        if self.phonon_kpoint_density_per_ang is not None and not self.phonon_kpoint_density_per_ang > 0:
            raise ValueError(f"FollowupConfig.phonon_kpoint_density_per_ang must be > 0 or None, "
                             f"got {self.phonon_kpoint_density_per_ang!r}")
        for name in ("line_density", "n_empty_bands", "relax_max_steps", "phonon_max_supercell_atoms"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"FollowupConfig.{name} must be an integer >= 1, got {value!r}")
        if self.imaginary_tol_thz < 0:
            raise ValueError(f"FollowupConfig.imaginary_tol_thz must be >= 0, got {self.imaginary_tol_thz}")
        mesh = tuple(self.phonon_mesh)
        if len(mesh) != 3 or any(not isinstance(m, int) or m < 1 for m in mesh):
            raise ValueError(f"FollowupConfig.phonon_mesh must be three integers >= 1, got {self.phonon_mesh!r}")
        object.__setattr__(self, "phonon_mesh", mesh)
        object.__setattr__(self, "vasp_user_incar", dict(self.vasp_user_incar))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (round-trips through ``from_dict``)."""
        data = dataclasses.asdict(self)
        data["phonon_mesh"] = list(self.phonon_mesh)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FollowupConfig":
        """Build a config from ``to_dict`` output; unknown keys raise ``ValueError`` naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"FollowupConfig: unknown field(s) {unknown}")
        data = dict(data)
        if "phonon_mesh" in data:
            data["phonon_mesh"] = tuple(data["phonon_mesh"])
        return cls(**data)


def quick_config(backend: str = "gpaw") -> FollowupConfig:
    """A coarse preset for tests and first looks (2-atom cell: about a minute on one core with GPAW).

    It relaxes positions only: at 250-300 eV the Pulay stress of semicore setups (e.g. Mg) reached
    ~200 GPa on a generated MgO2 cell, and a cell relaxation then shrank it while the energy rose.
    """
    return FollowupConfig(backend=backend, ecut_ev=250.0, kpoint_density_per_ang=2.0, dos_kpoint_density_per_ang=3.0,
                          line_density=10, n_empty_bands=4, relax_max_steps=8, relax_cell=False, phonon_min_length_ang=5.0,
                          phonon_kpoint_density_per_ang=1.0,
                          phonon_mesh=(8, 8, 8))
