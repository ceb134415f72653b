"""GPAW backend: plane-wave PBE through ASE, in process (open source; runs on any machine).

Build GPAW without MPI for one core per calculation (``scripts/bootstrap.sh``) and run with
``OPENBLAS_NUM_THREADS=1``; a GPAW built with MPI runs the same code under the cluster's
``srun`` (``srun -n N python -m pccd_hpc.launch followup ...``). PAW datasets come from the
``gpaw-data`` package (or ``GPAW_SETUP_PATH``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pymatgen.core import Structure

from pccd_hpc.materials.backends.base import BandsOutcome, DftBackend, StaticOutcome
from pccd_hpc.materials.errors import StepFailure, ValidationFailure
from pccd_hpc.materials.relax import RelaxConfig, RelaxResult, relax_structure

log = logging.getLogger(__name__)

GPW_NAME = "scf.gpw"
ENERGY_RISE_TOL_EV_PER_ATOM = 0.01
"""A relaxation whose energy ends this much above its start has failed (inconsistent stress)."""


class GpawBackend(DftBackend):
    """GPAW plane-wave PBE with the campaign's settings (``DftSettings``)."""

    name: ClassVar[str] = "gpaw"

    def calculator(self, txt: Path, kpt_density: float | None = None, dedecut: str | None = None, **overrides: Any):
        """A GPAW calculator (PW cutoff, PBE, Gamma-centred k density, Fermi-Dirac) logging to ``txt``.

        ``dedecut="estimate"`` adds GPAW's Pulay-stress correction (needed for cell relaxations at
        moderate cutoffs: without it a cell can shrink while the energy rises).
        """
        from gpaw import GPAW, PW, FermiDirac

        if os.environ.get("OPENBLAS_NUM_THREADS") != "1":
            log.warning("OPENBLAS_NUM_THREADS is %r: GPAW runs several times faster with 1",
                        os.environ.get("OPENBLAS_NUM_THREADS"))
        params: dict[str, Any] = {
            "mode": PW(self.config.ecut_ev, dedecut=dedecut),
            "xc": "PBE",
            "kpts": {"density": kpt_density or self.config.kpoint_density_per_ang, "gamma": True},
            "occupations": FermiDirac(self.config.smearing_ev),
            "spinpol": self.config.spin_polarized,
            "txt": str(txt),
        }
        params.update(overrides)
        return GPAW(**params)

    def relax_in(self, structure: Structure, folder: Path, candidate: str) -> RelaxResult:
        """BFGS on atoms and cell (FrechetCellFilter) with GPAW stresses; guarded like validate's relaxations."""
        folder.mkdir(parents=True, exist_ok=True)
        relax_cfg = RelaxConfig(fmax_ev_per_ang=self.config.relax_fmax_ev_per_ang, max_steps=self.config.relax_max_steps,
                                relax_cell=self.config.relax_cell, timeout_s=self.config.relax_timeout_s)
        calc = self.calculator(folder / "gpaw.txt", dedecut="estimate" if self.config.relax_cell else None)
        energies: list[float] = []
        try:
            result = relax_structure(structure, _EnergyLog(calc, energies), relax_cfg, candidate)
        except ValidationFailure as err:
            raise StepFailure(candidate, "relax", err.message) from err
        except Exception as err:  # GPAW raises its own types (e.g. KohnShamConvergenceError)
            raise StepFailure(candidate, "relax", f"GPAW failed: {type(err).__name__}: {err}") from err
        rise = (energies[-1] - energies[0]) / len(structure) if energies else 0.0
        if rise > ENERGY_RISE_TOL_EV_PER_ATOM:
            raise StepFailure(candidate, "relax", f"energy rose by {rise:.3f} eV/atom during the relaxation (stress and "
                              "energy inconsistent: raise ecut_ev, or set relax_cell = false)")
        return result

    def static(self, structure: Structure, folder: Path, candidate: str) -> StaticOutcome:
        """SCF on ``structure``; the converged state is saved to ``folder/scf.gpw`` (temp name, then rename)."""
        from pymatgen.io.ase import AseAtomsAdaptor

        from pccd_hpc.io_utils import atomic_path

        folder.mkdir(parents=True, exist_ok=True)
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.calc = self.calculator(folder / "gpaw.txt")
        try:
            energy = float(atoms.get_potential_energy())
            efermi = float(atoms.calc.get_fermi_level())
            n_electrons = float(atoms.calc.get_number_of_electrons())
            with atomic_path(folder / GPW_NAME) as tmp:
                gpw_tmp = tmp.with_suffix(".gpw")
                atoms.calc.write(str(gpw_tmp))
                os.replace(gpw_tmp, tmp)
        except Exception as err:
            raise StepFailure(candidate, "static", f"GPAW SCF failed: {type(err).__name__}: {err}") from err
        return StaticOutcome(energy / len(atoms), efermi, n_electrons)

    def bands(self, structure: Structure, static_folder: Path, kpoints_frac: np.ndarray, labels: list[str],
              folder: Path, candidate: str) -> BandsOutcome:
        """Fixed-density runs from ``static_folder/scf.gpw``: along the path (symmetry off) and on a uniform mesh."""
        from gpaw import GPAW

        gpw = static_folder / GPW_NAME
        if not gpw.exists():
            raise StepFailure(candidate, "bands", f"no {gpw}: the static step did not finish")
        folder.mkdir(parents=True, exist_ok=True)
        try:
            scf = GPAW(str(gpw), txt=None)
            efermi = float(scf.get_fermi_level())
            n_electrons = float(scf.get_number_of_electrons())
            n_occupied = int(np.ceil(n_electrons / 2.0))
            nbands = n_occupied + self.config.n_empty_bands
            common = {"nbands": nbands + 4, "convergence": {"bands": nbands}}
            line = scf.fixed_density(kpts=np.asarray(kpoints_frac, dtype=float), symmetry="off",
                                     txt=str(folder / "gpaw-line.txt"), **common)
            path_eigs = _eigenvalues(line, nbands)
            mesh = scf.fixed_density(kpts={"density": self.config.dos_kpoint_density_per_ang, "gamma": True},
                                     txt=str(folder / "gpaw-mesh.txt"), **common)
            mesh_eigs = _eigenvalues(mesh, nbands)
            weights = np.asarray(mesh.get_k_point_weights(), dtype=float)
        except StepFailure:
            raise
        except Exception as err:
            raise StepFailure(candidate, "bands", f"GPAW non-SCF run failed: {type(err).__name__}: {err}") from err
        return BandsOutcome(path_eigs, mesh_eigs, weights / weights.sum(), efermi, n_electrons)

    def forces(self, supercell: Structure, folder: Path, candidate: str) -> np.ndarray:
        """GPAW forces on one displaced supercell (same cutoff and k density as the SCF)."""
        from pymatgen.io.ase import AseAtomsAdaptor

        folder.mkdir(parents=True, exist_ok=True)
        atoms = AseAtomsAdaptor.get_atoms(supercell)
        atoms.calc = self.calculator(folder / "gpaw.txt", kpt_density=self.config.phonon_kpoint_density_per_ang)
        try:
            return np.asarray(atoms.get_forces(), dtype=float)
        except Exception as err:
            raise StepFailure(candidate, "phonons", f"GPAW forces failed in {folder.name}: {type(err).__name__}: {err}") from err


class _EnergyLog:
    """Wraps a calculator and records every energy ASE asks for (to check the relaxation went downhill)."""

    def __init__(self, calc, energies: list[float]) -> None:
        self._calc = calc
        self._energies = energies

    def __getattr__(self, name: str):
        return getattr(self._calc, name)

    def get_potential_energy(self, atoms=None, force_consistent: bool = False) -> float:
        energy = float(self._calc.get_potential_energy(atoms, force_consistent=force_consistent))
        if not self._energies or energy != self._energies[-1]:
            self._energies.append(energy)
        return energy


def _eigenvalues(calc, nbands: int) -> np.ndarray:
    """(n_spin, n_k, nbands) eigenvalues in eV of a finished GPAW calculator."""
    n_k = len(calc.get_ibz_k_points())
    return np.array([[np.asarray(calc.get_eigenvalues(kpt=k, spin=s))[:nbands] for k in range(n_k)]
                     for s in range(calc.get_number_of_spins())], dtype=float)
