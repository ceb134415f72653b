"""Submit the followup chain of each candidate to SLURM (jobs/followup_step.sh), with dependencies.

Per candidate: relax -> static -> {bands, phonon-forces array} -> phonons(after forces) ->
finalize (after bands and phonons, whatever their outcome); one collect job after every finalize.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from pccd_hpc.cluster.slurm import ChainJob, SlurmResources, submit_chain
from pccd_hpc.followup.config import FollowupConfig
from pccd_hpc.materials.kpath import standard_primitive
from pccd_hpc.followup.phonons import candidate_phonopy
from pccd_hpc.io_utils import read_json

log = logging.getLogger(__name__)

JOB_SCRIPT = Path(__file__).resolve().parents[1] / "jobs" / "followup_step.sh"  # package data: works after a wheel install


def n_displacements(structure_dict: dict, config: FollowupConfig) -> int:
    """Number of phonopy displacements expected for a candidate (from its input structure's symmetry)."""
    from pymatgen.core import Structure

    prim = standard_primitive(Structure.from_dict(structure_dict), config.symprec, config.kpath_type)
    return len(candidate_phonopy(prim, config).supercells_with_displacements)


def submit_followup(out_dir: Path, folders: Sequence[Path], config: FollowupConfig, slurm: SlurmResources,
                    max_array_size: int = 64) -> dict[str, int]:
    """Submit every candidate's chain, each step job asking for ``slurm``'s partition, time and CPUs (GPAW without
    MPI uses one), a candidate's phonon-forces array in at most ``max_array_size`` tasks; return
    ``{"<candidate>/<step>": job id, ..., "collect": id}``."""
    if max_array_size < 1:
        raise ValueError(f"--max-array-size must be >= 1, got {max_array_size}")
    log_dir = out_dir / "slurm-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    jobs: list[ChainJob] = []
    finals: list[str] = []
    for folder in folders:
        info = read_json(folder / "input.json", "candidate input")
        cid = info["id"]
        try:
            n_disp = n_displacements(info["structure"], config)
        except ValueError as err:
            log.warning("%s: phonons skipped (%s)", cid, err)
            n_disp = 0

        def job(step: str, after_ok=(), after_any=(), array: int = 0) -> ChainJob:
            opts = [f"--time={slurm.time_min}", f"--cpus-per-task={slurm.cpus_per_task}",
                    f"--job-name=pccd-fu-{step}",
                    f"--output={log_dir}/{folder.name}-{step}-{'%A_%a' if array else '%j'}.out"]
            if slurm.partition:
                opts.append(f"--partition={slurm.partition}")
            if array:
                opts.append(f"--array=0-{array - 1}")
            return ChainJob(f"{cid}/{step}", JOB_SCRIPT, (str(out_dir), step, cid), tuple(opts),
                            tuple(f"{cid}/{a}" for a in after_ok), tuple(f"{cid}/{a}" for a in after_any))

        jobs += [job("relax"), job("static", after_ok=["relax"]), job("bands", after_ok=["static"])]
        tail = ["bands"]
        if n_disp:
            jobs += [job("phonon-forces", after_ok=["static"], array=min(n_disp, max_array_size)),
                     job("phonons", after_ok=["phonon-forces"])]
            tail.append("phonons")
        jobs.append(job("finalize", after_any=tail))
        finals.append(f"{cid}/finalize")
    jobs.append(ChainJob("collect", JOB_SCRIPT, (str(out_dir), "collect", "-"),
                         (f"--time={slurm.time_min}", f"--output={log_dir}/collect-%j.out", "--job-name=pccd-fu-collect",
                          *([f"--partition={slurm.partition}"] if slurm.partition else [])),
                         after_any=tuple(finals)))
    return submit_chain(jobs)
