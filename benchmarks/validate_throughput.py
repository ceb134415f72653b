"""Validate-stage throughput on this CPU: CHGNet relaxations/min and phonon calculations/min.

    python benchmarks/validate_throughput.py [--n 40] [--workers 2] [--max-sites 16] [--rattle 0.05]

Candidates are MP-20 validation structures with <= ``--max-sites`` sites, rattled by ``--rattle`` Å
and strained by 3 % so that each relaxation does real work (the DFT-relaxed cells alone converge
in 0-3 steps). Reports wall time including worker start-up and model loading, and the steady rate
measured from the first to the last finished structure.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from pccd_hpc.validate.config import PhononConfig, RelaxConfig, ValidateConfig
from pccd_hpc.validate.inputs import iter_input_structures
from pccd_hpc.validate.record import Job
from pccd_hpc.validate.runner import iter_results

DEFAULT_DATA = Path("/work/shared/data/mp_20/val.csv.gz")


def load_jobs(path: Path, n: int, max_sites: int, rattle_ang: float, seed: int) -> list[Job]:
    """The first ``n`` structures with at most ``max_sites`` sites, rattled and strained reproducibly."""
    rng = np.random.default_rng(seed)
    jobs = []
    for rid, s in iter_input_structures(path):
        if len(s) > max_sites:
            continue
        s = s.copy()
        s.apply_strain(0.03)
        for i, shift in enumerate(rng.normal(0.0, rattle_ang, (len(s), 3))):
            s.translate_sites([i], shift, frac_coords=False)
        jobs.append(Job(rid, "candidate", s))
        if len(jobs) == n:
            break
    return jobs


def measure(jobs: list[Job], config: ValidateConfig) -> dict:
    """Run ``jobs`` and return timings and outcome counts."""
    start = time.perf_counter()
    finished = []
    steps, failures = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for record in iter_results(jobs, config, Path(tmp)):
            finished.append(time.perf_counter())
            failures += record.error is not None and record.error_kind != "not_converged"
            steps.append(record.n_steps or 0)
    wall = time.perf_counter() - start
    steady = (len(finished) - 1) / (finished[-1] - finished[0]) * 60 if len(finished) > 1 else float("nan")
    return {"load_avg_1min_after": round(os.getloadavg()[0], 2), "n": len(jobs), "workers": config.workers, "wall_s": round(wall, 1),
            "per_min_including_startup": round(len(jobs) / wall * 60, 1), "per_min_steady": round(steady, 1),
            "mean_steps": round(float(np.mean(steps)), 1), "failures": int(failures)}


def main() -> None:
    """Run the relaxation and phonon benchmarks and print one JSON line each."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--n-phonons", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--max-sites", type=int, default=16)
    p.add_argument("--rattle", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    jobs = load_jobs(args.data, args.n, args.max_sites, args.rattle, args.seed)
    relax = measure(jobs, ValidateConfig(workers=args.workers, relax=RelaxConfig()))
    # Other users' processes change the figures a lot on a shared machine: the load average says how busy it was.
    print(json.dumps({"benchmark": "relaxations", "cpu_count": os.cpu_count(), **relax}), flush=True)
    small = [j for j in jobs if len(j.structure) <= 8][: args.n_phonons]
    phon = measure(small, ValidateConfig(workers=args.workers, phonons=True, phonon=PhononConfig()))
    print(json.dumps({"benchmark": "relax+phonons (<=8 sites, 10 Å supercells)", **phon}), flush=True)


if __name__ == "__main__":
    main()
