"""Energy above hull: PhaseDiagram against hand-computed tie lines, float32 inputs, missing elements."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Composition

from pccd_hpc.validate.hull import HullCalculator, ReferenceEnergy, elemental_fallback_structures, select_references
from _structures import diamond_si, rocksalt_mgo


def _refs():
    return [
        ReferenceEnergy("A", Composition("Li"), -2.0),
        ReferenceEnergy("B", Composition("O2"), -5.0),
        ReferenceEnergy("AB", Composition("Li2O"), -5.0),  # formation -5 - (2*-2 + -5)/3 = -2 eV/atom
    ]


def test_e_above_hull_matches_hand_computed_tie_line():
    hull = HullCalculator(_refs())
    # LiO lies between Li2O (x_O = 1/3, -5.0) and O (x_O = 1, -5.0): the hull is flat at -5.0 eV/atom.
    e, note = hull.e_above_hull(Composition("LiO"), -4.8)
    assert note == ""
    assert e == pytest.approx(0.2)
    # Between Li (x=0, -2) and Li2O (x=1/3, -5): at Li3O (x=1/4) the hull is -2 + (-3)*(3/4) = -4.25.
    e, _ = hull.e_above_hull(Composition("Li3O"), -4.0)
    assert e == pytest.approx(0.25)
    # Below the hull: negative (allow_negative), needed for the "< 0" stability metric.
    e, _ = hull.e_above_hull(Composition("Li2O"), -5.1)
    assert e == pytest.approx(-0.1)


def test_float32_energies_are_accepted():
    refs = [ReferenceEnergy(r.record_id, r.composition, np.float32(r.energy_ev_per_atom)) for r in _refs()]
    e, _ = HullCalculator(refs).e_above_hull(Composition("LiO"), np.float32(-4.8))
    assert isinstance(e, float)
    assert e == pytest.approx(0.2, abs=1e-5)


def test_missing_elemental_reference_is_reported_not_raised():
    e, note = HullCalculator(_refs()).e_above_hull(Composition("LiF"), -3.0)
    assert e is None
    assert "F" in note


def test_select_references_keeps_subsystems_only():
    refs = [("mgo", rocksalt_mgo()), ("si", diamond_si())]
    kept = select_references([frozenset({"Mg", "O"})], refs)
    assert [rid for rid, _ in kept] == ["mgo"]


def test_elemental_fallbacks_cover_solids_and_diatomic_gases():
    found = elemental_fallback_structures(["Si", "O"])
    si, si_note = found["Si"]
    assert si.composition.reduced_formula == "Si" and "diamond" in si_note
    o2, o_note = found["O"]
    assert len(o2) == 2 and "approximate" in o_note
    assert o2.get_distance(0, 1) == pytest.approx(1.21)
