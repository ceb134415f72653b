"""The point-cloud codec: layout, the reference implementation's faults, decoding on the torus."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Element, Lattice, Structure

from pccd_hpc.data.codec import (
    CodecConfig,
    RecordError,
    canonical_element_slots,
    decode_tensor,
    encode_arrays,
    encode_structure,
    point_counts,
)
from pccd_hpc.data.roundtrip import check_roundtrip, structure_matcher

CODEC = CodecConfig()


def _rocksalt() -> Structure:
    # sites deliberately listed anion first: the slot order must not follow the file order
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.21), ["O", "Mg"], [[0.5, 0.5, 0.5], [0, 0, 0]]).get_primitive_structure()


def test_tensor_layout_and_lattice_channel() -> None:
    s = Structure(Lattice.from_parameters(3.0, 4.0, 5.0, 80, 95, 100), ["Si", "O", "O"], [[0, 0, 0], [0.2, 0.3, 0.4], [0.7, 0.1, 0.9]])
    enc = encode_structure(s, CodecConfig(niggli_reduce=False))
    assert enc.tensor.shape == (3, 128, 3) and enc.tensor.dtype == np.float32
    np.testing.assert_allclose(enc.tensor[2, :64], np.tile(np.radians([80, 95, 100]) / np.pi, (64, 1)), rtol=1e-6)
    np.testing.assert_allclose(enc.tensor[2, 64:], np.tile(np.log([3.0, 4.0, 5.0]) / np.log(15), (64, 1)), rtol=1e-6)
    np.testing.assert_allclose(enc.tensor[1].sum(axis=1), 1.0)


def test_leftover_points_are_spread_not_piled_on_the_last_atom() -> None:
    for n in range(1, 17):
        counts = point_counts(n)
        assert counts.sum() == 128
        assert counts.max() - counts.min() <= (0 if 128 % n == 0 else 1), n


def test_slot_order_is_canonical_for_one_hot_and_condition() -> None:
    enc = encode_structure(_rocksalt(), CODEC)
    assert [Element.from_Z(z).symbol for z in enc.element_z] == ["Mg", "O", "O"]  # padded by repetition
    # the one-hot of every point names the slot of the element the site really holds
    slots = np.argmax(enc.tensor[1], axis=1)
    decoded = decode_tensor(enc.tensor, enc.element_z, CODEC).structure
    assert decoded.composition.reduced_formula == "MgO"
    assert set(slots.tolist()) == {0, 1}


def test_element_slots_have_no_index_collisions() -> None:
    """Every element maps to itself (the reference table gave two elements one index)."""
    seen = {}
    for z in range(1, 104):
        s = Structure(Lattice.cubic(3.0), [z], [[0.1, 0.2, 0.3]])
        enc = encode_structure(s, CODEC)
        assert enc.element_z.tolist() == [z, z, z]
        out = decode_tensor(enc.tensor, enc.element_z, CODEC).structure
        assert out[0].specie.Z == z
        seen[z] = tuple(enc.element_z)
    assert len(set(seen.values())) == len(seen)


def test_canonical_slots_reject_four_elements() -> None:
    with pytest.raises(RecordError) as err:
        canonical_element_slots([1, 8, 26, 29])
    assert err.value.reason == "too_many_elements"


def test_negative_coordinates_keep_their_sign(tmp_path) -> None:
    """A POSCAR with negative fractional coordinates round-trips (the reference regex dropped '-')."""
    poscar = tmp_path / "POSCAR"
    poscar.write_text(
        "NaCl with negative coords\n1.0\n5.6 0 0\n0 5.6 0\n0 0 5.6\nNa Cl\n1 1\nDirect\n-0.25 -0.10 0.05\n0.25 0.40 -0.45\n"
    )
    s = Structure.from_file(poscar)
    enc = encode_structure(s, CodecConfig(niggli_reduce=False))
    np.testing.assert_allclose(enc.frac_coords[0], [0.75, 0.90, 0.05], atol=1e-9)
    out = decode_tensor(enc.tensor, enc.element_z, CODEC).structure
    assert structure_matcher().fit(s, out)
    assert np.allclose(sorted(out.frac_coords[:, 0]), [0.25, 0.75], atol=1e-6)


def test_no_rounding_of_coordinates() -> None:
    s = Structure(Lattice.cubic(5.0), ["Cu", "Cu"], [[0.123456, 0.654321, 0.111111], [0.6, 0.6, 0.6]])
    out = decode_tensor(encode_structure(s, CodecConfig(niggli_reduce=False)).tensor, [29, 29, 29], CODEC).structure
    got = sorted(map(tuple, np.round(out.frac_coords, 9)))
    assert abs(got[0][0] - 0.123456) < 1e-6 and abs(got[0][2] - 0.111111) < 1e-6  # not 0.12 / 0.11


def test_close_atoms_are_not_merged() -> None:
    """Two atoms 0.8 A apart in a 12 A cell (0.067 in fractional units) stay two atoms."""
    s = Structure(Lattice.cubic(12.0), ["H", "H"], [[0.5, 0.5, 0.5], [0.5 + 0.8 / 12, 0.5, 0.5]])
    out = decode_tensor(encode_structure(s, CODEC).tensor, [1, 1, 1], CODEC)
    assert out.valid and len(out.structure) == 2


def test_atom_on_the_cell_face_is_one_atom() -> None:
    """Noisy copies of an atom at x ~ 0 land on both faces; on the torus they are one atom."""
    s = Structure(Lattice.cubic(4.0), ["Po"], [[0.0, 0.5, 0.5]])
    enc = encode_structure(s, CODEC)
    rng = np.random.default_rng(0)
    noisy = enc.tensor.copy()
    noisy[0] = np.mod(noisy[0] + rng.normal(0, 0.01, noisy[0].shape), 1.0)
    assert (noisy[0, :, 0] > 0.9).any() and (noisy[0, :, 0] < 0.1).any()
    out = decode_tensor(noisy, enc.element_z, CODEC)
    assert out.valid and len(out.structure) == 1
    x = out.structure.frac_coords[0, 0]
    assert min(x, 1 - x) < 0.01


def test_dbscan_noise_is_not_an_atom() -> None:
    s = Structure(Lattice.cubic(6.0), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    enc = encode_structure(s, CODEC)
    stray = enc.tensor.copy()
    stray[0, 0] = [0.25, 0.25, 0.25]  # one isolated point far from both atoms
    out = decode_tensor(stray, enc.element_z, CODEC)
    assert out.valid and len(out.structure) == 2


def test_linear_preset_rejects_long_cells_but_log_encodes_them() -> None:
    s = Structure(Lattice.tetragonal(3.0, 21.0), ["C", "C"], [[0, 0, 0], [0.5, 0.5, 0.3]])
    with pytest.raises(RecordError) as err:
        encode_structure(s, CodecConfig.paper())
    assert err.value.reason == "lattice_out_of_range"
    enc = encode_structure(s, CODEC)
    assert check_roundtrip(s, enc, CODEC).matched


def test_decoder_rejections_name_their_reason() -> None:
    s = Structure(Lattice.cubic(5.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    enc = encode_structure(s, CODEC)
    overlap = enc.tensor.copy()
    overlap[0, 64:] = [0.04, 0.0, 0.0]  # Cl at 0.2 A from Na
    overlap[1, 64:] = [1, 0, 0]
    overlap[1, :64] = 0
    overlap[1, :64, 1] = 1
    overlap[0, :64] = [0.0, 0.0, 0.0]
    assert decode_tensor(overlap, enc.element_z, CODEC).reason in {"overlapping_atoms"}
    flat = enc.tensor.copy()
    flat[2, :64] = [0.5, 0.5, 0.99]  # gamma ~ 178 deg: no volume
    flat[2, :64, 2] = 1.0
    assert decode_tensor(flat, enc.element_z, CODEC).reason == "degenerate_lattice"
    nan = enc.tensor.copy()
    nan[0, 3, 1] = np.nan
    assert decode_tensor(nan, enc.element_z, CODEC).reason == "non_finite"
    many = encode_arrays(np.random.default_rng(1).random((20, 3)), np.zeros(20, dtype=np.int64), np.array([9.0, 9, 9, 90, 90, 90]), CodecConfig(max_sites=20))
    assert decode_tensor(many, [6, 6, 6], CODEC).reason == "too_many_atoms"
    missing = decode_tensor(enc.tensor, [11, 17, 8], CODEC, require_all_elements=True)
    assert missing.reason == "wrong_element_count"


def test_encoder_rejects_partial_occupancy_and_too_many_sites() -> None:
    disordered = Structure(Lattice.cubic(4.0), [{"Fe": 0.5, "Co": 0.5}], [[0, 0, 0]])
    with pytest.raises(RecordError) as err:
        encode_structure(disordered, CODEC, record_id="mp-x")
    assert err.value.reason == "partial_occupancy" and "mp-x" in str(err.value)
    big = Structure(Lattice.cubic(10.0), ["C"] * 17, np.random.default_rng(0).random((17, 3)))
    with pytest.raises(RecordError) as err:
        encode_structure(big, CODEC)
    assert err.value.reason == "too_many_sites"


def test_codec_config_validates_and_round_trips() -> None:
    with pytest.raises(ValueError, match="length_norm"):
        CodecConfig(length_norm="cubic")
    with pytest.raises(ValueError, match="cluster_eps_ang"):
        CodecConfig(cluster_eps_ang=0)
    cfg = CodecConfig.paper()
    assert CodecConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        CodecConfig.from_dict({"bogus": 1})


BLOCKS = CodecConfig(decode_method="blocks")


def test_block_decoding_reads_the_codec_layout_exactly() -> None:
    """Clean encodings of structures with 1..16 sites decode to the same atoms with blocks as with DBSCAN."""
    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 5, 7, 12, 16):
        frac = rng.random((n, 3))
        slots = np.sort(rng.integers(0, 3, n))
        tensor = encode_arrays(frac, slots, np.array([9.0, 10.0, 11.0, 90.0, 95.0, 100.0]), CODEC)
        z = np.array([12, 26, 8])
        a, b = decode_tensor(tensor, z, CODEC), decode_tensor(tensor, z, BLOCKS)
        if not a.valid:  # random sites may overlap: both rules see the same atoms then
            assert a.reason == b.reason == "overlapping_atoms"
            continue
        assert len(b.structure) == n and b.structure.composition == a.structure.composition
        assert structure_matcher().fit(a.structure, b.structure)


def test_block_decoding_counts_atoms_that_clustering_merges_or_splits() -> None:
    """Noisy blocks: the atom count comes from the layout, not from how the points happen to cluster."""
    s = Structure(Lattice.cubic(8.0), ["O", "O", "Mg"], [[0.2, 0.2, 0.2], [0.26, 0.2, 0.2], [0.6, 0.6, 0.6]])
    enc = encode_structure(s, CODEC)
    noisy = enc.tensor.copy()
    noisy[0] = np.mod(noisy[0] + np.random.default_rng(0).normal(0, 0.012, noisy[0].shape), 1.0)  # ~0.1 A
    merged = decode_tensor(noisy, enc.element_z, CODEC)  # the two O 0.48 A apart chain into one cluster
    assert not merged.valid or len(merged.structure) != 3
    out = decode_tensor(noisy, enc.element_z, BLOCKS)
    assert out.reason == "overlapping_atoms" and out.n_atoms == 3  # three atoms, two of them too close
    # a point of the wrong species inside a block is outvoted
    flipped = enc.tensor.copy()
    flipped[1, 0] = [0, 1, 0]
    out = decode_tensor(flipped, enc.element_z, CodecConfig(decode_method="blocks", min_distance_ang=0.0))
    assert out.valid and out.structure.composition.reduced_formula == "MgO2"


def test_block_decoding_falls_back_to_clustering_when_no_layout_fits() -> None:
    s = Structure(Lattice.cubic(6.0), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    enc = encode_structure(s, CODEC)
    shuffled = enc.tensor.copy()
    shuffled[:, :] = shuffled[:, np.random.default_rng(1).permutation(128)]  # the rows no longer form blocks
    out = decode_tensor(shuffled, enc.element_z, CodecConfig(decode_method="blocks", block_rms_ang=0.05))
    assert out.valid and len(out.structure) == 2
    with pytest.raises(ValueError, match="decode_method"):
        CodecConfig(decode_method="kmeans")
