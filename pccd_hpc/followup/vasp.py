"""VASP backend: Materials Project input sets, ``VASP_CMD`` run in each step folder, pymatgen parsing.

relax: MPRelaxSet -> static: MPStaticSet (standard primitive cell, writes CHGCAR) -> bands:
MPNonSCFSet line mode (``bands/line``) and uniform (``bands/uniform``) from the static CHGCAR ->
phonon displacements: MPStaticSet-based single points with phonopy's recommended tight settings.
A folder whose vasprun.xml already parses as finished is not run again (resume after preemption).
``VASP_CMD`` (default ``srun vasp_std``) is split on whitespace and never evaluated by a shell.
Without ``PMG_VASP_PSP_DIR`` only POTCAR.spec is written, and running then fails with that reason.
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

from pccd_hpc.followup.base import BandsOutcome, DftBackend, RelaxOutcome, StaticOutcome, StepFailure
from pccd_hpc.validate.backends.vasp import find_vasprun, parse_vasprun, pmg_setting

log = logging.getLogger(__name__)

# phonopy's advice for VASP finite-displacement forces (phonopy documentation, "VASP & phonopy calculation").
PHONON_INCAR = {"IBRION": -1, "NSW": 0, "EDIFF": 1e-8, "PREC": "Accurate", "ADDGRID": True, "LREAL": False,
                "LCHARG": False, "LWAVE": False, "ISMEAR": 0, "SIGMA": 0.01}


class VaspBackend(DftBackend):
    """VASP through pymatgen's Materials Project input sets; each method runs VASP in its folder."""

    name: ClassVar[str] = "vasp"

    def relax(self, structure: Structure, folder: Path, candidate: str) -> RelaxOutcome:
        """MPRelaxSet run; the final structure and energy from vasprun.xml."""
        from pymatgen.io.vasp.sets import MPRelaxSet

        run = self._run(MPRelaxSet(structure, user_incar_settings=self.config.vasp_user_incar), folder, candidate, "relax")
        final = run.final_structure
        forces = np.asarray(run.ionic_steps[-1].get("forces", np.zeros((len(final), 3))), dtype=float)
        return RelaxOutcome(final, float(run.final_energy) / len(final), bool(run.converged_ionic), len(run.ionic_steps),
                            float(np.linalg.norm(forces, axis=1).max()))

    def static(self, structure: Structure, folder: Path, candidate: str) -> StaticOutcome:
        """MPStaticSet run on the standard primitive cell (CHGCAR kept for the band step)."""
        from pymatgen.io.vasp.sets import MPStaticSet

        incar = {"LCHARG": True, **self.config.vasp_user_incar}
        run = self._run(MPStaticSet(structure, user_incar_settings=incar), folder, candidate, "static", parse_eigen=True)
        return StaticOutcome(float(run.final_energy) / len(run.final_structure), float(run.efermi),
                             float(run.parameters.get("NELECT", float("nan"))))

    def bands(self, structure: Structure, static_folder: Path, kpoints_frac: np.ndarray, labels: list[str],
              folder: Path, candidate: str) -> BandsOutcome:
        """MPNonSCFSet line + uniform runs from the static CHGCAR; eigenvalues parsed with BSVasprun/Vasprun."""
        from pymatgen.io.vasp.sets import MPNonSCFSet

        incar = dict(self.config.vasp_user_incar)
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

        incar = {**PHONON_INCAR, **self.config.vasp_user_incar}
        run = self._run(MPStaticSet(supercell, user_incar_settings=incar), folder, candidate, "phonon-forces")
        return np.asarray(run.ionic_steps[-1]["forces"], dtype=float)

    def write_inputs(self, input_set, folder: Path) -> bool:
        """Write ``input_set`` into ``folder`` unless an INCAR is there; False when only POTCAR.spec was written."""
        folder.mkdir(parents=True, exist_ok=True)
        if (folder / "INCAR").exists():
            return (folder / "POTCAR").exists()
        have_potcars = bool(os.environ.get("PMG_VASP_PSP_DIR")) or pmg_setting("PMG_VASP_PSP_DIR")
        try:
            input_set.write_input(folder, potcar_spec=not have_potcars)
        except (OSError, ValueError, RuntimeError) as err:
            log.warning("%s: POTCARs unavailable (%s); writing POTCAR.spec", folder, err)
            input_set.write_input(folder, potcar_spec=True)
            have_potcars = False
        return bool(have_potcars)

    def _run(self, input_set, folder: Path, candidate: str, step: str, parse_eigen: bool = False):
        # parse_eigen also reads the DOS section, which holds the Fermi level.
        """Write inputs, run VASP unless a finished vasprun.xml is there, and parse it."""
        existing = read_vasprun(folder, candidate, step, parse_eigen=parse_eigen, quiet=True)
        if existing is not None:
            log.info("%s [%s]: finished vasprun.xml in %s, not re-running", candidate, step, folder)
            return existing
        self.write_inputs(input_set, folder)
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


