"""The validate stage's final step: E_hull, uniqueness/novelty flags, metrics, results.csv.

Runs once after every array task has finished (locally: right after the compute step).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from pathlib import Path
from typing import Any

from pymatgen.core import Composition, Structure

from pccd_hpc.io_utils import atomic_write_csv, atomic_write_json
from pccd_hpc.materials import metrics as M
from pccd_hpc.validate.config import ValidateConfig
from pccd_hpc.validate.dft_hull import dft_hull, dft_hull_elements, known_reduced_formulas
from pccd_hpc.validate.formation import CalibrationSample, ElementReferences, fit_element_references, installed_backend_version
from pccd_hpc.validate.hull import ELEMENT_FALLBACK_PREFIX, HullCalculator, ReferenceEnergy
from pccd_hpc.materials.structure_inputs import iter_input_structures
from pccd_hpc.validate.plan import HULL_DFT, Plan, ValidatePaths
from pccd_hpc.validate.record import ValidationRecord
from pccd_hpc.validate.store import RecordStore
from pccd_hpc.records import write_results_csv
from pccd_hpc.validate.structure_files import symmetry_metrics, write_relaxed_cifs

log = logging.getLogger(__name__)


HULL_OK, HULL_FAILED, HULL_UNPHYSICAL, HULL_NONE = "ok", "failed", "unphysical", "no_hull"
"""Per-candidate hull status: E_hull computed; relaxation failed (counts as not stable); geometry
unphysical (kept out of stable/S.U.N. counts); no hull possible (left out of the fractions, "n/a")."""


SUSPICIOUS_BELOW_HULL_EV = -0.2
"""An E_hull further below zero than this (eV/atom) says more about the energies or the reference set than
the candidate: real MP-20 phases scored with no flag lie within [-0.10, +0.15] (docs, calibration benchmark)."""


def reference_energies(plan: Plan, cache: RecordStore) -> tuple[list[ReferenceEnergy], list[str]]:
    """Same-backend hull: reference energies from the cache (computed with this backend) and ready entries; plus notes."""
    refs, notes = [], []
    for job in plan.references:
        record = cache.get(job.record_id)
        if record is None or record.energy_ev_per_atom is None or record.unphysical:
            reason = (record.error or record.unphysical_reason if record is not None else None) or "not computed"
            notes.append(f"reference {job.record_id} unavailable ({reason})")
            continue
        refs.append(ReferenceEnergy(job.record_id, Composition(record.composition), float(record.energy_ev_per_atom)))
        if record.note:
            notes.append(record.note)
    for i, entry in enumerate(plan.ready_entries):
        refs.append(ReferenceEnergy(str(entry.entry_id or f"entry-{i}"), entry.composition, float(entry.energy_per_atom)))
    return refs, notes


def element_references(plan: Plan, cache: RecordStore, backend: str) -> tuple[ElementReferences | None, list[str]]:
    """DFT hull: the shipped element energies (or a fit to the calibration records in the cache), plus the
    relaxed elemental reference state of any candidate element the fit lacks."""
    refs, samples, notes, elemental = plan.element_references, [], [], {}
    for job in plan.references:
        record = cache.get(job.record_id)
        usable = record is not None and record.energy_ev_per_atom is not None and not record.unphysical and record.converged
        if job.record_id.startswith(ELEMENT_FALLBACK_PREFIX):
            if usable:
                elemental[job.record_id[len(ELEMENT_FALLBACK_PREFIX):]] = float(record.energy_ev_per_atom)
                notes.append(f"{job.note}; its relaxed energy is the element's energy")
            else:
                notes.append(f"elemental reference {job.record_id} unavailable (not relaxed and converged)")
        elif not usable:
            notes.append(f"calibration structure {job.record_id} left out of the fit (not relaxed and converged)")
        else:
            samples.append(CalibrationSample(job.record_id, Composition(record.composition), float(record.energy_ev_per_atom),
                                             plan.calibration_energies[job.record_id]))
    if refs is None and samples:
        refs = fit_element_references(samples, backend, installed_backend_version(backend),
                                      source=f"{len(samples)} shipped calibration structures relaxed with {backend} in this cache")
    elif refs is None:
        notes.append("no calibration structure relaxed: element energies not fitted")
    if refs is not None and elemental:
        refs = refs.with_elemental_states(elemental)
    return refs, notes


def hull_for_record(
    record: ValidationRecord, hull: HullCalculator | None, plan: Plan, refs: ElementReferences | None = None,
) -> tuple[float | None, str, str]:
    """``(E_hull or None, status, note)`` of one candidate record (sets its formation energy and
    decomposition on the DFT hull)."""
    if record.unphysical and record.energy_ev_per_atom is None:
        return None, HULL_UNPHYSICAL, f"unphysical: {record.unphysical_reason}"
    if record.energy_ev_per_atom is None:
        return None, HULL_FAILED, "no energy (relaxation failed)"
    composition = Composition(record.composition)
    energy = record.energy_ev_per_atom
    if plan.hull_kind == HULL_DFT:
        outside = sorted(str(el) for el in composition.elements if str(el) not in dft_hull_elements())
        if outside:
            return None, HULL_NONE, (f"n/a: {', '.join(outside)} does not occur in MP-20, so the DFT hull has no "
                                     "phase of it; pass --reference with phases of this system")
        if refs is None:
            return None, HULL_NONE, "n/a: no element energies for this backend (calibration structures not relaxed yet)"
        missing = refs.missing(composition.elements)
        if missing:
            return None, HULL_NONE, f"n/a: no fitted {refs.backend} element energy for {', '.join(missing)}"
        energy = refs.formation_energy_per_atom(composition, energy)
        record.formation_energy_ev_per_atom = round(energy, 6)
    if hull is None:
        return None, HULL_NONE, "n/a: no reference energies"
    point, note = hull.locate(composition, energy)
    if point is None:
        return None, HULL_NONE, f"n/a: {note}"
    value = point.e_above_hull_ev_per_atom
    record.hull_decomposition = point.decomposition_text()
    if record.unphysical:
        return value, HULL_UNPHYSICAL, f"unphysical: {record.unphysical_reason}"
    if value < SUSPICIOUS_BELOW_HULL_EV:
        scale = "the backend's formation-energy error" if plan.hull_kind == HULL_DFT else "a competing phase missing from the reference set"
        note = (f"{note + '; ' if note else ''}{-value:.2f} eV/atom below the hull: check it (most likely {scale}) "
                "before trusting it")
    return value, HULL_OK, note


def finalize_validation(config: ValidateConfig, paths: ValidatePaths, plan: Plan, stores: dict[str, RecordStore]) -> dict[str, Any]:
    """Add E_hull and uniqueness/novelty to every candidate record; write results.csv, metrics.json
    and rejected_inputs.csv (every input that could not be used, with its reason)."""
    candidate_store = stores["candidate"]
    records = [r for job in plan.candidates if (r := candidate_store.get(job.record_id)) is not None]
    missing = len(plan.candidates) - len(records)
    if missing:
        log.warning("finalize: %d of %d candidates have no record yet (tasks still running or killed)", missing, len(plan.candidates))
    element_refs = None
    if plan.hull_kind == HULL_DFT:
        element_refs, notes = element_references(plan, stores["reference"], config.backend)
        hull: HullCalculator | None = dft_hull()
        if element_refs is not None and element_refs != plan.element_references:
            atomic_write_json(paths.out_dir / "element_references.json", element_refs.to_dict())
    else:
        refs, notes = reference_energies(plan, stores["reference"])
        hull = HullCalculator(refs) if refs else None
    for record in records:
        record.formation_energy_ev_per_atom = record.hull_decomposition = None
        value, status, note = hull_for_record(record, hull, plan, element_refs)
        record.e_above_hull_ev_per_atom, record.hull_status, record.hull_note = value, status, note
    final = [r.final_structure for r in records]
    unique = M.uniqueness_flags(final)
    training = [s for _, s in iter_input_structures(paths.train)] if paths.train is not None else None
    novel = M.novelty_flags(final, training) if training is not None else [None] * len(records)
    known = known_reduced_formulas()
    for record, u, n in zip(records, unique, novel):
        record.is_unique, record.is_novel = u, n
        record.is_novel_composition = Composition(record.composition).reduced_formula not in known
        candidate_store.put(record)
    write_results_csv(records, paths.out_dir / "results.csv")
    write_relaxed_cifs(records, paths.out_dir)  # VDIR/relaxed/<id>.cif and <id>_symmetrized.cif
    _write_rejections(plan, paths.out_dir / "rejected_inputs.csv")
    result = compute_metrics(config, records, unique, novel, plan, training)
    result.update(symmetry_metrics(records))
    reasons = Counter(rej.reason for rej in plan.rejections)
    result.update(n_missing_records=missing, hull_notes=sorted(set(notes)), hull_reference=plan.hull_description,
                  hull_kind=plan.hull_kind, energy_scale=(element_refs.describe() if element_refs is not None
                                                          else f"{config.backend} energies, same-backend hull"),
                  n_rejected_inputs=len(plan.rejections), rejected_input_reasons=dict(sorted(reasons.items())))
    atomic_write_json(paths.out_dir / "metrics.json", result)
    log.info("validate: wrote %s and metrics.json (%d records, %d inputs rejected)", paths.out_dir / "results.csv",
             len(records), len(plan.rejections))
    return result


def _write_rejections(plan: Plan, target: Path) -> None:
    rows = [dataclasses.asdict(rej) for rej in plan.rejections]
    atomic_write_csv(target, rows, ["source", "record_id", "reason", "message"])


def compute_metrics(
    config: ValidateConfig, records: list[ValidationRecord], unique: list[bool], novel: list[bool | None],
    plan: Plan, training: list[Structure] | None,
) -> dict[str, Any]:
    """The metric table. E_hull fractions are over the candidates a hull exists for; failed and
    unphysical ones count as not stable; with no such candidate a fraction is None ("n/a")."""
    initial = [Structure.from_str(r.initial_cif, fmt="cif") for r in records]
    status = [r.hull_status for r in records]
    eligible = [s != HULL_NONE for s in status]
    stable_e = [r.e_above_hull_ev_per_atom if s == HULL_OK else None for r, s in zip(records, status)]
    n = len(records)
    stable_thr = config.stable_threshold_ev_per_atom
    out: dict[str, Any] = {
        "n_candidates": n,
        "backend": config.backend,
        "stable_threshold_ev_per_atom": stable_thr,
        "structural_validity": _mean([M.structural_validity(s) for s in initial]),
        "compositional_validity": _mean([M.compositional_validity(s) for s in initial]),
        "relax_converged": _mean([bool(r.converged) for r in records]),
        "relax_failed": sum(1 for r in records if r.energy_ev_per_atom is None),
        "n_unphysical": sum(1 for r in records if r.unphysical),
        "n_unphysical_before_relaxation": sum(1 for r in records if r.error_kind == "unphysical_initial"),
        "plausible_as_generated": _mean([bool(r.plausible_initial) for r in records]),
        "uniqueness": _mean(unique),
        "with_e_hull": sum(1 for s in status if s == HULL_OK),
        "n_far_below_hull": sum(1 for r, s in zip(records, status) if s == HULL_OK
                                and r.e_above_hull_ev_per_atom < SUSPICIOUS_BELOW_HULL_EV),
        "n_without_hull": sum(1 for s in status if s == HULL_NONE),
        "n_hull_eligible": sum(eligible),
        f"stable_below_{stable_thr:g}": M.eligible_fraction_below(stable_e, eligible, stable_thr),
        "stable_below_0": M.eligible_fraction_below(stable_e, eligible, 0.0, strict=False),
    }
    for thr in config.metastable_thresholds_ev_per_atom:
        out[f"e_hull_below_{thr:g}"] = M.eligible_fraction_below(stable_e, eligible, thr)
    if training is not None:
        out["novelty"] = _mean([bool(v) for v in novel])
        out["sun_rate"] = M.sun_rate(stable_e, unique, [bool(v) for v in novel], stable_thr, eligible=eligible)
    out["novel_composition"] = _mean([bool(r.is_novel_composition) for r in records])
    converged = [bool(r.converged) and not r.unphysical and r.energy_ev_per_atom is not None for r in records]
    novel_used = [bool(v) for v in novel] if training is not None else [bool(r.is_novel_composition) for r in records]
    out["funnel"] = M.sun_funnel([bool(r.plausible_initial) for r in records], converged,
                                 stable_e, unique, novel_used, stable_thr)
    out["funnel_novelty"] = ("structure not matched in the training set (--train)" if training is not None
                             else "composition not among MP-20's known compositions (no training structures given)")
    out["sun_rate_novel_composition"] = M.sun_rate(
        stable_e, unique,
        [bool(r.is_novel_composition) for r in records], stable_thr, eligible=eligible)
    phonon_done = [r for r in records if r.imaginary_modes is not None]
    if phonon_done:
        out["phonon_calculated"] = len(phonon_done)
        out["phonon_stable"] = _mean([not r.imaginary_modes for r in phonon_done])
    distribution_ref = plan.reference_structures or training or []
    out.update(M.wasserstein_distances(initial, distribution_ref))
    return out


def _mean(flags: list[bool]) -> float | None:
    return sum(bool(f) for f in flags) / len(flags) if flags else None
