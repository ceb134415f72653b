"""Space groups at the stated tolerance, the per-structure CIF that states them, and the symmetrised CIF."""

from __future__ import annotations

import warnings

import numpy as np
from pymatgen.core import Lattice, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from pccd_hpc.data.symmetry import (SYMPREC_ANG, SpaceGroup, cif_with_space_group, non_p1_fraction, space_group,
                                    symmetrized_cif)


def _rocksalt() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.21), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def _shaken() -> Structure:
    """Rock salt with one atom moved by 0.03 A: inside the 0.1 A tolerance, outside 0.01 A."""
    shaken = _rocksalt()
    shaken.translate_sites([3], [0.03, 0.0, 0.0], frac_coords=False)
    return shaken


def test_space_group_at_the_stated_tolerance_matches_spglib_and_a_tighter_one_sees_p1() -> None:
    shaken = _shaken()
    assert space_group(_rocksalt()) == SpaceGroup("Fm-3m", 225)
    assert space_group(shaken) == SpaceGroup("Fm-3m", 225) and SYMPREC_ANG == 0.1
    tight = space_group(shaken, 0.01)
    assert tight is not None and tight.number != 225  # at 0.01 A the moved atom breaks the cubic symmetry
    assert tight.number == SpacegroupAnalyzer(shaken, symprec=0.01).get_space_group_number()  # spglib read directly
    assert non_p1_fraction([SpaceGroup("P1", 1), SpaceGroup("Fm-3m", 225), None]) == 0.5
    assert non_p1_fraction([None]) is None


def test_cif_with_space_group_keeps_every_atom_and_loads_without_warnings() -> None:
    shaken = _shaken()
    text = cif_with_space_group(shaken, "gen-0000007", space_group(shaken))
    assert "_pccd_spglib_space_group_name_H-M   'Fm-3m'" in text and "_pccd_spglib_symprec_ang   0.1" in text
    assert "data_gen-0000007_MgO" in text
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = Structure.from_str(text, fmt="cif")
    assert len(back) == len(shaken)
    assert np.allclose(back.lattice.matrix, shaken.lattice.matrix, atol=1e-6)
    assert np.allclose(back.frac_coords, shaken.frac_coords % 1.0, atol=1e-6)  # not moved onto symmetric positions


def test_symmetrized_cif_puts_a_shaken_crystal_back_on_its_space_group() -> None:
    shaken = _shaken()
    text = symmetrized_cif(shaken)
    assert text is not None and "Fm-3m" in text
    back = Structure.from_str(text, fmt="cif")
    assert SpacegroupAnalyzer(back, symprec=1e-3).get_space_group_number() == 225
    assert back.composition.reduced_formula == "MgO" and len(back) == 8