def read_vasprun(folder: Path, candidate: str, step: str, parse_eigen: bool = False, quiet: bool = False):
    """Parse ``folder``/vasprun.xml(.gz); raise ``StepFailure`` naming the file when absent, truncated or
    unconverged electronically (None instead when ``quiet``)."""
    try:
        run = parse_vasprun(folder, lambda message: StepFailure(candidate, step, message), parse_eigen=parse_eigen)
        path = find_vasprun(folder)
        if not run.converged_electronic:
            raise StepFailure(candidate, step, f"{path}: electronic SCF did not converge")
        if parse_eigen and run.efermi is None:
            raise StepFailure(candidate, step, f"{path}: no Fermi level in the file")
        return run
    except StepFailure:
        if quiet:
            return None
        raise


def eigenvalue_array(run) -> np.ndarray:
    """(n_spin, n_k, n_bands) eigenvalues (eV) of a parsed ``Vasprun``."""
    from pymatgen.electronic_structure.core import Spin

    spins = [s for s in (Spin.up, Spin.down) if s in run.eigenvalues]
    return np.array([np.asarray(run.eigenvalues[s])[:, :, 0] for s in spins], dtype=float)


def line_mode_path(folder: Path) -> tuple[np.ndarray, list[str]]:
    """The k-points (fractional) and labels VASP runs for ``folder``'s line-mode KPOINTS."""
    from pymatgen.io.vasp.inputs import Kpoints

    kpoints = Kpoints.from_file(folder / "KPOINTS")
    if not kpoints.style.name.lower().startswith("line"):  # pymatgen's explicit labelled list (MPNonSCFSet)
        if not kpoints.labels or not any(kpoints.labels):
            raise ValueError(f"{folder / 'KPOINTS'} is neither line mode nor a labelled k-point list")
        return np.array(kpoints.kpts, dtype=float), [str(label or "") for label in kpoints.labels]
    points, labels = [], []
    ends = [np.asarray(k, dtype=float) for k in kpoints.kpts]
    for i in range(0, len(ends) - 1, 2):
        for t in range(int(kpoints.num_kpts)):
            points.append(ends[i] + (ends[i + 1] - ends[i]) * t / (int(kpoints.num_kpts) - 1))
            last = int(kpoints.num_kpts) - 1
            labels.append(kpoints.labels[i] if t == 0 else kpoints.labels[i + 1] if t == last else "")
    return np.array(points), [str(label or "") for label in labels]


def band_structure_from_vasp(folder: Path, candidate: str) -> Any:
    """A pymatgen band structure from a finished line-mode folder, read with ``BSVasprun``."""
    from pymatgen.io.vasp import BSVasprun

    path = find_vasprun(folder)
    if path is None:
        raise StepFailure(candidate, "bands", f"no vasprun.xml in {folder}")
    kpoints = folder / "KPOINTS"
    run = BSVasprun(str(path), parse_projected_eigen=False)
    return run.get_band_structure(kpoints_filename=str(kpoints) if kpoints.exists() else None,
                                  line_mode=kpoints.exists())
