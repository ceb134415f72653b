"""VASP as validate runs it: parse finished candidate folders into records, write inputs for new ones, and list
the folders still to run (``jobs/vasp_array.sh`` runs them as a SLURM array)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pccd_hpc.io_utils import atomic_write_text
from pccd_hpc.materials.backends.vasp import VaspBackend
from pccd_hpc.materials.errors import VaspOutputError
from pccd_hpc.records import record_stem
from pccd_hpc.validate.record import Job, ValidationRecord
from pccd_hpc.validate.store import RecordStore

log = logging.getLogger(__name__)


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
