"""The validate stage's final step: E_hull, uniqueness/novelty flags, metrics, results.csv.

Runs once after every array task has finished (locally: right after the compute step).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from pymatgen.core import Composition, Structure

from pccd_hpc.io_utils import atomic_write_json
from pccd_hpc.validate import metrics as M
from pccd_hpc.validate.config import ValidateConfig
from pccd_hpc.validate.hull import HullCalculator, ReferenceEnergy
from pccd_hpc.validate.inputs import iter_input_structures
from pccd_hpc.validate.store import RecordStore, write_results_csv

if TYPE_CHECKING:
    from pccd_hpc.validate.stage import Plan, ValidatePaths

log = logging.getLogger(__name__)


def reference_energies(plan: "Plan", cache: RecordStore) -> tuple[list[ReferenceEnergy], list[str]]:
    """Reference energies from the cache (computed with this backend) and ready entries; plus notes."""
    refs, notes = [], []
    for job in plan.references:
        record = cache.get(job.record_id)
        if record is None or record.get("energy_ev_per_atom") is None:
            notes.append(f"reference {job.record_id} unavailable ({(record or {}).get('error') or 'not computed'})")
            continue
        refs.append(ReferenceEnergy(job.record_id, Composition(record["composition"]), float(record["energy_ev_per_atom"])))
        if record.get("note"):
            notes.append(record["note"])
    for i, entry in enumerate(plan.ready_entries):
        refs.append(ReferenceEnergy(str(entry.entry_id or f"entry-{i}"), entry.composition, float(entry.energy_per_atom)))
    return refs, notes


def finalize_validation(config: ValidateConfig, paths: "ValidatePaths", plan: "Plan", stores: dict[str, RecordStore]) -> dict[str, Any]:
    """Add E_hull and uniqueness/novelty to every candidate record; write results.csv and metrics.json."""
    candidate_store = stores["candidate"]
    records = [r for job in plan.candidates if (r := candidate_store.get(job.record_id)) is not None]
    missing = len(plan.candidates) - len(records)
    if missing:
        log.warning("finalize: %d of %d candidates have no record yet (tasks still running or killed)", missing, len(plan.candidates))
    refs, notes = reference_energies(plan, stores["reference"])
    hull = HullCalculator(refs) if refs else None
    for record in records:
        record["e_above_hull_ev_per_atom"], record["hull_note"] = None, ""
        if record.get("energy_ev_per_atom") is None:
            record["hull_note"] = "no energy (relaxation failed)"
        elif hull is None:
            record["hull_note"] = "no reference set"
        else:
            value, note = hull.e_above_hull(Composition(record["composition"]), record["energy_ev_per_atom"])
            record["e_above_hull_ev_per_atom"], record["hull_note"] = value, note
    final = [_final_structure(r) for r in records]
    unique = M.uniqueness_flags(final)
    training = [s for _, s in iter_input_structures(paths.train)] if paths.train is not None else None
    novel = M.novelty_flags(final, training) if training is not None else [None] * len(records)
    for record, u, n in zip(records, unique, novel):
        record["is_unique"], record["is_novel"] = u, n
        candidate_store.put(record)
    write_results_csv(records, paths.out_dir / "results.csv")
    result = compute_metrics(config, records, unique, novel, plan, training)
    result.update(n_missing_records=missing, hull_notes=sorted(set(notes)))
    atomic_write_json(paths.out_dir / "metrics.json", result)
    log.info("validate: wrote %s and metrics.json (%d records)", paths.out_dir / "results.csv", len(records))
    return result


def compute_metrics(
    config: ValidateConfig, records: list[dict[str, Any]], unique: list[bool], novel: list[bool | None],
    plan: "Plan", training: list[Structure] | None,
) -> dict[str, Any]:
    """The metric table (fractions over all candidates, failures counting as failing)."""
    initial = [Structure.from_str(r["initial_cif"], fmt="cif") for r in records]
    e_hull = [r.get("e_above_hull_ev_per_atom") for r in records]
    n = len(records)
    stable_thr = config.stable_threshold_ev_per_atom
    out: dict[str, Any] = {
        "n_candidates": n,
        "backend": config.backend,
        "structural_validity": _mean([M.structural_validity(s) for s in initial]),
        "compositional_validity": _mean([M.compositional_validity(s) for s in initial]),
        "relax_converged": _mean([bool(r.get("converged")) for r in records]),
        "relax_failed": sum(1 for r in records if r.get("energy_ev_per_atom") is None),
        "uniqueness": _mean(unique),
        "with_e_hull": sum(1 for e in e_hull if e is not None),
        f"stable_below_{stable_thr:g}": M.fraction_below(e_hull, stable_thr),
        "stable_below_0": M.fraction_below(e_hull, 0.0, strict=False),
    }
    for thr in config.metastable_thresholds_ev_per_atom:
        out[f"e_hull_below_{thr:g}"] = M.fraction_below(e_hull, thr)
    if training is not None:
        out["novelty"] = _mean([bool(v) for v in novel])
        out["sun_rate"] = M.sun_rate(e_hull, unique, [bool(v) for v in novel], stable_thr)
    phonon_done = [r for r in records if r.get("imaginary_modes") is not None]
    if phonon_done:
        out["phonon_calculated"] = len(phonon_done)
        out["phonon_stable"] = _mean([not r["imaginary_modes"] for r in phonon_done])
    distribution_ref = plan.reference_structures or training or []
    out.update(M.wasserstein_distances(initial, distribution_ref))
    return out


def _final_structure(record: dict[str, Any]) -> Structure:
    return Structure.from_str(record.get("relaxed_cif") or record["initial_cif"], fmt="cif")


def _mean(flags: list[bool]) -> float:
    return sum(bool(f) for f in flags) / len(flags) if flags else math.nan
