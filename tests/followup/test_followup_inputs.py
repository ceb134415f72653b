"""followup's config, its adapter over validate's results, the k-path helpers and the structure picture (fast)."""

from __future__ import annotations

import numpy as np
import pytest

from _followup_fixtures import diamond_si, overlapping_mgo, rocksalt_mgo, write_validation


def test_config_round_trip_and_named_errors(tmp_path):
    from pccd_hpc.followup.config import FollowupConfig, quick_config

    cfg = quick_config("vasp")
    assert FollowupConfig.from_dict(cfg.to_dict()) == cfg
    for field, value in [("backend", "abinit"), ("ecut_ev", 0.0), ("line_density", 0), ("phonon_mesh", (4, 4)),
                         ("kpath_type", "latimer"), ("imaginary_tol_thz", -1.0)]:
        with pytest.raises(ValueError, match=field):
            FollowupConfig(**{field: value})
    with pytest.raises(ValueError, match="unknown field"):
        FollowupConfig.from_dict({"ecutt": 300})


def test_adapter_skips_failed_unphysical_and_overlapping_rows(tmp_path):
    from pccd_hpc.followup.inputs import read_validation_candidates, select_candidates

    vdir = write_validation(tmp_path / "v", [
        {"id": "si", "structure": diamond_si(), "e_hull": 0.02, "extra": {"unphysical": False}},
        {"id": "mgo", "structure": rocksalt_mgo(), "e_hull": 0.0, "extra": {"unphysical": False}},
        {"id": "flagged", "structure": rocksalt_mgo(4.0), "e_hull": -0.1, "extra": {"unphysical": True}},
        {"id": "overlap", "structure": overlapping_mgo(), "e_hull": -0.2, "extra": {"unphysical": False}},
        {"id": "failed", "structure": None, "e_hull": None, "error": "diverged"},
        {"id": "nohull", "structure": diamond_si(5.5), "e_hull": None, "extra": {"unphysical": False}},
    ])
    candidates, skipped = read_validation_candidates(vdir)
    assert sorted(c.record_id for c in candidates) == ["mgo", "nohull", "si"]
    reasons = "\n".join(skipped)
    assert "flagged (" in reasons and "flagged unphysical" in reasons
    assert "overlap (" in reasons and "too close" in reasons
    assert "failed (" in reasons and "diverged" in reasons
    assert [c.record_id for c in select_candidates(candidates, top=2)] == ["mgo", "si"]  # lowest E_hull first
    assert [c.record_id for c in select_candidates(candidates, top=3)][-1] == "nohull"  # no E_hull: last
    assert [c.record_id for c in select_candidates(candidates, ids=["si"], top=1)] == ["si", "mgo"]
    with pytest.raises(ValueError, match="flagged"):
        select_candidates(candidates, ids=["flagged"])
    with pytest.raises(FileNotFoundError, match="results.csv"):
        read_validation_candidates(tmp_path)


def test_band_path_is_pymatgens_and_distances_do_not_bridge_jumps():
    from pymatgen.symmetry.bandstructure import HighSymmKpath

    from pccd_hpc.materials.kpath import band_path, segments, standard_primitive

    prim = standard_primitive(diamond_si())
    path = band_path(prim, line_density=10)
    kpoints, labels = HighSymmKpath(prim).get_kpoints(line_density=10, coords_are_cartesian=False)
    np.testing.assert_allclose(path.kpoints_frac, np.array(kpoints, dtype=float))
    ticks = [label for _, label in path.ticks()]
    assert "K|U" in ticks  # the FCC path jumps from K to U
    jump = path.breaks[0]
    assert path.distances[jump] == path.distances[jump - 1]
    assert sum(s.stop - s.start for s in segments(path.distances, path.breaks)) == len(path.distances)
    conventional = prim.copy()
    conventional.make_supercell([[-1, 1, 1], [1, -1, 1], [1, 1, -1]])  # the 8-atom cubic cell
    with pytest.raises(ValueError, match="standard primitive"):
        band_path(conventional, line_density=10)


def test_gap_from_eigenvalues_matches_construction():
    from pymatgen.core import Structure

    from pccd_hpc.followup import electronic
    from pccd_hpc.materials.kpath import band_path, standard_primitive

    prim: Structure = standard_primitive(diamond_si())
    path = band_path(prim, line_density=5)
    n_k = len(path.kpoints_frac)
    valence = -np.linspace(0, 1, n_k)  # maximum (0 eV) at the first point (Γ)
    conduction = 1.5 + np.linspace(0, 1, n_k)[::-1] * 0.3  # minimum (1.5 eV) at the last point
    eigs = np.stack([valence - 5, valence, conduction, conduction + 3], axis=1)[None]  # 4 bands, 4 electrons
    edges = electronic.band_edges(eigs, eigs, 4.0, False)
    assert edges == pytest.approx((0.0, 1.5))
    bs = electronic.band_structure(prim, path, eigs, electronic.reference_energy(3.0, edges))
    gap = electronic.gap_summary(bs)
    assert gap["band_gap_ev"] == pytest.approx(1.5) and gap["gap_is_direct"] is False
    energies, dos = electronic.gaussian_dos(eigs, np.full(n_k, 1 / n_k), 0.05)
    assert np.trapezoid(dos, energies) == pytest.approx(8.0, rel=1e-3)  # 4 bands x 2 electrons


def test_structure_picture_png(tmp_path):
    from pccd_hpc.pictures import structure_png

    target = structure_png(rocksalt_mgo(), tmp_path / "mgo.png", title="MgO")
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_gpaw_backend_without_gpaw_says_how_to_install_it(monkeypatch):
    """A user who set up without root (no [dft] extra) is told how to add GPAW, not shown an import error."""
    import importlib.util

    from pccd_hpc.followup.config import FollowupConfig
    from pccd_hpc.materials.backends.registry import get_dft_backend as get_backend

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gpaw" else real_find_spec(name, *a))
    with pytest.raises(ValueError, match="PCCD_WITH_DFT=1 bash scripts/bootstrap.sh"):
        get_backend(FollowupConfig(backend="gpaw"))
