"""Supercell augmentation: the doubled cell holds the same crystal, twice the sites, in a Niggli-reduced cell."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from pccd_hpc.data.codec import CodecConfig, encode_structure
from pccd_hpc.data.geometry import is_supercell
from pccd_hpc.data.readers import enumerate_records, parse_record
from pccd_hpc.data.sample import sample_csv_path
from pccd_hpc.data.supercell import doubled_cell_sites

_EXACT = StructureMatcher(ltol=1e-3, stol=1e-3, angle_tol=1e-2, primitive_cell=False, scale=False,
                          attempt_supercell=False)


def _small_sample_structures(count: int) -> list[Structure]:
    """Encodable sample structures of at most 8 sites, of several lattice systems."""
    out = []
    for record in enumerate_records([str(sample_csv_path())]):
        s = parse_record(record)
        if len(s) <= 8 and len(s.composition.elements) <= 3:
            out.append(s)
        if len(out) == count:
            break
    return out


def _as_structure(frac: np.ndarray, slots: np.ndarray, params: np.ndarray, element_z: np.ndarray) -> Structure:
    return Structure(Lattice.from_parameters(*params), [int(element_z[k]) for k in slots], frac)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_doubled_cell_is_the_pymatgen_supercell_reduced(axis: int) -> None:
    codec = CodecConfig()
    structures = _small_sample_structures(12)
    assert len(structures) == 12
    for s in structures:
        enc = encode_structure(s, codec)
        frac, slots, params = doubled_cell_sites(enc.frac_coords, enc.slot_index, enc.lattice_params, axis)
        n = len(enc.slot_index)
        assert frac.shape == (2 * n, 3) and slots.shape == (2 * n,) and np.all((frac >= 0) & (frac < 1))
        assert np.array_equal(slots[:n], enc.slot_index) and np.array_equal(slots[n:], enc.slot_index)
        doubled = _as_structure(frac, slots, params, enc.element_z)
        scale = [1, 1, 1]
        scale[axis] = 2
        want = _as_structure(enc.frac_coords, enc.slot_index, enc.lattice_params, enc.element_z).make_supercell(scale)
        assert doubled.volume == pytest.approx(2 * enc.structure.volume, rel=1e-6)
        assert _EXACT.fit(doubled, want), s.composition
        reduced = doubled.lattice.get_niggli_reduced_lattice()  # already reduced: reducing again changes nothing
        assert np.allclose(reduced.abc, params[:3], atol=1e-6) and np.allclose(reduced.angles, params[3:], atol=1e-4)
        assert is_supercell(doubled)


def test_doubled_cell_rejects_a_bad_axis() -> None:
    with pytest.raises(ValueError, match="axis"):
        doubled_cell_sites(np.zeros((1, 3)), np.zeros(1, dtype=int), np.array([3.0, 3, 3, 90, 90, 90]), 3)


def test_is_supercell_tells_a_repeated_cell_from_a_primitive_one() -> None:
    rocksalt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    primitive = rocksalt.get_primitive_structure()
    assert len(primitive) == 2 and not is_supercell(primitive)
    assert is_supercell(rocksalt)  # the conventional cell holds four primitive cells
    rattled = primitive.copy().make_supercell([1, 1, 2])
    rattled.translate_sites([0], [0.4, 0, 0], frac_coords=False)  # 0.4 A off: no longer a repeat at 0.25 A
    assert not is_supercell(rattled)
