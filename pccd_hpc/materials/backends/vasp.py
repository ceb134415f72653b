"""The VASP backend, for clusters that have it: Materials Project input sets via pymatgen.

validate: inputs per candidate folder ``VDIR/vasp/<kind>/<id>/``, run as a SLURM array by ``jobs/vasp_array.sh``::

    relax/   MPRelaxSet inputs (POTCAR, or POTCAR.spec when no POTCARs are configured)
    static/  MPStaticSet inputs; jobs/vasp_array.sh copies relax/CONTCAR to static/POSCAR
    DONE     written by the job script after both runs; FAILED (exit code) when VASP failed

and parsed back (``parse``) with energies passed through MaterialsProject2020Compatibility, so they sit on
the Materials Project scale.

followup: relax: MPRelaxSet -> static: MPStaticSet (standard primitive cell, writes CHGCAR) -> bands:
MPNonSCFSet line mode (``bands/line``) and uniform (``bands/uniform``) from the static CHGCAR ->
phonon displacements: MPStaticSet-based single points with phonopy's recommended tight settings, each run
with ``VASP_CMD`` in its step folder. A folder whose vasprun.xml already parses as finished is not run again
(resume after preemption). ``VASP_CMD`` (default ``srun vasp_std``) is split on whitespace and never evaluated
by a shell. Without ``PMG_VASP_PSP_DIR`` only POTCAR.spec is written, and running then fails with that reason.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pymatgen.core import Structure
from pymatgen.entries.computed_entries import ComputedStructureEntry

from pccd_hpc.materials.backends.base import BandsOutcome, DftBackend, StaticOutcome
from pccd_hpc.materials.errors import StepFailure, VaspOutputError
from pccd_hpc.materials.relax import RelaxConfig, RelaxResult
from pccd_hpc.materials.vasp import eigenvalue_array, line_mode_path, parse_vasprun, read_vasprun, write_input_set

log = logging.getLogger(__name__)

# phonopy's advice for VASP finite-displacement forces (phonopy documentation, "VASP & phonopy calculation").
PHONON_INCAR = {"IBRION": -1, "NSW": 0, "EDIFF": 1e-8, "PREC": "Accurate", "ADDGRID": True, "LREAL": False,
                "LCHARG": False, "LWAVE": False, "ISMEAR": 0, "SIGMA": 0.01}


class VaspBackend(DftBackend):
    """VASP through pymatgen's Materials Project input sets: validate writes inputs and parses finished cluster jobs
    (``write_inputs``, ``parse``); followup's steps run ``VASP_CMD`` in each step folder."""

    name: ClassVar[str] = "vasp"
    runs_in_process: ClassVar[bool] = False
    defaults: ClassVar[dict[str, Any]] = {"user_incar_settings": {}, "check_potcar": False}

    def relax(self, structure: Structure, config: RelaxConfig, record_id: str) -> RelaxResult:
        """Not available in process: VASP runs through ``jobs/vasp_array.sh``."""
        raise VaspOutputError(record_id, "VASP runs as cluster jobs (jobs/vasp_array.sh), not in process")

    def write_inputs(self, structure: Structure, folder: Path) -> bool:
        """Write relax/ and static/ inputs into ``folder``; return False when POTCARs were unavailable
        (POTCAR.spec written instead: set PMG_VASP_PSP_DIR and re-run to get runnable inputs)."""
        from pymatgen.io.vasp.sets import MPRelaxSet, MPStaticSet

        incar = dict(self.options["user_incar_settings"])
        have = [write_input_set(MPRelaxSet(structure, user_incar_settings=incar), folder / "relax"),
                write_input_set(MPStaticSet(structure, user_incar_settings=incar), folder / "static")]
        return all(have)

    def parse(self, folder: Path, record_id: str) -> tuple[RelaxResult, ComputedStructureEntry]:
        """Parse a finished folder into a RelaxResult (MP2020-corrected energy) and its entry."""
        from pymatgen.entries.compatibility import MaterialsProject2020Compatibility

        failed = folder / "FAILED"
        if failed.exists():
            raise VaspOutputError(record_id, f"VASP run failed: {failed.read_text().strip() or 'see job log'}")

        def fail(message: str) -> VaspOutputError:
            return VaspOutputError(record_id, message)

        relax_run = parse_vasprun(folder / "relax", fail)
        static_run = parse_vasprun(folder / "static", fail)
        entry = static_run.get_computed_entry(inc_structure=True, entry_id=record_id)
        compat = MaterialsProject2020Compatibility(check_potcar=self.options["check_potcar"])
        processed = compat.process_entries([entry], clean=True)
        if not processed:
            raise VaspOutputError(
                record_id, f"MaterialsProject2020Compatibility rejected the run (run type {static_run.run_type}, "
                f"hubbards {entry.parameters.get('hubbards')}): not comparable with MP-scale references")
        entry = processed[0]
        forces = np.asarray(static_run.ionic_steps[-1].get("forces", np.zeros((1, 3))), dtype=float)
        result = RelaxResult(
            structure=static_run.final_structure,
            energy_ev_per_atom=float(entry.energy_per_atom),
            converged=bool(relax_run.converged_ionic and static_run.converged_electronic),
            n_steps=len(relax_run.ionic_steps),
            max_force_ev_per_ang=float(np.linalg.norm(forces, axis=1).max()),
            wall_s=0.0,
        )
        return result, entry

    def relax_in(self, structure: Structure, folder: Path, candidate: str) -> RelaxResult:
        """MPRelaxSet run; the final structure and energy from vasprun.xml."""
        from pymatgen.io.vasp.sets import MPRelaxSet

        incar = dict(self.options["user_incar_settings"])
        run = self._run(MPRelaxSet(structure, user_incar_settings=incar), folder, candidate, "relax")
        final = run.final_structure
        forces = np.asarray(run.ionic_steps[-1].get("forces", np.zeros((len(final), 3))), dtype=float)
        return RelaxResult(final, float(run.final_energy) / len(final), bool(run.converged_ionic), len(run.ionic_steps),
                           float(np.linalg.norm(forces, axis=1).max()))

    def static(self, structure: Structure, folder: Path, candidate: str) -> StaticOutcome:
        """MPStaticSet run on the standard primitive cell (CHGCAR kept for the band step)."""
        from pymatgen.io.vasp.sets import MPStaticSet

        incar = {"LCHARG": True, **self.options["user_incar_settings"]}
        run = self._run(MPStaticSet(structure, user_incar_settings=incar), folder, candidate, "static", parse_eigen=True)
        return StaticOutcome(float(run.final_energy) / len(run.final_structure), float(run.efermi),
                             float(run.parameters.get("NELECT", float("nan"))))

    def bands(self, structure: Structure, static_folder: Path, kpoints_frac: np.ndarray, labels: list[str],
              folder: Path, candidate: str) -> BandsOutcome:
        """MPNonSCFSet line + uniform runs from the static CHGCAR; eigenvalues parsed with BSVasprun/Vasprun."""
        from pymatgen.io.vasp.sets import MPNonSCFSet

        incar = dict(self.options["user_incar_settings"])
        sets = {mode: MPNonSCFSet(structure, mode=mode, user_incar_settings=incar,
                                  kpoints_line_density=self.config.line_density) for mode in ("line", "uniform")}
        runs = {}
        for mode, input_set in sets.items():
            sub = folder / mode
            sub.mkdir(parents=True, exist_ok=True)
            for name in ("CHGCAR", "CHGCAR.gz"):
                if (static_folder / name).exists() and not (sub / name).exists():
                    shutil.copyfile(static_folder / name, sub / name)
            runs[mode] = self._run(input_set, sub, candidate, "bands", parse_eigen=True)
        line, uniform = runs["line"], runs["uniform"]
        kfrac, klabels = line_mode_path(folder / "line")
        if len(line.actual_kpoints) != len(kfrac):
            raise StepFailure(candidate, "bands", f"{folder / 'line'}: vasprun has {len(line.actual_kpoints)} k-points, "
                              f"its line-mode KPOINTS asks for {len(kfrac)} (not this folder's run?)")
        weights = np.asarray(uniform.actual_kpoints_weights, dtype=float)
        return BandsOutcome(eigenvalue_array(line), eigenvalue_array(uniform), weights / weights.sum(),
                            float(uniform.efermi), float(uniform.parameters.get("NELECT", float("nan"))),
                            path_kpoints_frac=kfrac, path_labels=klabels)

    def forces(self, supercell: Structure, folder: Path, candidate: str) -> np.ndarray:
        """A single point on one displaced supercell; forces from vasprun.xml."""
        from pymatgen.io.vasp.sets import MPStaticSet

        incar = {**PHONON_INCAR, **self.options["user_incar_settings"]}
        run = self._run(MPStaticSet(supercell, user_incar_settings=incar), folder, candidate, "phonon-forces")
        return np.asarray(run.ionic_steps[-1]["forces"], dtype=float)

    def _run(self, input_set, folder: Path, candidate: str, step: str, parse_eigen: bool = False):
        # parse_eigen also reads the DOS section, which holds the Fermi level.
        """Write inputs, run VASP unless a finished vasprun.xml is there, and parse it."""
        existing = read_vasprun(folder, candidate, step, parse_eigen=parse_eigen, quiet=True)
        if existing is not None:
            log.info("%s [%s]: finished vasprun.xml in %s, not re-running", candidate, step, folder)
            return existing
        if not (folder / "INCAR").exists():  # inputs of an interrupted run are kept as they were
            write_input_set(input_set, folder)
        cmd = os.environ.get("VASP_CMD", "srun vasp_std").split()
        if not cmd:
            raise StepFailure(candidate, step, "VASP_CMD is empty")
        try:
            with open(folder / "vasp.out", "ab") as out:
                proc = subprocess.run(cmd, cwd=folder, stdout=out, stderr=subprocess.STDOUT, timeout=self.config.vasp_timeout_s)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise StepFailure(candidate, step, f"VASP_CMD {cmd} could not run in {folder}: {err}") from err
        if proc.returncode != 0:
            raise StepFailure(candidate, step, f"VASP_CMD {cmd} exited {proc.returncode} in {folder} (see vasp.out)")
        run = read_vasprun(folder, candidate, step, parse_eigen=parse_eigen)
        return run
