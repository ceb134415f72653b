"""VASP files: writing pymatgen input sets (POTCAR.spec when no POTCARs are configured) and reading
``vasprun.xml(.gz)``, k-point paths and eigenvalues back. validate's and followup's VASP runs both use these.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pccd_hpc.materials.errors import StepFailure

log = logging.getLogger(__name__)

VASPRUN_NAMES = ("vasprun.xml", "vasprun.xml.gz")


def write_input_set(input_set, folder: Path) -> bool:
    """Write a pymatgen VASP ``input_set`` into ``folder``; return False when POTCARs were unavailable
    (POTCAR.spec written instead: set PMG_VASP_PSP_DIR and write again to get runnable inputs)."""
    folder.mkdir(parents=True, exist_ok=True)
    have_potcars = bool(os.environ.get("PMG_VASP_PSP_DIR")) or pmg_setting("PMG_VASP_PSP_DIR")
    try:
        input_set.write_input(folder, potcar_spec=not have_potcars)
    except (OSError, ValueError, RuntimeError) as err:  # POTCAR directory set but unusable
        log.warning("%s: POTCARs unavailable (%s); writing POTCAR.spec", folder, err)
        input_set.write_input(folder, potcar_spec=True)
        have_potcars = False
    return bool(have_potcars)


def find_vasprun(folder: Path) -> Path | None:
    """``folder``/vasprun.xml, else ``folder``/vasprun.xml.gz, else None."""
    return next((folder / n for n in VASPRUN_NAMES if (folder / n).exists()), None)


def parse_vasprun(folder: Path, fail: Callable[[str], Exception], parse_eigen: bool = False):
    """Parse ``folder``/vasprun.xml(.gz) with pymatgen's ``Vasprun`` (DOS and eigenvalues only with ``parse_eigen``).

    When the file is absent, truncated or malformed, ``fail(message)`` (the message names the file) is raised;
    every VASP run of the package is read through here.
    """
    from xml.etree.ElementTree import ParseError

    from pymatgen.io.vasp import Vasprun

    path = find_vasprun(folder)
    if path is None:
        raise fail(f"no vasprun.xml in {folder}")
    try:
        return Vasprun(str(path), parse_dos=parse_eigen, parse_eigen=parse_eigen, parse_potcar_file=False)
    except (ParseError, ValueError, KeyError, IndexError, OSError) as err:
        raise fail(f"unreadable {path}: {type(err).__name__}: {err}") from err
    except Exception as err:  # lxml's XMLSyntaxError is not a stdlib exception type
        if type(err).__name__ in ("XMLSyntaxError", "ParseError"):
            raise fail(f"truncated or malformed {path}: {err}") from err
        raise


def read_vasprun(folder: Path, candidate: str, step: str, parse_eigen: bool = False, quiet: bool = False):
    """The finished run of followup ``step`` in ``folder``; raise ``StepFailure`` naming the candidate, step and
    file when it is absent, truncated or unconverged electronically (None instead when ``quiet``)."""
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


def pmg_setting(name: str) -> bool:
    """Whether pymatgen's ``SETTINGS`` (its .pmgrc.yaml) set ``name``; False when pymatgen is missing."""
    try:
        from pymatgen.core import SETTINGS
    except ImportError:
        return False
    return bool(SETTINGS.get(name))
