"""Validate-stage throughput on this CPU: CHGNet relaxations/min and phonon calculations/min.

    python benchmarks/validate_throughput.py [--candidates GEN_DIR] [--n 40] [--workers 2]
    python benchmarks/validate_throughput.py --rattled-mp20 [--n 40] [--max-sites 16] [--rattle 0.05]

Candidates are generated ones: the first ``--n`` structures of a generation folder, or, without
``--candidates``, ``--n`` fresh samples of the bundled model (paper oxide batch, seed 0). With
``--rattled-mp20``: MP-20 validation structures rattled by ``--rattle`` Å and strained by 3 %
(the earlier benchmark). The settings relax the same candidates, one after the
other: the earlier default (CHGNet's own ASE calculator, SciPy's matrix functions in the cell
filter), the inference calculator alone, the previous default (the inference calculator with CHGNet's own
message-passing layers and graph converter, closed-form matrix functions) and the default now (the same
with the factored layers of ``materials/backends/chgnet_factored.py`` and the array-built graphs of
``chgnet_graph.py``); the E_hull of every structure on the MP-20 DFT hull is compared with the earlier
default's. A fourth run repeats the earlier default on starts whose atoms are moved by 10^-4 Å
(seeded): the structures whose E_hull changes there have no reproducible minimum to within that
noise, and a change of settings cannot be held to them.
Reports wall time including worker start-up and model loading, and the steady rate measured from
the first to the last finished structure.
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

from pymatgen.core import Composition

from pccd_hpc.validate.config import PhononConfig, ValidateConfig
from pccd_hpc.materials.relax import RelaxConfig
from pccd_hpc.validate.dft_hull import dft_hull
from pccd_hpc.validate.formation import shipped_element_references
from pccd_hpc.materials.structure_inputs import iter_input_structures
from pccd_hpc.validate.record import Job
from pccd_hpc.validate.runner import iter_results

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mp_20" / "val.csv.gz"


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


def generated_jobs(candidates: Path | None, n: int) -> list[Job]:
    """The first ``n`` structures of a generation folder, or ``n`` fresh bundled-model samples."""
    if candidates is None:
        candidates = Path(tempfile.mkdtemp(prefix="pccd-bench-gen-"))
        from pccd_hpc.launch import main as launch

        launch(["generate", "--n", str(n), "--seed", "0", "--out", str(candidates)])
    return [Job(rid, "candidate", s) for rid, s in list(iter_input_structures(candidates))[:n]]


def nudged(jobs: list[Job], amplitude_ang: float, seed: int) -> list[Job]:
    """The same jobs with every atom moved by a seeded Gaussian of ``amplitude_ang`` per axis."""
    rng = np.random.default_rng(seed)
    out = []
    for job in jobs:
        s = job.structure.copy()
        for i, shift in enumerate(rng.normal(0.0, amplitude_ang, (len(s), 3))):
            s.translate_sites([i], shift, frac_coords=False, to_unit_cell=False)
        out.append(Job(job.record_id, job.kind, s))
    return out


def measure(jobs: list[Job], config: ValidateConfig) -> tuple[dict, dict[str, float | None]]:
    """Run ``jobs``; return timings and outcome counts, and each job's E_hull on the MP-20 DFT hull."""
    start = time.perf_counter()
    finished = []
    steps, failures = [], 0
    e_hull: dict[str, float | None] = {}
    refs = shipped_element_references(config.backend)
    with tempfile.TemporaryDirectory() as tmp:
        for record in iter_results(jobs, config, Path(tmp)):
            finished.append(time.perf_counter())
            failures += record.error is not None and record.error_kind != "not_converged"
            steps.append(record.n_steps or 0)
            e_hull[record.id] = None
            if record.energy_ev_per_atom is not None and refs is not None:
                composition = Composition(record.composition)
                point, _ = dft_hull().locate(composition, refs.formation_energy_per_atom(composition, record.energy_ev_per_atom))
                e_hull[record.id] = None if point is None else point.e_above_hull_ev_per_atom
    wall = time.perf_counter() - start
    steady = (len(finished) - 1) / (finished[-1] - finished[0]) * 60 if len(finished) > 1 else float("nan")
    return ({"load_avg_1min_after": round(os.getloadavg()[0], 2), "n": len(jobs), "workers": config.workers, "wall_s": round(wall, 1),
             "per_min_including_startup": round(len(jobs) / wall * 60, 1), "per_min_steady": round(steady, 1),
             "mean_steps": round(float(np.mean(steps)), 1), "failures": int(failures)}, e_hull)


