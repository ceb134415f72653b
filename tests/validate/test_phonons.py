"""Real phonopy phonons with CHGNet forces: stable diamond Si, unstable bcc Ti, supercell sizing."""

from __future__ import annotations

import pytest
from pymatgen.core import Lattice, Structure

from pccd_hpc.validate.config import PhononConfig
from pccd_hpc.materials.errors import PhononFailure
from pccd_hpc.materials.phonons import supercell_diagonal
from pccd_hpc.validate.phonons import run_phonons
from _structures import diamond_si


def test_supercell_diagonal_reaches_min_width():
    si = diamond_si()  # fcc primitive: perpendicular width a/sqrt(3) = 3.135 Å
    assert supercell_diagonal(si, 10.0) == (4, 4, 4)
    assert supercell_diagonal(si, 6.0) == (2, 2, 2)
    slab = Structure(Lattice.orthorhombic(3.0, 5.0, 11.0), ["Si"], [[0, 0, 0]])
    assert supercell_diagonal(slab, 10.0) == (4, 2, 1)


@pytest.mark.slow
def test_diamond_si_is_dynamically_stable_with_few_displacements(chgnet_backend, tmp_path):
    plot = tmp_path / "si_bands.png"
    result, phonon = run_phonons(diamond_si(), chgnet_backend.calculator, PhononConfig(min_length_ang=7.0), "si", band_plot=plot)
    assert not result.imaginary_modes
    assert result.n_displacements == 1  # symmetry kept: one displacement for diamond
    assert result.min_frequency_thz > -0.1
    phonon.run_qpoints([[0.0, 0.0, 0.0]])
    freqs = phonon.get_qpoints_dict()["frequencies"][0]
    assert freqs.max() == pytest.approx(13.4, abs=2.0)  # optical mode at Gamma (DFT ~15, CHGNet softer)
    assert plot.stat().st_size > 10_000


def test_bcc_ti_has_imaginary_modes(chgnet_backend):
    bcc_ti = Structure(Lattice.cubic(3.28), ["Ti", "Ti"], [[0, 0, 0], [0.5, 0.5, 0.5]]).get_primitive_structure()
    result, _ = run_phonons(bcc_ti, chgnet_backend.calculator, PhononConfig(min_length_ang=8.0), "ti-bcc")
    assert result.imaginary_modes  # bcc Ti is unstable at 0 K (as in DFT)
    assert result.min_frequency_thz < -0.1


def test_oversized_supercell_is_refused(chgnet_backend):
    with pytest.raises(PhononFailure, match="si-big"):
        run_phonons(diamond_si(), chgnet_backend.calculator, PhononConfig(max_supercell_atoms=10), "si-big")
