"""What validate computes about one structure: the job it starts from and the typed record it ends with.

A :class:`ValidationRecord` is created by :meth:`ValidationRecord.for_job` with every result
empty, filled by the runner (relaxation, geometry checks, phonons) or the VASP parser, and given
its hull status, uniqueness and novelty by finalize. The record store writes it as one JSON
file (:meth:`to_dict`) and reads it back (:meth:`from_dict`); ``results.csv`` is a selection of
its fields.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymatgen.core import Structure


@dataclass(frozen=True)
class Job:
    """One structure to compute: a candidate (relax + optional phonons) or a reference (relax)."""

    record_id: str
    kind: str
    """``candidate`` or ``reference``."""
    structure: Structure
    note: str = ""


def structure_fingerprint(structure: Structure) -> str:
    """A short hash of lattice, species and fractional coordinates (detects a changed input)."""
    payload = json.dumps(
        [np.round(structure.lattice.matrix, 5).tolist(), [s.species_string for s in structure],
         np.round(structure.frac_coords % 1.0, 5).tolist()]
    )
    return hashlib.sha1(payload.encode()).hexdigest()[:16]


@dataclass
class ValidationRecord:
    """The result of validating one structure (JSON-safe fields; None means not computed)."""

    id: str
    kind: str
    """``candidate`` or ``reference``."""
    formula: str
    """Reduced formula."""
    composition: str
    """Full formula of the cell (the hull reads the composition from it)."""
    n_sites: int
    backend: str
    structure_sha: str
    """:func:`structure_fingerprint` of the input; a changed input is computed again."""
    initial_cif: str
    note: str = ""
    """Where the structure came from when it is not the user's (e.g. an elemental fallback reference)."""
    energy_ev_per_atom: float | None = None
    converged: bool = False
    n_steps: int | None = None
    max_force_ev_per_ang: float | None = None
    wall_s: float | None = None
    relaxed_cif: str | None = None
    error: str | None = None
    """Why the relaxation failed (names the record), or None."""
    error_kind: str | None = None
    """Short key of the failure (``timeout``, ``not_converged``, ``unphysical_initial``, ``worker_died``, ...)."""
    unphysical: bool = False
    unphysical_reason: str | None = None
    plausible_initial: bool | None = None
    """Whether the input passed the plausibility check (every bond >= ``min_bond_factor`` x covalent radii)."""
    min_bond_ratio_initial: float | None = None
    min_bond_ratio_relaxed: float | None = None
    imaginary_modes: bool | None = None
    min_frequency_thz: float | None = None
    phonon_error: str | None = None
    phonon_n_displacements: int | None = None
    phonon_supercell: list[int] | None = None
    phonon_wall_s: float | None = None
    vasp_folder: str | None = None
    """The VASP run folder the energy was parsed from (VASP backend)."""
    formation_energy_ev_per_atom: float | None = None
    """Set by finalize on the DFT hull: the backend energy as a formation energy (fitted element energies)."""
    hull_decomposition: str | None = None
    """Set by finalize: the hull phases the composition would split into, with atom fractions and ids."""
    e_above_hull_ev_per_atom: float | None = None
    hull_status: str | None = None
    """Set by finalize: ``ok``, ``failed``, ``unphysical`` or ``no_hull``."""
    hull_note: str | None = None
    is_unique: bool | None = None
    is_novel: bool | None = None
    """Structure not matched in the training set (None: no training set given)."""
    is_novel_composition: bool | None = None
    """Reduced formula not among the compositions of MP-20's 45,229 entries."""
    space_group_initial: str | None = None
    """Space group of the input (spglib at :data:`pccd_hpc.data.symmetry.SYMPREC_ANG`), or None when not found."""
    space_group_number_initial: int | None = None
    space_group_relaxed: str | None = None
    """Space group of the relaxed structure (same tolerance), or None."""
    space_group_number_relaxed: int | None = None
    symmetrized_cif: str | None = None
    """The relaxed structure refined to ``space_group_relaxed`` (conventional cell, symmetric positions)."""
    settings_sha256: str | None = None
    """Hash of the validate settings that computed it (:meth:`ValidateConfig.record_settings_sha256`); a rerun
    with other settings does not reuse it."""
    checksum: str | None = None
    """sha256 of every other field, set when the store writes it; a record that fails it is computed again."""

    @classmethod
    def for_job(cls, job: Job, backend: str) -> "ValidationRecord":
        """A record for ``job`` with every result field empty."""
        s = job.structure
        return cls(id=job.record_id, kind=job.kind, formula=s.composition.reduced_formula,
                   composition=s.composition.formula, n_sites=len(s), backend=backend,
                   structure_sha=structure_fingerprint(s), initial_cif=s.to(fmt="cif"), note=job.note)

    def fail(self, error: str, kind: str) -> None:
        """Record a failure (``error`` names the record) of kind ``kind``."""
        self.error, self.error_kind = error, kind

    @property
    def final_structure(self) -> Structure:
        """The relaxed structure, or the initial one when the relaxation gave none."""
        return Structure.from_str(self.relaxed_cif or self.initial_cif, fmt="cif")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict (what the record file holds)."""
        return dataclasses.asdict(self)

    def content_checksum(self) -> str:
        """sha256 of every field but ``checksum`` (JSON, sorted keys): what :attr:`checksum` must equal."""
        return record_checksum(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "") -> "ValidationRecord":
        """Read a record back; ``ValueError`` naming ``source`` when a field is missing or unknown."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{source or data.get('id')}: unknown record field(s) {unknown}")
        try:
            return cls(**data)
        except TypeError as err:
            raise ValueError(f"{source or data.get('id')}: not a validation record ({err})") from err


def record_checksum(data: dict[str, Any]) -> str:
    """sha256 of a record dict without its ``checksum`` entry (the same before writing and after reading back)."""
    from pccd_hpc.io_utils import settings_sha256

    return settings_sha256({k: v for k, v in data.items() if k != "checksum"})
