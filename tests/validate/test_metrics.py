"""Metrics against hand-checked cases and independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from scipy.stats import wasserstein_distance

from pccd_hpc.materials import metrics as M
from _structures import diamond_si, rocksalt_mgo, zincblende_mgo


def test_structural_validity_rejects_close_atoms_and_tiny_cells():
    assert M.structural_validity(rocksalt_mgo())
    close = Structure(Lattice.cubic(4.0), ["Mg", "O"], [[0, 0, 0], [0.1, 0, 0]])  # 0.4 Å apart
    assert not M.structural_validity(close)
    assert M.structural_validity(close, min_distance_ang=0.3)
    tiny = Structure(Lattice.cubic(0.4), ["Mg"], [[0, 0, 0]])  # 0.064 Å^3
    assert not M.structural_validity(tiny)


def test_compositional_validity_follows_smact_rules():
    pytest.importorskip("smact")
    nacl = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    nacl2 = Structure(Lattice.cubic(5.0), ["Na", "Cl", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]])
    alloy = Structure(Lattice.cubic(3.0), ["Cu", "Zn"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert M.compositional_validity(nacl)
    assert not M.compositional_validity(nacl2)  # Na+ cannot balance two chlorines
    assert M.compositional_validity(alloy)  # all-metal: valid by convention
    assert M.compositional_validity(diamond_si())  # one element


def test_uniqueness_and_novelty_use_structure_matcher():
    rs = rocksalt_mgo()
    rs_super = rs.copy()
    rs_super.make_supercell([2, 1, 1])
    rs_super.perturb(0.01)
    zb = zincblende_mgo()
    assert M.uniqueness_flags([rs, zb, rs_super]) == [True, True, False]
    assert M.novelty_flags([rs, zb], training=[rs_super]) == [False, True]


def test_stability_fractions_and_sun_rate():
    e_hull = [-0.01, 0.0, 0.05, 0.2, None]
    assert M.fraction_below(e_hull, 0.1) == pytest.approx(3 / 5)
    assert M.fraction_below(e_hull, 0.0, strict=False) == pytest.approx(2 / 5)
    assert M.fraction_below(e_hull, 0.25) == pytest.approx(4 / 5)  # the failure (None) counts as not below
    unique = [True, False, True, True, True]
    novel = [True, True, False, True, True]
    assert M.sun_rate(e_hull, unique, novel, 0.1) == pytest.approx(1 / 5)
    with pytest.raises(ValueError):
        M.sun_rate(e_hull, unique[:2], novel, 0.1)
    assert math.isnan(M.fraction_below([], 0.1))


def test_wasserstein_matches_scipy_on_densities():
    gen = [rocksalt_mgo(4.21), rocksalt_mgo(4.5), diamond_si()]
    ref = [rocksalt_mgo(4.0), zincblende_mgo()]
    out = M.wasserstein_distances(gen, ref)
    expected = wasserstein_distance([s.density for s in gen], [s.density for s in ref])
    assert out["wdist_density"] == pytest.approx(expected)
    assert out["wdist_n_elements"] == pytest.approx(wasserstein_distance([2, 2, 1], [2, 2]))
    assert out["wdist_density"] > 0
    assert M.wasserstein_distances(ref, ref)["wdist_density"] == pytest.approx(0.0)
    assert np.array_equal(M.n_elements(gen), [2, 2, 1])


def test_sun_funnel_keeps_a_subset_at_every_step():
    from pccd_hpc.materials.metrics import sun_funnel

    plausible = [True, True, True, True, True, False]
    converged = [True, True, True, False, True, True]
    e_hull = [-0.02, 0.05, 0.3, 0.0, 0.1, 0.0]
    unique = [True, False, True, True, True, True]
    novel = [True, True, True, True, None, True]
    counts = sun_funnel(plausible, converged, e_hull, unique, novel, threshold=0.1)
    # 0: all the way; 1: not unique; 2: above 0.1; 3: not converged; 4: novelty unknown; 5: implausible
    assert counts == {"candidates": 6, "plausible": 5, "relaxed_converged": 4, "e_hull_le_0.1": 3, "e_hull_le_0": 1,
                      "unique": 2, "novel": 1, "sun": 1}
    with pytest.raises(ValueError, match="one entry per candidate"):
        sun_funnel(plausible[:2], converged, e_hull, unique, novel)


def test_structural_validity_agrees_with_the_distance_matrix_and_stays_small() -> None:
    """Issue 30: the neighbour-list check matches the full distance matrix (random cells, one to seven atoms) and
    checks a 10,648-atom cell in bounded memory (the matrix took 4.9 GB)."""
    import resource

    import numpy as np
    from pymatgen.core import Lattice, Structure

    from pccd_hpc.materials.metrics import structural_validity

    def by_matrix(s: Structure) -> bool:
        if len(s) < 2:
            return min(s.lattice.abc) >= 0.5
        return bool((s.distance_matrix + np.diag(np.full(len(s), np.inf))).min() >= 0.5)

    rng = np.random.default_rng(0)
    verdicts = []
    for _ in range(200):
        n = int(rng.integers(1, 8))
        lattice = Lattice.from_parameters(*rng.uniform(1.5, 6, 3), *rng.uniform(60, 120, 3))
        s = Structure(lattice, ["Mg"] * n, rng.random((n, 3)))
        assert structural_validity(s) == by_matrix(s)
        verdicts.append(by_matrix(s))
    assert 0 < sum(verdicts) < len(verdicts)  # both outcomes were exercised
    big = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.21), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    big.make_supercell([11, 11, 11])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert structural_validity(big)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 300_000  # KiB
