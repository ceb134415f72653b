"""Configuration dataclasses of the validate stage, validated on construction."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from pccd_hpc.materials.relax import RelaxConfig
from pccd_hpc.stage_config import require

DEFAULT_MAX_SITES = 200
"""Default site limit of validate (``--max-sites``): MP-20 cells have at most 20 sites, generated ones 16."""
DEFAULT_MAX_MEMORY_GB = 8.0
"""Default memory limit per worker (``--max-memory-gb``) for one relaxation's estimated peak."""


@dataclass(frozen=True)
class PhononConfig:
    """Finite-displacement phonons with phonopy and the backend's forces."""

    min_length_ang: float = 10.0
    """Each supercell vector is repeated until the cell's perpendicular width is at least this."""
    displacement_ang: float = 0.01
    """Finite-displacement amplitude (phonopy default)."""
    mesh_length_ang: float = 20.0
    """q-mesh density as phonopy's length parameter (larger = denser)."""
    imaginary_tol_thz: float = 0.1
    """A mode counts as imaginary when its frequency is below ``-imaginary_tol_thz`` (phonopy
    reports imaginary frequencies as negative numbers). 0.1 THz (3.3 cm^-1) absorbs the
    numerical noise of the acoustic branches near Gamma."""
    fmax_ev_per_ang: float = 0.01
    """Tighter force threshold of the symmetry-constrained re-relaxation before phonons."""
    symprec: float = 0.01
    """Symmetry tolerance for FixSymmetry and phonopy."""
    max_supercell_atoms: int = 400
    """Refuse supercells above this size (the record's phonon result says why)."""

    def __post_init__(self) -> None:
        _positive(self, "min_length_ang", "displacement_ang", "mesh_length_ang", "fmax_ev_per_ang", "symprec")
        require(self.imaginary_tol_thz >= 0, "imaginary_tol_thz", f"must be >= 0, got {self.imaginary_tol_thz}")
        require(self.max_supercell_atoms >= 1, "max_supercell_atoms", f"must be >= 1, got {self.max_supercell_atoms}")


@dataclass(frozen=True)
class ValidateConfig:
    """Everything one validate task needs besides its input and output paths."""

    backend: str = "chgnet"
    """Energy/force backend name (``pccd_hpc.materials.backends.registry.RELAX_BACKENDS``)."""
    backend_options: dict[str, Any] = field(default_factory=dict)
    """Backend-specific options merged over its defaults (e.g. ``{"device": "cpu"}``)."""
    relax: RelaxConfig = field(default_factory=RelaxConfig)
    phonons: bool = False
    """Run phonopy on every relaxed candidate."""
    phonon: PhononConfig = field(default_factory=PhononConfig)
    band_structure_ids: tuple[str, ...] = ()
    """Candidates whose phonon band structure is plotted (PNG beside the records)."""
    workers: int = 1
    """Worker processes in this task (one torch thread each)."""
    stable_threshold_ev_per_atom: float = 0.1
    """E_hull below this counts as stable for the S.U.N. rate (MatterGen's convention)."""
    metastable_thresholds_ev_per_atom: tuple[float, ...] = (0.25, 0.08)
    """Extra E_hull fractions reported beside the paper (62.68 % < 0.25, 16.35 % < 0.08)."""
    min_bond_factor: float = 0.7
    """Plausibility bound: two atoms closer than this x the sum of their covalent radii. Before
    relaxation it marks a candidate implausible as generated (``plausible_initial``; it is still
    relaxed); after relaxation it makes the record ``unphysical``, kept out of the stable and
    S.U.N. counts. Every MP-20 structure passes 0.7 (``pccd_hpc.data.geometry``)."""
    no_relax_bond_factor: float = 0.5
    """Atoms this close (x the sum of covalent radii) sit on top of each other: the candidate is
    ``unphysical`` and not relaxed (such cells gave huge forces; a 0.05 A cell took 22 GB)."""
    max_relaxed_volume_ratio: float = 3.0
    """A relaxation that grows or shrinks the volume by more than this factor is ``unphysical``."""
    candidate_ids: tuple[str, ...] = ()
    """Validate only these candidates (``--ids``); empty: every candidate of the input."""
    candidate_limit: int | None = None
    """Validate only the first this many candidates, in input order, after ``candidate_ids`` (``--limit``); None: all."""
    max_sites: int = DEFAULT_MAX_SITES
    """Structures with more sites are not relaxed (the record says why, ``error_kind = "too_large"``)."""
    max_memory_gb: float = DEFAULT_MAX_MEMORY_GB
    """Structures whose estimated relaxation memory (:mod:`pccd_hpc.validate.limits`) passes this, per worker,
    are not relaxed (``too_large``)."""

    def __post_init__(self) -> None:
        require(bool(self.backend), "backend", "must be a backend name")
        require(self.workers >= 1, "workers", f"must be >= 1, got {self.workers}")
        require(0 < self.min_bond_factor < 2, "min_bond_factor", f"must be in (0, 2), got {self.min_bond_factor}")
        require(0 <= self.no_relax_bond_factor <= self.min_bond_factor, "no_relax_bond_factor",
                f"must be in [0, min_bond_factor], got {self.no_relax_bond_factor}")
        require(self.max_relaxed_volume_ratio > 1, "max_relaxed_volume_ratio",
                f"must be > 1, got {self.max_relaxed_volume_ratio}")
        require(self.max_sites >= 1, "max_sites", f"must be >= 1, got {self.max_sites}")
        require(self.max_memory_gb > 0, "max_memory_gb", f"must be > 0, got {self.max_memory_gb}")
        if not isinstance(self.relax, RelaxConfig):
            object.__setattr__(self, "relax", RelaxConfig(**self.relax))
        if not isinstance(self.phonon, PhononConfig):
            object.__setattr__(self, "phonon", PhononConfig(**self.phonon))
        require(self.candidate_limit is None or self.candidate_limit >= 1, "candidate_limit",
                f"must be None or >= 1, got {self.candidate_limit}")
        object.__setattr__(self, "band_structure_ids", tuple(self.band_structure_ids))
        object.__setattr__(self, "candidate_ids", tuple(self.candidate_ids))
        object.__setattr__(self, "metastable_thresholds_ev_per_atom", tuple(self.metastable_thresholds_ev_per_atom))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (round-trips through ``ValidateConfig.from_dict``)."""
        return dataclasses.asdict(self)

    def record_settings_sha256(self, kind: str) -> str:
        """Hash of the settings that decide a ``kind`` (candidate/reference) record's content; a rerun reuses
        only records with the same hash (workers, size limits, thresholds applied at finalize and plots do not count)."""
        from pccd_hpc.io_utils import settings_sha256

        return settings_sha256(self.record_settings(kind))

    def record_settings(self, kind: str) -> dict[str, Any]:
        """The settings :meth:`record_settings_sha256` hashes."""
        data = self.to_dict()
        keep = ["backend", "backend_options", "relax", "min_bond_factor", "no_relax_bond_factor",
                "max_relaxed_volume_ratio"]  # the size limits do not: a record they refused is always tried again
        if kind == "candidate":
            keep += ["phonons", "phonon"]
        return {key: data[key] for key in keep}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ValidateConfig":
        """Build a config from ``to_dict`` output."""
        return cls(**data)


def _positive(cfg: Any, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        require(value > 0, name, f"must be > 0, got {value}")
