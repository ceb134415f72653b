"""Relax one structure with any ASE calculator (FrechetCellFilter + BFGS/FIRE), guarded: its settings, its result."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Structure

from pccd_hpc.materials.cell_filter import frechet_cell_filter
from pccd_hpc.materials.errors import RelaxationDiverged, RelaxationTimeout
from pccd_hpc.stage_config import require

log = logging.getLogger(__name__)

OPTIMIZERS = ("BFGS", "FIRE", "LBFGS")


@dataclass(frozen=True)
class RelaxConfig:
    """How an ASE-driven backend relaxes one structure."""

    optimizer: str = "BFGS"
    """ASE optimizer; BFGS relaxed our cells about 2x faster than FIRE with CHGNet."""
    fmax_ev_per_ang: float = 0.05
    """Force convergence threshold (eV/Å) on atoms and the FrechetCellFilter cell DOFs."""
    max_steps: int = 500
    """Step cap; a run that hits it is recorded as not converged."""
    relax_cell: bool = True
    """Relax the cell as well as positions (FrechetCellFilter)."""
    cell_filter_math: str = "closed-form"
    """How the cell filter's 3x3 matrix logarithm and exponential derivatives are computed: ``closed-form``
    (one eigendecomposition, :mod:`pccd_hpc.materials.cell_filter`) or ``scipy`` (ASE's own, slower)."""
    fix_symmetry: bool = False
    """Constrain to the symmetry found at ``symprec`` (ASE FixSymmetry)."""
    symprec: float = 0.01
    """Symmetry tolerance (Å) for ``fix_symmetry``."""
    timeout_s: float = 600.0
    """Wall-clock limit of one relaxation; past it the record fails as a timeout."""
    max_force_abort_ev_per_ang: float = 1.0e3
    """A force above this (or non-finite) means the potential exploded: the record fails."""
    max_volume_ratio: float = 5.0
    """The relaxation fails if the volume grows or shrinks by more than this factor."""

    def __post_init__(self) -> None:
        require(self.optimizer in OPTIMIZERS, "optimizer", f"must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        require(self.cell_filter_math in ("closed-form", "scipy"), "cell_filter_math",
                f"must be 'closed-form' or 'scipy', got {self.cell_filter_math!r}")
        for name in ("fmax_ev_per_ang", "timeout_s", "max_force_abort_ev_per_ang", "symprec"):
            require(getattr(self, name) > 0, name, f"must be > 0, got {getattr(self, name)}")
        require(self.max_steps >= 1, "max_steps", f"must be >= 1, got {self.max_steps}")
        require(self.max_volume_ratio > 1.0, "max_volume_ratio", f"must be > 1, got {self.max_volume_ratio}")


@dataclass
class RelaxResult:
    """Outcome of one relaxation, by an ML potential or a DFT code (energies as Python floats: PhaseDiagram
    rejects float32)."""

    structure: Structure
    energy_ev_per_atom: float
    converged: bool
    n_steps: int
    max_force_ev_per_ang: float
    wall_s: float = 0.0
    """Seconds this process spent relaxing (0 when the code ran elsewhere, e.g. a VASP job)."""


def relax_structure(structure: Structure, calculator, config: RelaxConfig, record_id: str) -> RelaxResult:
    """Relax ``structure`` with ``calculator``; raise ``RelaxationDiverged``/``RelaxationTimeout``
    naming ``record_id`` when forces explode, the cell blows up, or the wall-clock limit passes."""
    from ase.constraints import FixSymmetry
    from ase import optimize
    from pymatgen.io.ase import AseAtomsAdaptor

    start = time.perf_counter()
    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.calc = calculator
    if config.fix_symmetry:
        atoms.set_constraint(FixSymmetry(atoms, symprec=config.symprec))
    volume0 = atoms.get_volume()
    if config.relax_cell:
        target = frechet_cell_filter(atoms, closed_form=config.cell_filter_math == "closed-form")
    else:
        target = atoms
    opt = getattr(optimize, config.optimizer)(target, logfile=None)

    def _guard() -> None:
        forces = atoms.get_forces()
        energy = atoms.get_potential_energy()
        fmax = float(np.sqrt((forces**2).sum(axis=1)).max()) if len(forces) else 0.0
        if not np.isfinite(energy) or not np.isfinite(fmax) or fmax > config.max_force_abort_ev_per_ang:
            raise RelaxationDiverged(record_id, f"forces exploded (max |F| = {fmax:.3g} eV/Å, E = {energy})")
        ratio = atoms.get_volume() / volume0
        if not (1.0 / config.max_volume_ratio < ratio < config.max_volume_ratio):
            raise RelaxationDiverged(record_id, f"cell volume changed by a factor {ratio:.3g}")
        if time.perf_counter() - start > config.timeout_s:
            raise RelaxationTimeout(record_id, f"relaxation exceeded {config.timeout_s:g} s")

    opt.attach(_guard, interval=1)
    converged = bool(opt.run(fmax=config.fmax_ev_per_ang, steps=config.max_steps))
    _guard()
    forces = atoms.get_forces()
    relaxed = AseAtomsAdaptor.get_structure(atoms)
    return RelaxResult(
        structure=relaxed,
        energy_ev_per_atom=float(atoms.get_potential_energy()) / len(atoms),
        converged=converged,
        n_steps=int(opt.nsteps),
        max_force_ev_per_ang=float(np.sqrt((forces**2).sum(axis=1)).max()),
        wall_s=time.perf_counter() - start,
    )
