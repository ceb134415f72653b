"""Real CHGNet relaxations of small cells: convergence, energies, and the failure guards."""

from __future__ import annotations

import pytest

from pccd_hpc.materials.relax import RelaxConfig
from pccd_hpc.materials.errors import RelaxationDiverged, RelaxationTimeout
from _structures import diamond_si, rocksalt_mgo


def test_strained_si_relaxes_back_to_diamond(chgnet_backend):
    strained = diamond_si(5.7)  # 5 % expanded
    result = chgnet_backend.relax(strained, RelaxConfig(), "si-strained")
    assert result.converged
    assert result.max_force_ev_per_ang < 0.05
    assert type(result.energy_ev_per_atom) is float  # never numpy.float32 (breaks PhaseDiagram)
    # CHGNet's diamond Si: about -5.31 eV/atom and a ~ 5.45 Å (conventional)
    assert result.energy_ev_per_atom == pytest.approx(-5.31, abs=0.05)
    assert result.structure.volume / len(result.structure) == pytest.approx(5.45**3 / 8, rel=0.03)
    relaxed_again = chgnet_backend.relax(result.structure, RelaxConfig(), "si-relaxed")
    assert relaxed_again.n_steps <= 2


def test_rocksalt_is_lower_in_energy_than_expanded_start(chgnet_backend):
    start = rocksalt_mgo(4.5)
    result = chgnet_backend.relax(start, RelaxConfig(optimizer="FIRE", max_steps=300), "mgo")
    assert result.converged and result.n_steps > 1
    assert result.structure.lattice.abc[0] == pytest.approx(4.21 / 2**0.5, rel=0.03)


def test_step_cap_gives_unconverged_result(chgnet_backend):
    result = chgnet_backend.relax(diamond_si(5.9), RelaxConfig(max_steps=1), "si-cap")
    assert not result.converged
    assert result.n_steps == 1


def test_force_guard_raises_naming_record(chgnet_backend):
    rattled = diamond_si()
    rattled.translate_sites([0], [0.3, 0.0, 0.0], frac_coords=False)  # diamond's forces vanish by symmetry
    with pytest.raises(RelaxationDiverged, match="si-guard: forces exploded"):
        chgnet_backend.relax(rattled, RelaxConfig(max_force_abort_ev_per_ang=0.5), "si-guard")


def test_timeout_guard_raises_naming_record(chgnet_backend):
    with pytest.raises(RelaxationTimeout, match="si-slow"):
        chgnet_backend.relax(diamond_si(5.9), RelaxConfig(timeout_s=1e-6), "si-slow")


def test_inference_calculator_matches_chgnets_own(chgnet_backend):
    """The relaxation calculator (one backward pass, no second-order graph) gives CHGNet's own energies,
    forces and stresses on distorted real cells, and so the same relaxation."""
    import numpy as np
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    from pccd_hpc.materials.backends.chgnet import InferenceCHGNetCalculator
    from pccd_hpc.materials.backends.registry import get_backend

    assert isinstance(chgnet_backend.calculator, InferenceCHGNetCalculator)
    own = get_backend("chgnet", calculator="chgnet")
    perovskite = Structure(Lattice.from_parameters(3.95, 4.0, 3.9, 89, 91, 90), ["Sr", "Ti", "O", "O", "O"],
                           [[0, 0, 0], [0.52, 0.48, 0.5], [0.5, 0.5, 0.03], [0.5, 0.02, 0.5], [0.01, 0.5, 0.5]])
    for structure in (perovskite, diamond_si(5.6), rocksalt_mgo(4.4)):
        fast, ref = AseAtomsAdaptor.get_atoms(structure), AseAtomsAdaptor.get_atoms(structure)
        fast.calc, ref.calc = chgnet_backend.calculator, own.calculator
        assert fast.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-4)
        assert np.abs(fast.get_forces() - ref.get_forces()).max() < 1e-3
        assert np.abs(fast.get_stress() - ref.get_stress()).max() < 1e-5
        assert max(np.abs(fast.get_forces()).max(), np.abs(fast.get_stress()).max()) > 0.005  # not a comparison of zeros
    one = chgnet_backend.relax(perovskite, RelaxConfig(), "p")
    two = own.relax(perovskite, RelaxConfig(), "p")
    assert one.n_steps == two.n_steps and one.energy_ev_per_atom == pytest.approx(two.energy_ev_per_atom, abs=1e-4)
    with pytest.raises(ValueError, match="calculator"):
        get_backend("chgnet", calculator="fast").calculator
