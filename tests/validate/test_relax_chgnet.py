"""Real CHGNet relaxations of small cells: convergence, energies, and the failure guards."""

from __future__ import annotations

import pytest

from pccd_hpc.validate.config import RelaxConfig
from pccd_hpc.validate.errors import RelaxationDiverged, RelaxationTimeout
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
