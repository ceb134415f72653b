"""Relax one structure with any ASE calculator (FrechetCellFilter + BFGS/FIRE), guarded."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Structure

from pccd_hpc.validate.cell_filter import frechet_cell_filter
from pccd_hpc.validate.config import RelaxConfig
from pccd_hpc.validate.errors import RelaxationDiverged, RelaxationTimeout

log = logging.getLogger(__name__)


@dataclass
class RelaxResult:
    """Outcome of one relaxation (energies as Python floats: PhaseDiagram rejects float32)."""

    structure: Structure
    energy_ev_per_atom: float
    converged: bool
    n_steps: int
    max_force_ev_per_ang: float
    wall_s: float


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
