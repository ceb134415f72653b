"""Geometry checks: overlapping atoms are not relaxed; short bonds or an exploded volume after
relaxation mark a record unphysical, and unphysical records stay out of the stable/S.U.N. counts."""

from __future__ import annotations

import resource
import time

import pytest
from pymatgen.core import Lattice, Structure

from pccd_hpc.materials.relax import RelaxConfig
from pccd_hpc.validate.config import ValidateConfig
from pccd_hpc.validate.finalize import HULL_OK, HULL_UNPHYSICAL, compute_metrics, hull_for_record
from pccd_hpc.validate.hull import HullCalculator, ReferenceEnergy
from pccd_hpc.validate.record import Job, ValidationRecord
from pccd_hpc.validate.runner import _check_relaxed_geometry, compute_record, geometry_problem
from _structures import rocksalt_mgo


def test_tiny_cell_is_flagged_without_relaxing_or_exploding_memory(chgnet_backend, tmp_path) -> None:
    """A 0.05 A cell once drove a worker to 22 GB; now it is refused before any neighbour search."""
    tiny = Structure(Lattice.cubic(0.05), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    record = compute_record(Job("tiny", "candidate", tiny), chgnet_backend, ValidateConfig(), tmp_path)
    assert time.perf_counter() - start < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 200_000  # KiB: no 22 GB neighbour list
    assert record.unphysical and record.error_kind == "unphysical_initial"
    assert record.energy_ev_per_atom is None and record.n_steps is None  # not relaxed
    assert "tiny" in record.error and "before relaxation" in record.unphysical_reason


def test_overlapping_atoms_are_not_relaxed(chgnet_backend, tmp_path) -> None:
    overlap = Structure(Lattice.cubic(4.0), ["Mg", "O"], [[0, 0, 0], [0.05, 0, 0]])  # 0.2 A apart
    record = compute_record(Job("ov", "candidate", overlap), chgnet_backend, ValidateConfig(), tmp_path)
    assert record.unphysical and record.n_steps is None
    assert "0.200 A" in record.unphysical_reason


def test_implausible_but_not_overlapping_candidate_is_relaxed(chgnet_backend, tmp_path) -> None:
    """Between the no-relax bound (0.5) and the plausibility bound (0.7): flagged as generated, still relaxed."""
    squeezed = Structure(Lattice.cubic(4.21), ["Mg", "O"], [[0, 0, 0], [0.31, 0, 0]])  # 1.31 A: 0.63 x (1.41 + 0.66)
    record = compute_record(Job("sq", "candidate", squeezed), chgnet_backend,
                            ValidateConfig(relax=RelaxConfig(max_steps=5)), tmp_path)
    assert 0.5 < record.min_bond_ratio_initial < 0.7
    assert record.plausible_initial is False and record.n_steps is not None  # relaxed
    fine = compute_record(Job("rs", "candidate", rocksalt_mgo()), chgnet_backend,
                          ValidateConfig(relax=RelaxConfig(max_steps=5)), tmp_path)
    assert fine.plausible_initial is True and not fine.unphysical


def test_short_bond_after_relaxation_is_unphysical() -> None:
    """A 'relaxed' BeVO3 with a 0.30 A Be-O distance (what CHGNet once reported as converged)."""
    initial = Structure(Lattice.cubic(4.0), ["Be", "V", "O", "O", "O"],
                        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    relaxed = initial.copy()
    relaxed.replace(2, "O", [0.075, 0.0, 0.0])  # 0.30 A from Be
    ratio, problem = geometry_problem(relaxed, 0.7)
    assert problem is not None and ratio < 0.7 and "0.300 A" in problem
    record = ValidationRecord.for_job(Job("bevo3", "candidate", initial), "chgnet")
    _check_relaxed_geometry(record, initial, relaxed, ValidateConfig())
    assert record.unphysical and "after relaxation" in record.unphysical_reason
    exploded = Structure(Lattice.cubic(4.0 * 1.6), initial.species, initial.frac_coords)  # volume x 4.1
    record = ValidationRecord.for_job(Job("bevo3", "candidate", initial), "chgnet")
    _check_relaxed_geometry(record, initial, exploded, ValidateConfig())
    assert record.unphysical and "volume changed" in record.unphysical_reason
    fine = ValidationRecord.for_job(Job("mgo", "candidate", rocksalt_mgo()), "chgnet")
    _check_relaxed_geometry(fine, rocksalt_mgo(), rocksalt_mgo(4.25), ValidateConfig())
    assert not fine.unphysical and fine.min_bond_ratio_relaxed > 0.7


def test_unphysical_records_are_not_counted_stable() -> None:
    from pccd_hpc.validate.plan import Plan

    mgo = rocksalt_mgo()
    refs = [ReferenceEnergy("Mg", mgo.composition.__class__("Mg"), -1.5), ReferenceEnergy("O", mgo.composition.__class__("O"), -4.9)]
    hull = HullCalculator(refs)
    records = []
    for i, unphysical in enumerate([False, True]):
        record = ValidationRecord.for_job(Job(f"c{i}", "candidate", mgo), "chgnet")
        record.energy_ev_per_atom, record.converged, record.unphysical = -6.0, True, unphysical
        record.unphysical_reason = "after relaxation: short bond" if unphysical else None
        records.append(record)
    plan = Plan([], [], [], [])
    for record in records:
        value, status, note = hull_for_record(record, hull, plan)
        record.e_above_hull_ev_per_atom, record.hull_status, record.hull_note = value, status, note
    assert [r.hull_status for r in records] == [HULL_OK, HULL_UNPHYSICAL]
    assert records[1].e_above_hull_ev_per_atom == pytest.approx(records[0].e_above_hull_ev_per_atom)
    metrics = compute_metrics(ValidateConfig(), records, [True, True], [True, True], plan, training=[])
    assert records[0].e_above_hull_ev_per_atom < 0.1
    assert metrics["stable_below_0.1"] == pytest.approx(0.5)  # the unphysical twin is not stable
    assert metrics["sun_rate"] == pytest.approx(0.5) and metrics["n_unphysical"] == 1
