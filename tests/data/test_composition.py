"""Formulas as the codec sees them: cells that fit, refusals naming the formula, the element channel, fixed-site decoding."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from pccd_hpc.data.codec import CodecConfig, RecordError, encode_structure
from pccd_hpc.data.composition import (
    cell_compositions, composition_of_structure, decode_candidate, decode_with_sites, element_channel, parse_formula,
)
from pccd_hpc.data.roundtrip import structure_matcher
from pccd_hpc.data.sample import sample_structures

CODEC = CodecConfig()


def test_reduced_formula_gives_every_multiple_that_fits_and_written_one_is_kept() -> None:
    cells = cell_compositions("Sr2TiO4", CODEC)
    assert [(c.formula_units, c.n_sites) for c in cells] == [(1, 7), (2, 14)]
    assert cells[0].element_z == (38, 22, 8) and cells[1].slot_counts == (4, 2, 8)
    written = cell_compositions("Sr4Ti2O8", CODEC)
    assert [(c.formula_units, c.n_sites, c.label) for c in written] == [(2, 14, "Sr2TiO4-Z2")]
    assert [c.n_sites for c in cell_compositions("Si", CODEC, formula_units=3)] == [3]
    assert cell_compositions("Si", CODEC)[-1].n_sites == 16


@pytest.mark.parametrize("formula, reason, words", [
    ("Ba2YCu3O7", "too_many_elements", "4 elements"),
    ("Mg9Al8", "too_many_sites", "17 sites"),
    ("Sr2TiO4", "too_many_sites", "21 sites"),
])
def test_formulas_beyond_the_codec_are_refused_naming_them(formula: str, reason: str, words: str) -> None:
    units = 3 if formula == "Sr2TiO4" else None
    with pytest.raises(RecordError) as err:
        cell_compositions(formula, CODEC, units)
    assert err.value.reason == reason and err.value.record_id == formula and words in str(err.value)


@pytest.mark.parametrize("text", ["", "Sr2TiO4; rm -rf", "Fe0.5O", "../x", "Qq2"])
def test_text_that_is_not_a_whole_number_formula_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_formula(text)


def test_element_channel_is_the_encoded_channel_of_real_structures() -> None:
    for s in sample_structures(12):
        encoded = encode_structure(s, CODEC)
        cell = composition_of_structure(s)
        assert cell.n_sites == len(s) and cell.element_z == tuple(encoded.element_z)
        np.testing.assert_array_equal(element_channel(cell, CODEC.n_points), encoded.tensor[1])


def test_decoding_with_known_sites_gives_back_the_encoded_structure() -> None:
    matcher = structure_matcher()
    for s in sample_structures(12):
        encoded = encode_structure(s, CODEC)
        result = decode_with_sites(encoded.tensor, composition_of_structure(s), CODEC)
        assert result.valid and result.structure.composition == s.composition
        assert matcher.fit(result.structure, s)


def test_decoding_keeps_the_composition_even_where_blocks_are_ragged() -> None:
    s = Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    encoded = encode_structure(s, CODEC)
    tensor = encoded.tensor.copy()
    rng = np.random.default_rng(0)
    tensor[0] = np.mod(tensor[0] + rng.normal(0, 0.08, tensor[0].shape), 1.0)  # blocks too loose for the blocks decoder
    result = decode_candidate(tensor, composition_of_structure(s), CODEC, 0.8)
    assert result.valid and result.structure.composition.reduced_formula == "MgO" and len(result.structure) == 2
