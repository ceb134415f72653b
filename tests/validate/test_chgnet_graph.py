"""CHGNet crystal graphs built with array operations equal CHGNet's converter's, element by element."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from pccd_hpc.data.sample import sample_csv_path
from pccd_hpc.materials.structure_inputs import iter_input_structures

pytest.importorskip("chgnet")

FIELDS = ("atomic_number", "atom_frac_coord", "atom_graph", "neighbor_image", "directed2undirected",
          "undirected2directed", "bond_graph", "lattice")


@pytest.fixture(scope="module")
def converter():
    from chgnet.model import CHGNet

    return CHGNet.load(verbose=False).graph_converter


def _assert_same_graph(converter, structure: Structure) -> None:
    import torch

    from pccd_hpc.materials.backends.chgnet_graph import crystal_graph

    own, ours = converter(structure), crystal_graph(converter, structure)
    for name in FIELDS:
        a, b = getattr(own, name), getattr(ours, name)
        assert a.shape == b.shape and a.dtype == b.dtype, (structure.formula, name, a.shape, b.shape)
        assert torch.equal(a, b), (structure.formula, name)
        assert a.requires_grad == b.requires_grad, (structure.formula, name)
    assert own.composition == ours.composition


def _squeezed_and_rattled(structure: Structure, seed: int) -> Structure:
    """A denser, distorted copy (more bonds within 3 Å, so more angles; no symmetry left to tie distances)."""
    rng = np.random.default_rng(seed)
    out = structure.copy()
    out.scale_lattice(out.volume * 0.8)
    for i in range(len(out)):
        out.translate_sites([i], rng.normal(0, 0.05, 3), frac_coords=False)
    return out


def test_same_graphs_as_chgnets_converter_on_the_shipped_sample(converter):
    structures = [s for _, s in itertools.islice(iter_input_structures(sample_csv_path()), 80)]
    assert len(structures) == 80
    for seed, structure in enumerate(structures):
        _assert_same_graph(converter, structure)
        _assert_same_graph(converter, _squeezed_and_rattled(structure, seed))


@pytest.mark.parametrize("structure", [
    Structure(Lattice.cubic(2.87), ["Fe"], [[0, 0, 0]]),  # one site: every bond is to an image of itself
    Structure(Lattice.cubic(10.0), ["Na", "Cl"], [[0, 0, 0], [0.34, 0, 0]]),  # bonds, but none within 3 Å: no angles
    Structure(Lattice.hexagonal(2.46, 6.7), ["C"] * 4, [[0, 0, 0.25], [0, 0, 0.75], [1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]]),
], ids=["bcc-Fe-1-site", "no-angles", "graphite"])
def test_same_graphs_on_edge_cases(converter, structure):
    _assert_same_graph(converter, structure)


def test_an_isolated_atom_is_refused_as_chgnets_converter_refuses_it(converter):
    from pccd_hpc.materials.backends.chgnet_graph import crystal_graph

    lonely = Structure(Lattice.cubic(20.0), ["Na", "Cl", "Ar"], [[0, 0, 0], [0.12, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(ValueError, match="isolated atom"):
        converter(lonely)
    with pytest.raises(ValueError, match="isolated atom"):
        crystal_graph(converter, lonely)


def test_a_bond_without_its_reverse_goes_to_chgnets_converter():
    from pccd_hpc.materials.backends.chgnet_graph import _UseConverter, graph_arrays

    center, neighbor = np.array([0, 1, 0]), np.array([1, 0, 1])
    image = np.array([[0, 0, 0], [0, 0, 0], [1, 0, 0]], dtype=float)
    distance = np.array([2.0, 2.0, 4.0])
    with pytest.raises(_UseConverter, match="reverse"):
        graph_arrays(2, center, neighbor, image, distance, 3.0)
    atom_graph, d2u, bond_graph, u2d = graph_arrays(2, center[:2], neighbor[:2], image[:2], distance[:2], 3.0)
    assert d2u.tolist() == [0, 0] and u2d.tolist() == [0] and atom_graph.tolist() == [[0, 1], [1, 0]]
    assert bond_graph.shape == (0,)  # each atom has one bond: no angle


def test_the_calculator_builds_graphs_this_way_unless_told_not_to(chgnet_backend):
    from pccd_hpc.materials.backends.registry import get_backend

    assert chgnet_backend.calculator.array_graphs is True
    assert get_backend("chgnet", array_graphs=False).calculator.array_graphs is False
