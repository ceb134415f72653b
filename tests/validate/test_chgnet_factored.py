"""CHGNet's message-passing layers in factored order compute CHGNet's own function (float32 rounding apart)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from _structures import diamond_si, rocksalt_mgo

pytest.importorskip("chgnet")


@pytest.fixture(scope="module")
def models():
    """CHGNet's bundled model twice: with its own layers, and factored."""
    from chgnet.model import CHGNet

    from pccd_hpc.materials.backends.chgnet_factored import factor_message_passing

    return CHGNet.load(verbose=False), factor_message_passing(CHGNet.load(verbose=False))


def _energy_forces_stress(model, structure: Structure) -> tuple[float, np.ndarray, np.ndarray]:
    from pymatgen.io.ase import AseAtomsAdaptor

    from pccd_hpc.materials.backends.chgnet import InferenceCHGNetCalculator

    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.calc = InferenceCHGNetCalculator(model)
    return atoms.get_potential_energy() / len(atoms), atoms.get_forces(), atoms.get_stress()


def _ternary_with_many_angles() -> Structure:
    """A distorted 10-site Ba-Ti-O cell: dense, so its bond graph has hundreds of angles."""
    rng = np.random.default_rng(3)
    frac = np.array([[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    frac = np.vstack([frac * [0.5, 1, 1], frac * [0.5, 1, 1] + [0.5, 0, 0]]) + rng.normal(0, 0.02, (10, 3))
    return Structure(Lattice.from_parameters(8.1, 4.0, 4.05, 90, 92, 89), ["Ba", "Ti", "O", "O", "O"] * 2, frac)


@pytest.mark.parametrize("structure", [_ternary_with_many_angles(), diamond_si(5.6), rocksalt_mgo(4.3)],
                         ids=["BaTiO3-distorted", "Si", "MgO"])
def test_factored_layers_give_chgnets_energies_forces_and_stresses(models, structure):
    own, factored = models
    e_own, f_own, s_own = _energy_forces_stress(own, structure)
    e_fac, f_fac, s_fac = _energy_forces_stress(factored, structure)
    assert e_fac == pytest.approx(e_own, abs=2e-6)  # float32 rounding of an energy of a few eV/atom
    assert np.abs(f_fac - f_own).max() < 1e-4
    assert np.abs(s_fac - s_own).max() < 1e-6
    assert np.abs(f_own).max() + np.abs(s_own).max() > 1e-3  # not a comparison of zeros


def test_factored_layers_handle_a_cell_without_angles(models):
    """Two atoms 3.4 Å apart in a large box: neighbours in the atom graph, no bond within 3 Å, so no angles."""
    own, factored = models
    pair = Structure(Lattice.cubic(10.0), ["Na", "Cl"], [[0, 0, 0], [0.34, 0, 0]])
    e_own, f_own, _ = _energy_forces_stress(own, pair)
    e_fac, f_fac, _ = _energy_forces_stress(factored, pair)
    assert e_fac == pytest.approx(e_own, abs=2e-6)
    assert np.abs(f_fac - f_own).max() < 1e-4
    assert np.abs(f_own).max() > 1e-3


def test_factored_layers_replace_every_convolution(models):
    from pccd_hpc.materials.backends.chgnet_factored import (FactoredAngleUpdate, FactoredAtomConv,
                                                             FactoredBondConv)

    _, factored = models
    assert all(isinstance(layer, FactoredAtomConv) for layer in factored.atom_conv_layers)
    assert all(isinstance(layer, FactoredBondConv) for layer in factored.bond_conv_layers)
    assert all(isinstance(layer, FactoredAngleUpdate) for layer in factored.angle_layers)


def test_a_mismatched_layout_is_refused_and_the_backend_keeps_chgnets_layers(models, caplog):
    from pccd_hpc.materials.backends.chgnet import _factored_or_as_is
    from pccd_hpc.materials.backends.chgnet_factored import FactoredGatedMLP

    own, _ = models
    with pytest.raises(ValueError, match="do not match"):
        FactoredGatedMLP(own.atom_conv_layers[0].twoBody_atom, [64, 64])

    class NotChgnet:
        pass

    odd = NotChgnet()
    with caplog.at_level(logging.WARNING):
        assert _factored_or_as_is(odd) is odd
    assert "keeping its own message-passing layers" in caplog.text


def test_backend_option_selects_the_layers(chgnet_backend):
    from chgnet.model.layers import AtomConv

    from pccd_hpc.materials.backends.chgnet_factored import FactoredAtomConv
    from pccd_hpc.materials.backends.registry import get_backend

    assert isinstance(chgnet_backend.calculator.model.atom_conv_layers[0], FactoredAtomConv)
    own_layers = get_backend("chgnet", factored_layers=False).calculator.model
    assert type(own_layers.atom_conv_layers[0]) is AtomConv
