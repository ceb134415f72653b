"""The push-apart step: separations reached (checked against pymatgen's own distances), real crystals untouched."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from pccd_hpc.data.geometry import covalent_radius_ang, min_bond_ratio
from pccd_hpc.data.separation import push_apart


def _pair_ratios(s: Structure) -> np.ndarray:
    """d_ij / (r_i + r_j) for every pair, from pymatgen's minimum-image distance matrix (independent of the module)."""
    radii = np.array([covalent_radius_ang(site.specie.symbol) for site in s])
    ratio = s.distance_matrix / (radii[:, None] + radii[None, :])
    return ratio[np.triu_indices(len(s), 1)]


def test_overlapping_atoms_are_pushed_to_the_separation_keeping_cell_and_composition() -> None:
    s = Structure(Lattice.cubic(5.0), ["Mg", "O", "O", "Mg"], [[0, 0, 0], [0.1, 0, 0], [0.5, 0.5, 0.5], [0.52, 0.5, 0.5]])
    assert min_bond_ratio(s) < 0.3
    result = push_apart(s, factor=0.8)
    assert result.converged and result.length_scale == 1.0
    assert result.min_bond_ratio_before == pytest.approx(min_bond_ratio(s))
    assert _pair_ratios(result.structure).min() >= 0.8 - 0.01
    assert result.min_bond_ratio_after == pytest.approx(min_bond_ratio(result.structure))
    assert result.structure.composition == s.composition
    assert result.structure.volume == pytest.approx(s.volume)
    assert 0.3 < result.max_shift_ang < 2.5


def test_a_real_crystal_is_left_where_it_is() -> None:
    rocksalt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.21), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    result = push_apart(rocksalt, factor=0.8)
    assert result.converged and result.max_shift_ang < 1e-9 and result.length_scale == 1.0
    assert result.min_bond_ratio_after == pytest.approx(min_bond_ratio(rocksalt))


def test_a_cell_too_small_for_its_atoms_is_expanded_or_reported() -> None:
    tiny = Structure(Lattice.cubic(2.0), ["Ba", "Ba"], [[0, 0, 0], [0.5, 0.5, 0.5]])  # Ba-Ba bond 4.3 A
    grown = push_apart(tiny, factor=0.8, max_length_scale=2.0)
    assert grown.converged and grown.length_scale > 1.5
    assert min_bond_ratio(grown.structure) >= 0.79
    capped = push_apart(tiny, factor=0.8, max_length_scale=1.0)
    assert not capped.converged and capped.length_scale == 1.0 and capped.min_bond_ratio_after < 0.8


@pytest.mark.parametrize("kwargs", [{"factor": 0.0}, {"factor": -1.0}, {"max_length_scale": 0.9}])
def test_bad_settings_are_refused(kwargs: dict) -> None:
    s = Structure(Lattice.cubic(5.0), ["Mg"], [[0, 0, 0]])
    with pytest.raises(ValueError):
        push_apart(s, **kwargs)


def test_coincident_atoms_are_parted() -> None:
    s = Structure(Lattice.cubic(6.0), ["Mg", "O"], [[0.3, 0.3, 0.3], [0.3, 0.3, 0.3]], validate_proximity=False)
    result = push_apart(s, factor=0.8)
    assert result.converged and _pair_ratios(result.structure).min() >= 0.79


def test_decode_separated_keeps_overlapping_atoms_and_separates_them() -> None:
    from pccd_hpc.data.codec import CodecConfig, decode_tensor, encode_arrays
    from pccd_hpc.data.separation import decode_separated

    codec = CodecConfig()
    frac = np.array([[0.50, 0.5, 0.5], [0.0, 0.0, 0.0], [0.56, 0.5, 0.5]])  # Mg and an O 0.3 A apart
    tensor = encode_arrays(frac, np.array([0, 1, 1]), np.array([5.0, 5.0, 5.0, 90.0, 90.0, 90.0]), codec)
    slots = np.array([12, 8, 8])
    assert decode_tensor(tensor, slots, codec).reason == "overlapping_atoms"
    plain = decode_separated(tensor, slots, codec, None)
    assert plain.result.reason == "overlapping_atoms" and not plain.sampled_valid and plain.separation is None
    pushed = decode_separated(tensor, slots, codec, 0.8, require_all_elements=True)
    assert pushed.result.valid and not pushed.sampled_valid and pushed.separation.converged
    assert pushed.sampled_min_bond_ratio < 0.3
    assert _pair_ratios(pushed.result.structure).min() >= 0.79
    assert pushed.result.structure.composition.reduced_formula == "MgO2"


def test_the_result_keeps_the_input_cell_vectors_and_site_order() -> None:
    # a skewed, non-reduced cell: the search runs in the reduced cell, the answer must come back in this one
    cell = Lattice([[4.0, 0.0, 0.0], [3.0, 4.0, 0.0], [1.0, 2.5, 5.0]])
    frac = [[0.1, 0.2, 0.3], [0.12, 0.2, 0.3], [0.6, 0.7, 0.4], [0.35, 0.85, 0.75]]
    s = Structure(cell, ["Mg", "O", "O", "Si"], frac)
    assert s.lattice.abc != pytest.approx(s.get_reduced_structure().lattice.abc)
    result = push_apart(s, factor=0.8)
    assert result.converged and result.length_scale == 1.0
    assert np.allclose(result.structure.lattice.matrix, cell.matrix)
    assert [site.specie.symbol for site in result.structure] == ["Mg", "O", "O", "Si"]
    # every atom is where it was, up to its own displacement (which never exceeds the reported largest one)
    moved = result.structure.frac_coords - s.frac_coords
    moved -= np.round(moved)
    shifts = np.linalg.norm(moved @ cell.matrix, axis=1)
    assert shifts.max() == pytest.approx(result.max_shift_ang, abs=1e-6)
    assert shifts[0] > 0.3 and shifts[1] > 0.3  # the close Mg-O pair moved apart
    assert _pair_ratios(result.structure).min() >= 0.8 - 0.01
