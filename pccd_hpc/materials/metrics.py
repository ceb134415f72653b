"""The field's standard generation metrics (CDVAE / DiffCSP / MatterGen conventions).

Pure functions over pymatgen ``Structure``s and E_hull values, so our numbers sit beside theirs.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from typing import Sequence

import numpy as np
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure


def structural_validity(structure: Structure, min_distance_ang: float = 0.5, min_volume_ang3: float = 0.1) -> bool:
    """CDVAE's structural validity: every interatomic distance >= 0.5 Å and volume >= 0.1 Å^3."""
    if structure.volume < min_volume_ang3:
        return False
    if len(structure) < 2:
        # One atom: the shortest distance is to its own periodic image, the shortest lattice vector.
        return min(structure.lattice.abc) >= min_distance_ang
    # Pairs within the bound only (a cell list, memory linear in the atoms): the full distance matrix of a
    # 10,000-atom cell took 4.9 GB and 75 s.
    _, _, _, distances = structure.get_neighbor_list(min_distance_ang)
    return bool(not len(distances) or distances.min() >= min_distance_ang)


def compositional_validity(structure: Structure) -> bool:
    """CDVAE's SMACT validity: some oxidation-state assignment is charge neutral and passes the
    Pauling electronegativity test; single elements and all-metal alloys count as valid."""
    import smact
    from smact.screening import pauling_test

    composition = structure.composition
    symbols = [str(el) for el in composition.elements]
    if len(symbols) == 1:
        return True
    if all(symbol in smact.metals for symbol in symbols):
        return True
    counts = [int(round(composition[el])) for el in composition.elements]
    divisor = math.gcd(*counts)
    counts = [c // divisor for c in counts]
    space = smact.element_dictionary(tuple(symbols))
    elements = [space[s] for s in symbols]
    electronegativities = [el.pauling_eneg for el in elements]
    for ox_states in itertools.product(*(_oxidation_states(el) for el in elements)):
        if not smact.neutral_ratios(ox_states, stoichs=[(c,) for c in counts], threshold=max(counts)):
            continue
        try:
            if pauling_test(ox_states, electronegativities):
                return True
        except TypeError:  # an element without a Pauling electronegativity: CDVAE accepts it
            return True
    return False


def _oxidation_states(element) -> list[int]:
    # SMACT 1.4's list is the one CDVAE's numbers were computed with (later SMACT changed the default).
    states = getattr(element, "oxidation_states_smact14", None)
    if states is None:
        states = element.oxidation_states
    return list(states or [])


def _matcher() -> StructureMatcher:
    return StructureMatcher()  # pymatgen defaults (ltol 0.2, stol 0.3, angle_tol 5), as CDVAE


def uniqueness_flags(structures: Sequence[Structure]) -> list[bool]:
    """True for the first structure of each StructureMatcher group, False for later duplicates."""
    matcher = _matcher()
    by_formula: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(structures):
        by_formula[s.composition.reduced_formula].append(i)
    flags = [False] * len(structures)
    for indices in by_formula.values():
        kept: list[int] = []
        for i in indices:
            if not any(matcher.fit(structures[i], structures[j]) for j in kept):
                kept.append(i)
                flags[i] = True
    return flags


def novelty_flags(structures: Sequence[Structure], training: Sequence[Structure]) -> list[bool]:
    """True when no training structure of the same reduced formula matches (StructureMatcher)."""
    matcher = _matcher()
    train_by_formula: dict[str, list[Structure]] = defaultdict(list)
    for s in training:
        train_by_formula[s.composition.reduced_formula].append(s)
    return [
        not any(matcher.fit(s, t) for t in train_by_formula.get(s.composition.reduced_formula, ()))
        for s in structures
    ]


def fraction_below(e_hull_ev_per_atom: Sequence[float | None], threshold: float, strict: bool = True) -> float:
    """Fraction of all structures (failed ones, None, count as not below) with E_hull < threshold."""
    if not e_hull_ev_per_atom:
        return float("nan")
    hits = sum(1 for e in e_hull_ev_per_atom if e is not None and (e < threshold if strict else e <= threshold))
    return hits / len(e_hull_ev_per_atom)


def eligible_fraction_below(
    e_hull_ev_per_atom: Sequence[float | None], eligible: Sequence[bool], threshold: float, strict: bool = True
) -> float | None:
    """Fraction of the *eligible* structures (those a hull exists for) with E_hull below ``threshold``;
    None (printed "n/a", never 0 %) when no structure is eligible. None values count as not below."""
    if len(eligible) != len(e_hull_ev_per_atom):
        raise ValueError("eligible_fraction_below: e_hull and eligible must have the same length")
    kept = [e for e, ok in zip(e_hull_ev_per_atom, eligible) if ok]
    if not kept:
        return None
    return fraction_below(kept, threshold, strict)


def sun_rate(
    e_hull_ev_per_atom: Sequence[float | None], unique: Sequence[bool], novel: Sequence[bool], threshold: float = 0.1,
    eligible: Sequence[bool] | None = None,
) -> float | None:
    """Fraction of (eligible) structures that are stable (E_hull < threshold), unique and novel (S.U.N.);
    None when there is no eligible structure."""
    n = len(e_hull_ev_per_atom)
    if not (len(unique) == len(novel) == n):
        raise ValueError("sun_rate: e_hull, unique and novel must have the same length")
    eligible = [True] * n if eligible is None else list(eligible)
    denominator = sum(bool(x) for x in eligible)
    if denominator == 0:
        return None
    hits = sum(1 for e, u, v, ok in zip(e_hull_ev_per_atom, unique, novel, eligible) if ok and e is not None and e < threshold and u and v)
    return hits / denominator


def density_g_cm3(structures: Sequence[Structure]) -> np.ndarray:
    """Mass densities (g/cm^3)."""
    return np.array([float(s.density) for s in structures])


def n_elements(structures: Sequence[Structure]) -> np.ndarray:
    """Number of distinct elements per structure."""
    return np.array([len(s.composition.elements) for s in structures])


def wasserstein_distances(generated: Sequence[Structure], reference: Sequence[Structure]) -> dict[str, float]:
    """CDVAE's distribution metrics: Wasserstein distance of density and of number of elements."""
    from scipy.stats import wasserstein_distance

    if not generated or not reference:
        return {"wdist_density": float("nan"), "wdist_n_elements": float("nan")}
    return {
        "wdist_density": float(wasserstein_distance(density_g_cm3(generated), density_g_cm3(reference))),
        "wdist_n_elements": float(wasserstein_distance(n_elements(generated), n_elements(reference))),
    }


FUNNEL_STEPS = (
    ("candidates", "structures handed to validate"),
    ("plausible", "plausible as given (every bond >= 0.7 x the sum of covalent radii)"),
    ("relaxed_converged", "relaxed, converged and still physical"),
    ("e_hull_le_0.1", "E_hull <= 0.1 eV/atom"),
    ("unique", "unique (StructureMatcher, first of each group)"),
    ("novel", "novel"),
)
"""The S.U.N. funnel, in order; each step keeps a subset of the one before (``sun`` is the last)."""


def sun_funnel(
    plausible: Sequence[bool], converged: Sequence[bool], e_hull_ev_per_atom: Sequence[float | None],
    unique: Sequence[bool], novel: Sequence[bool | None], threshold: float = 0.1,
) -> dict[str, int]:
    """Counts of the S.U.N. funnel (``FUNNEL_STEPS``) plus ``e_hull_le_0`` (of those <= threshold, at or below 0).

    ``converged`` means relaxed, converged and physical; an E_hull of None (no hull, failed) stops there;
    a novelty of None (not computed) counts as not novel.
    """
    n = len(plausible)
    if not (len(converged) == len(e_hull_ev_per_atom) == len(unique) == len(novel) == n):
        raise ValueError("sun_funnel: every flag list must have one entry per candidate")
    keep = [bool(p) for p in plausible]
    counts = {"candidates": n, "plausible": sum(keep)}
    keep = [k and bool(c) for k, c in zip(keep, converged)]
    counts["relaxed_converged"] = sum(keep)
    keep = [k and e is not None and e <= threshold for k, e in zip(keep, e_hull_ev_per_atom)]
    counts[f"e_hull_le_{threshold:g}"] = sum(keep)
    counts["e_hull_le_0"] = sum(1 for k, e in zip(keep, e_hull_ev_per_atom) if k and e <= 0.0)
    keep = [k and bool(u) for k, u in zip(keep, unique)]
    counts["unique"] = sum(keep)
    keep = [k and bool(v) for k, v in zip(keep, novel)]
    counts["novel"] = counts["sun"] = sum(keep)
    return counts
