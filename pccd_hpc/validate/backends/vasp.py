"""VASP backend for clusters that have it: inputs via pymatgen, runs as a SLURM array, results parsed back.

Layout of one candidate folder ``VDIR/vasp/<kind>/<id>/``::

    relax/   MPRelaxSet inputs (POTCAR, or POTCAR.spec when no POTCARs are configured)
    static/  MPStaticSet inputs; jobs/vasp_array.sh copies relax/CONTCAR to static/POSCAR
    DONE     written by the job script after both runs; FAILED (exit code) when VASP failed

Energies are the static run's, passed through MaterialsProject2020Compatibility so they sit on
the Materials Project scale (hull references: MP ComputedStructureEntries, or reference structures
run through the same folders).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
from pymatgen.core import Structure
from pymatgen.entries.computed_entries import ComputedStructureEntry

from pccd_hpc.io_utils import atomic_write_text
from pccd_hpc.validate.backends.base import Backend
from pccd_hpc.materials.relax import RelaxConfig, RelaxResult
from pccd_hpc.materials.errors import VaspOutputError
from pccd_hpc.validate.record import Job, ValidationRecord
from pccd_hpc.validate.store import RecordStore
from pccd_hpc.records import record_stem

log = logging.getLogger(__name__)

VASPRUN_NAMES = ("vasprun.xml", "vasprun.xml.gz")


class VaspBackend(Backend):
    """Writes MPRelaxSet/MPStaticSet inputs and parses finished runs; computation is a cluster job."""

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
        sets = {"relax": MPRelaxSet(structure, user_incar_settings=incar),
                "static": MPStaticSet(structure, user_incar_settings=incar)}
        have_potcars = bool(os.environ.get("PMG_VASP_PSP_DIR")) or pmg_setting("PMG_VASP_PSP_DIR")
        for sub, input_set in sets.items():
            target = folder / sub
            try:
                input_set.write_input(target, potcar_spec=not have_potcars)
            except (OSError, ValueError, RuntimeError) as err:  # POTCAR directory set but unusable
                log.warning("%s: POTCARs unavailable (%s); writing POTCAR.spec", folder.name, err)
                input_set.write_input(target, potcar_spec=True)
                have_potcars = False
        return bool(have_potcars)

    def parse(self, folder: Path, record_id: str) -> tuple[RelaxResult, ComputedStructureEntry]:
        """Parse a finished folder into a RelaxResult (MP2020-corrected energy) and its entry."""
        from pymatgen.entries.compatibility import MaterialsProject2020Compatibility

        failed = folder / "FAILED"
        if failed.exists():
            raise VaspOutputError(record_id, f"VASP run failed: {failed.read_text().strip() or 'see job log'}")
        relax_run = read_vasprun(folder / "relax", record_id)
        static_run = read_vasprun(folder / "static", record_id)
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


def read_vasprun(folder: Path, record_id: str):
    """Read ``folder``/vasprun.xml(.gz); raise ``VaspOutputError`` naming the record if absent or truncated."""
    return parse_vasprun(folder, lambda message: VaspOutputError(record_id, message))


def find_vasprun(folder: Path) -> Path | None:
    """``folder``/vasprun.xml, else ``folder``/vasprun.xml.gz, else None."""
    return next((folder / n for n in VASPRUN_NAMES if (folder / n).exists()), None)


def parse_vasprun(folder: Path, fail: Callable[[str], Exception], parse_eigen: bool = False):
    """Parse ``folder``/vasprun.xml(.gz) with pymatgen's ``Vasprun`` (DOS and eigenvalues only with ``parse_eigen``).

    When the file is absent, truncated or malformed, ``fail(message)`` (the message names the file) is raised;
    the validate and followup VASP backends both read their runs through here.
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


def sync_vasp_jobs(jobs: list[Job], stores: dict[str, RecordStore], backend: VaspBackend, vasp_dir: Path) -> dict[str, Any]:
    """Parse finished folders into records, write inputs for new jobs, list the ones still to run.

    Returns ``{"computed": parsed, "pending_external": n, "pending_list": path, "potcars": bool}``.
    """
    pending: list[Path] = []
    parsed, potcars = 0, True
    for job in jobs:
        folder = vasp_dir / job.kind / record_stem(job.record_id)
        if (folder / "DONE").exists() or (folder / "FAILED").exists():
            record = ValidationRecord.for_job(job, backend.name)
            record.vasp_folder = str(folder)
            try:
                result, _ = backend.parse(folder, job.record_id)
                record.energy_ev_per_atom, record.converged = result.energy_ev_per_atom, result.converged
                record.n_steps, record.max_force_ev_per_ang = result.n_steps, result.max_force_ev_per_ang
                record.relaxed_cif = result.structure.to(fmt="cif")
            except VaspOutputError as err:
                record.fail(str(err), err.kind)
                log.warning("%s", err)
            stores[job.kind].put(record)
            parsed += 1
            continue
        if not (folder / "relax" / "INCAR").exists():
            potcars &= backend.write_inputs(job.structure, folder)
        pending.append(folder)
    pending_list = vasp_dir / "pending.txt"
    atomic_write_text(pending_list, "".join(f"{p}\n" for p in pending))
    if pending and not potcars:
        log.warning("VASP inputs written WITHOUT POTCARs (POTCAR.spec only): set PMG_VASP_PSP_DIR "
                    "(pymatgen's POTCAR folder), delete %s and re-run validate to write runnable inputs", vasp_dir)
    return {"computed": parsed, "pending_external": len(pending), "pending_list": str(pending_list), "potcars": potcars}


def pmg_setting(name: str) -> bool:
    """Whether pymatgen's ``SETTINGS`` (its .pmgrc.yaml) set ``name``; False when pymatgen is missing."""
    try:
        from pymatgen.core import SETTINGS
    except ImportError:
        return False
    return bool(SETTINGS.get(name))
