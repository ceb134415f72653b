"""The CSP metric on known pairs, its summary at k = 1 and k, and the evaluation part with the bundled model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from pccd_hpc.evaluate.csp import CspSettings, csp_page_lines, csp_part, csp_summary, match_rms
from pccd_hpc.materials.energy_ranking import energy_order
from pccd_hpc.evaluate.denovo import load_heldout


def _perovskite(a: float = 3.9) -> Structure:
    return Structure(Lattice.cubic(a), ["Sr", "Ti", "O", "O", "O"],
                     [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])


def test_a_structure_matches_itself_with_zero_rms_and_a_perturbed_copy_with_its_displacement() -> None:
    s = _perovskite()
    assert match_rms(s, s) == pytest.approx(0.0, abs=1e-8)
    shifted = s.copy()
    shifted.translate_sites([2], [0.02, 0.0, 0.0], frac_coords=True)  # one O moved by 0.078 A
    rms = match_rms(shifted, s)
    # the matcher's RMS: displacement after the best superposition, over (V/N)^(1/3); the unmatched-origin shift
    # spreads the 0.078 A over the 5 sites, so it lies between 0 and the single-atom figure
    single = 0.02 * 3.9 / (s.volume / len(s)) ** (1 / 3)
    assert 0 < rms <= single + 1e-9
    scaled = _perovskite(4.3)  # the matcher scales volumes: same structure
    assert match_rms(scaled, s) == pytest.approx(0.0, abs=1e-6)


def test_a_different_structure_or_no_candidate_does_not_match() -> None:
    s = _perovskite()
    rocksalt = Structure(Lattice.cubic(4.2), ["Sr", "Ti", "O", "O", "O"],
                         [[0, 0, 0], [0.25, 0.25, 0.25], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]])
    assert match_rms(rocksalt, s) is None
    assert match_rms(None, s) is None


def test_summary_counts_matches_at_k_and_ranks_by_energy() -> None:
    rows = [  # target 1: first sample misses, second matches; ranking puts the matching one first
        {"rms": [None, 0.1, None], "energy_ev_per_atom": [-1.0, -2.0, None], "rms_relaxed": [None, 0.05, None],
         "wall_s": 2.0},
        {"rms": [0.2, None, 0.3], "energy_ev_per_atom": [-1.0, -3.0, -2.0], "rms_relaxed": [0.2, None, 0.1],
         "wall_s": 4.0},
        {"rms": [None, None, None], "energy_ev_per_atom": [None, None, None], "rms_relaxed": [None, None, None],
         "wall_s": 3.0},
    ]
    summary = csp_summary(rows, ks=(1, 3))
    assert summary["as_sampled"]["k1"]["match_rate_pct"] == pytest.approx(100 / 3)
    assert summary["as_sampled"]["k3"]["n_matched"] == 2
    assert summary["as_sampled"]["k3"]["rmse"] == pytest.approx((0.1 + 0.2) / 2)
    # ranked: target 1 best = index 1 (0.05), target 2 best = index 1 (no match)
    assert summary["ranked_relaxed"]["k1"]["n_matched"] == 1 and summary["ranked_relaxed"]["k1"]["rmse"] == 0.05
    assert summary["ranked_relaxed"]["k3"]["rmse"] == pytest.approx((0.05 + 0.1) / 2)
    assert summary["wall_s_per_target"] == pytest.approx(3.0)
    assert energy_order([None, -1.0, -2.0]) == [2, 1, 0]


@pytest.mark.slow
def test_csp_part_scores_held_out_structures_and_resumes(small_shards: Path, tmp_path: Path) -> None:
    from pccd_hpc.sampling.checkpoint_sampler import default_checkpoint, load_model

    loaded = load_model(str(default_checkpoint()))
    heldout = load_heldout(small_shards)
    settings = CspSettings(k=2, steps=3)
    identity = {"test": 1}
    result, n = csp_part(tmp_path, loaded, heldout.record_ids, heldout.structures, 2, 1, settings, 3, identity)
    assert n == 2 and result["as_sampled"]["k1"]["n_targets"] == 2 and result["n_ranked_targets"] == 1
    for key in ("as_sampled", "ranked_relaxed"):
        for block in result[key].values():
            assert 0 <= block["match_rate_pct"] <= 100
    rows = sorted((tmp_path / "csp" / "as-sampled").glob("target-*.json"))
    assert len(rows) == 2
    stamps = [p.stat().st_mtime_ns for p in rows]
    again, _ = csp_part(tmp_path, loaded, heldout.record_ids, heldout.structures, 2, 1, settings, 3, identity)
    assert [p.stat().st_mtime_ns for p in rows] == stamps and again["as_sampled"] == result["as_sampled"]
    assert any("Crystal structure prediction" in line for line in csp_page_lines(result))
    assert np.isfinite(result["wall_s_per_target"])


@pytest.mark.slow
def test_evaluate_cli_adds_the_csp_part_only_when_asked(small_shards: Path, tmp_path: Path) -> None:
    import json

    from pccd_hpc.sampling.checkpoint_sampler import default_checkpoint
    from pccd_hpc.launch import main as launch_main

    common = ["evaluate", "--checkpoint", str(default_checkpoint()), "--data", str(small_shards), "--out",
              str(tmp_path), "--n-samples", "2", "--n-reconstruct", "2", "--skip-coverage", "--steps", "2"]
    assert launch_main(common) == 0
    assert json.loads((tmp_path / "evaluate.json").read_text())["csp"] is None
    assert not (tmp_path / "part-csp.json").exists()
    assert launch_main([*common, "--csp-targets", "2", "--csp-k", "2"]) == 0
    summary = json.loads((tmp_path / "evaluate.json").read_text())
    assert summary["csp"]["as_sampled"]["k1"]["n_targets"] == 2 and "k2" in summary["csp"]["as_sampled"]
    assert "## Crystal structure prediction (2 held-out compositions)" in (tmp_path / "evaluate.md").read_text()
    assert "csp" in summary["timing"]