def main() -> None:
    """Run the relaxation benchmarks (both calculators) and the phonon benchmark; print one JSON line each."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--candidates", type=Path, help="generation folder (default: fresh bundled-model samples)")
    p.add_argument("--rattled-mp20", action="store_true", help="rattled MP-20 structures instead of generated ones")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--n-phonons", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--max-sites", type=int, default=16)
    p.add_argument("--rattle", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-phonons", action="store_true")
    p.add_argument("--skip-calculator-only", action="store_true", help="leave out the 'inference calculator only' run")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.rattled_mp20:
        jobs, kind = load_jobs(args.data, args.n, args.max_sites, args.rattle, args.seed), "rattled MP-20"
    else:
        jobs, kind = generated_jobs(args.candidates, args.n), "generated candidates"
    results = {}
    arms = {"earlier default": ({"calculator": "chgnet"}, RelaxConfig(cell_filter_math="scipy")),
            "inference calculator only": ({}, RelaxConfig(cell_filter_math="scipy")),
            "previous default (CHGNet's own layers and graphs)": ({"factored_layers": False, "array_graphs": False}, RelaxConfig()),
            "default now": ({}, RelaxConfig())}
    arms["earlier default, starts moved by 1e-4 Å (noise floor)"] = arms["earlier default"]
    if args.skip_calculator_only:
        del arms["inference calculator only"]
    for arm, (options, relax) in arms.items():
        config = ValidateConfig(workers=args.workers, relax=relax, backend_options=options)
        timing, results[arm] = measure(nudged(jobs, 1e-4, args.seed) if "noise floor" in arm else jobs, config)
        # Other users' processes change the figures a lot on a shared machine: the load average says how busy it was.
        print(json.dumps({"benchmark": f"relaxations of {kind}", "settings": arm, "cpu_count": os.cpu_count(), **timing}), flush=True)
    pairs = [(arm, "earlier default") for arm in list(arms)[1:]]
    if "previous default (CHGNet's own layers and graphs)" in arms:
        pairs.append(("default now", "previous default (CHGNet's own layers and graphs)"))
    for arm, base in pairs:
        both = [(results[base][k], results[arm].get(k)) for k in results[base]]
        diffs = np.array([abs(a - b) for a, b in both if a is not None and b is not None])
        print(json.dumps({"benchmark": f"E_hull, {arm} vs {base} (MP-20 DFT hull, eV/atom)", "compared": int(diffs.size),
                          "max_abs_difference": round(float(diffs.max()), 5) if diffs.size else None,
                          "median_abs_difference": round(float(np.median(diffs)), 5) if diffs.size else None,
                          "n_over_0.01": int((diffs > 0.01).sum()),
                          "ids_over_0.01": sorted(k for k, (a, b) in zip(results[base], both)
                                                  if a is not None and b is not None and abs(a - b) > 0.01),
                          "missing_in_one": sum(1 for a, b in both if (a is None) != (b is None))}), flush=True)
    if args.skip_phonons:
        return
    small = [j for j in jobs if len(j.structure) <= 8][: args.n_phonons]
    phon, _ = measure(small, ValidateConfig(workers=args.workers, phonons=True, phonon=PhononConfig()))
    print(json.dumps({"benchmark": "relax+phonons (<=8 sites, 10 Å supercells)", **phon}), flush=True)


if __name__ == "__main__":
    main()
