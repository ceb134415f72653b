"""Energy above hull against a list of reference energies on one scale.

The default reference is the MP-20 DFT hull (formation energies, ``dft_hull.py``) with candidates
on the same scale through fitted element energies (``formation.py``); a user's ``--reference`` set
is relaxed with the candidates' backend (reference cache) and compared on the backend's scale. Every energy is cast to a Python float before it reaches pymatgen (numpy
float32 from CHGNet makes PhaseDiagram's decomposition solver fail).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Iterable, Sequence

from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition, Element, Structure

log = logging.getLogger(__name__)

ELEMENT_FALLBACK_PREFIX = "element-fallback-"


@dataclass(frozen=True)
class ReferenceEnergy:
    """One reference phase: composition and energy per atom on the backend's scale."""

    record_id: str
    composition: Composition
    energy_ev_per_atom: float


def chemsys(elements: Iterable[str | Element]) -> frozenset[str]:
    """The chemical system of ``elements`` as a frozenset of symbols."""
    return frozenset(str(el) for el in elements)


def select_references(
    candidate_systems: Iterable[frozenset[str]], references: Sequence[tuple[str, Structure]]
) -> list[tuple[str, Structure]]:
    """Keep the reference structures whose elements lie inside some candidate's chemical system
    (those, and only those, can appear on a candidate's hull)."""
    systems = set(candidate_systems)
    return [(rid, s) for rid, s in references if any(chemsys(s.composition.elements) <= sys_ for sys_ in systems)]


def elemental_fallback_structures(elements: Iterable[str]) -> dict[str, tuple[Structure, str]]:
    """ASE reference-state structures for elements with no elemental phase in the reference data.

    Returns ``{symbol: (structure, note)}``; crystalline reference states use ASE's bulk lattice
    constants, diatomic gases (H, N, O, F, Cl) a molecule in a 12 Å box — an approximation the
    note says so. Elements ASE has no usable reference state for are left out.
    """
    from ase import Atoms
    from ase.build import bulk
    from ase.data import atomic_numbers, reference_states
    from pymatgen.io.ase import AseAtomsAdaptor

    found: dict[str, tuple[Structure, str]] = {}
    for symbol in sorted(elements):
        state = reference_states[atomic_numbers[symbol]]
        if not state:
            continue
        kind = state.get("symmetry")
        try:
            if kind == "diatom":
                box = 12.0
                atoms = Atoms(f"{symbol}2", positions=[[0, 0, 0], [0, 0, state["d"]]], cell=[box, box + 0.5, box + 1.0], pbc=True)
                note = f"{symbol}: ASE diatomic {symbol}2 in a 12 Å box (approximate elemental reference)"
            else:
                atoms = bulk(symbol)
                note = f"{symbol}: ASE {kind} reference state (no elemental phase in the reference data)"
        except (ValueError, KeyError, NotImplementedError) as err:
            log.warning("no ASE reference state for %s: %s", symbol, err)
            continue
        found[symbol] = (AseAtomsAdaptor.get_structure(atoms), note)
    return found


@dataclass(frozen=True)
class HullPoint:
    """Where one composition and energy sit against a hull."""

    e_above_hull_ev_per_atom: float
    """Negative below the hull."""
    decomposition: tuple[tuple[str, str, float], ...]
    """The hull phases the composition would split into: ``(reference id, reduced formula, atom fraction)``."""

    def decomposition_text(self) -> str:
        """``"0.5 SrO (mp-2472) + 0.5 TiO2 (mp-2657)"``: atom fractions of the hull phases."""
        return " + ".join(f"{frac:.3g} {formula} ({rid})" for rid, formula, frac in self.decomposition)


class HullCalculator:
    """E_hull of candidates against a fixed list of reference energies, one PhaseDiagram per system.

    References are indexed by chemical system, so a diagram gathers only the subsystems of the
    candidate's system (fast with the ~23,000 phases of the MP-20 hull).
    """

    def __init__(self, references: Sequence[ReferenceEnergy]) -> None:
        self.references = list(references)
        self._diagrams: dict[frozenset[str], PhaseDiagram] = {}
        self._by_system: dict[frozenset[str], list[ReferenceEnergy]] = {}
        for ref in self.references:
            self._by_system.setdefault(chemsys(ref.composition.elements), []).append(ref)
        self._elements = {str(ref.composition.elements[0]) for ref in references if len(ref.composition.elements) == 1}

    def missing_elements(self, composition: Composition) -> list[str]:
        """Elements of ``composition`` with no elemental reference."""
        return sorted(str(el) for el in composition.elements if str(el) not in self._elements)

    def e_above_hull(self, composition: Composition, energy_ev_per_atom: float) -> tuple[float | None, str]:
        """Return ``(E_hull in eV/atom, note)``; negative below the hull; None when an element lacks a reference."""
        point, note = self.locate(composition, energy_ev_per_atom)
        return (None if point is None else point.e_above_hull_ev_per_atom), note

    def locate(self, composition: Composition, energy_ev_per_atom: float) -> tuple[HullPoint | None, str]:
        """``(HullPoint, note)`` of ``composition`` at ``energy_ev_per_atom``; ``(None, reason)`` when an
        element lacks a reference."""
        composition = Composition(composition)
        missing = self.missing_elements(composition)
        if missing:
            return None, f"no elemental reference for {', '.join(missing)}"
        diagram = self._diagram(chemsys(composition.elements))
        entry = PDEntry(composition, float(energy_ev_per_atom) * composition.num_atoms, name="candidate")
        decomp, e_hull = diagram.get_decomp_and_e_above_hull(entry, allow_negative=True)
        parts = tuple(sorted(((str(e.name), e.composition.reduced_formula, round(float(frac), 4)) for e, frac in decomp.items()),
                             key=lambda p: -p[2]))
        return HullPoint(float(e_hull), parts), ""

    def _diagram(self, system: frozenset[str]) -> PhaseDiagram:
        if system not in self._diagrams:
            entries = [
                PDEntry(ref.composition, float(ref.energy_ev_per_atom) * ref.composition.num_atoms, name=ref.record_id)
                for k in range(1, len(system) + 1)
                for sub in itertools.combinations(sorted(system), k)
                for ref in self._by_system.get(frozenset(sub), ())
            ]
            self._diagrams[system] = PhaseDiagram(entries)
        return self._diagrams[system]
