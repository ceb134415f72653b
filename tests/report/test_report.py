"""The report page from a small hand-made validation folder (no model needed)."""

from __future__ import annotations

import json

import pytest
from pymatgen.core import Lattice, Structure

from pccd_hpc.launch import main
from pccd_hpc.validate.record import ValidationRecord
from pccd_hpc.records import write_results_csv


def _record_defaults(row: dict) -> dict:
    return {"kind": "candidate", "composition": "Mg4 O4", "backend": "chgnet", "structure_sha": "0" * 16,
            "initial_cif": row["relaxed_cif"], "hull_status": "ok" if row["e_above_hull_ev_per_atom"] is not None
            else "failed", **row}


def _vdir(tmp_path):
    vdir = tmp_path / "vdir"
    mgo = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.21), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    e_hull = [-0.05, 0.02, 0.07, 0.1, 0.3, 0.6, 1.2, None]
    rows = [
        {"id": f"c{i}", "formula": "MgO", "n_sites": 8, "e_above_hull_ev_per_atom": e, "converged": e is not None,
         "relaxed_cif": mgo.to(fmt="cif"), "error": None if e is not None else f"c{i}: forces exploded"}
        for i, e in enumerate(e_hull)
    ]
    write_results_csv([ValidationRecord(**_record_defaults(r)) for r in rows], vdir / "results.csv")
    # what validate's finalize writes for these rows: 4 of 8 below 0.25, 3 of 8 below 0.08, 1 of 2 inputs valid
    (vdir / "metrics.json").write_text(json.dumps({"backend": "chgnet", "sun_rate": 0.25, "n_candidates": 8,
                                                   "e_hull_below_0.25": 0.5, "e_hull_below_0.08": 0.375,
                                                   "structural_validity": 0.5}))
    gen = tmp_path / "gen"
    gen.mkdir()
    mgo.to(filename=str(gen / "a.cif"))
    Structure(Lattice.cubic(3.0), ["Mg", "O"], [[0, 0, 0], [0.1, 0, 0]]).to(filename=str(gen / "b.cif"))
    return vdir, gen


def test_report_page_has_paper_comparison_and_figures(tmp_path):
    vdir, gen = _vdir(tmp_path)
    out = tmp_path / "report"
    assert main(["report", "--val", str(vdir), "--gen", str(gen), "--out", str(out)]) == 0
    page = (out / "report.md").read_text()
    assert "| 0.25 eV/atom | 50.00 % | 62.68 % |" in page  # 4 of 8 below 0.25
    assert "| 0.08 eV/atom | 37.50 % | 16.35 % |" in page  # 3 of 8 below 0.08
    assert "| structural validity (as generated) | 50.00 % |" in page
    assert "c7: forces exploded" in page
    for png in ("e_hull_hist.png", "density.png", "n_elements.png"):
        assert (out / png).stat().st_size > 5_000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fractions_below"]["0.25"] == pytest.approx(0.5)


def test_report_without_results_names_the_folder(tmp_path):
    assert main(["report", "--val", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2


def test_report_prints_the_validation_metrics_it_reads(tmp_path):
    vdir, _ = _vdir(tmp_path)
    metrics = json.loads((vdir / "metrics.json").read_text())
    (vdir / "metrics.json").write_text(json.dumps({**metrics, "e_hull_below_0.25": None, "structural_validity": 0.125}))
    out = tmp_path / "report"
    assert main(["report", "--val", str(vdir), "--out", str(out)]) == 0
    page = (out / "report.md").read_text()
    assert "| 0.25 eV/atom | n/a | 62.68 % |" in page  # as validate wrote it, not recomputed from results.csv
    assert page.count("structural validity") == 1 and "| structural validity (as generated) | 12.50 % |" in page


def test_report_states_plausibility_as_sampled_and_after_the_push_apart(tmp_path):
    vdir, gen = _vdir(tmp_path)
    (gen / "summary.json").write_text(json.dumps({"n_generated": 40, "n_valid": 36, "n_plausible": 35,
                                                  "n_plausible_as_sampled": 2, "plausible_bond_factor": 0.7,
                                                  "push_apart_factor": 0.8}))
    out = tmp_path / "report"
    assert main(["report", "--val", str(vdir), "--gen", str(gen), "--out", str(out)]) == 0
    page = (out / "report.md").read_text()
    assert "as the model sampled them: 2 (5.0 %)" in page
    assert "pushed apart to 0.8" in page and "35 (87.5 %) plausible" in page
    assert page.index("## Generation") < page.index("## Energy above hull")
    (gen / "summary.json").write_text(json.dumps({"n_generated": 40, "n_valid": 36, "n_plausible": 2,
                                                  "n_plausible_as_sampled": None, "push_apart_factor": None}))
    assert main(["report", "--val", str(vdir), "--gen", str(gen), "--out", str(out)]) == 0
    page = (out / "report.md").read_text()
    assert "as the model sampled them: n/a" in page and "pushed apart" not in page


def test_report_shows_the_sun_funnel_with_what_the_figures_are(tmp_path):
    vdir, gen = _vdir(tmp_path)
    metrics = json.loads((vdir / "metrics.json").read_text())
    funnel = {"candidates": 8, "plausible": 7, "relaxed_converged": 7, "e_hull_le_0.1": 4, "e_hull_le_0": 1,
              "unique": 1, "novel": 1, "sun": 1}
    (vdir / "metrics.json").write_text(json.dumps({**metrics, "funnel": funnel, "stable_threshold_ev_per_atom": 0.1,
                                                   "energy_scale": "chgnet energies on the DFT scale",
                                                   "hull_reference": "MP-20 DFT hull", "funnel_novelty": "composition"}))
    (gen / "summary.json").write_text(json.dumps({"n_generated": 10, "n_valid": 8}))
    out = tmp_path / "report"
    assert main(["report", "--val", str(vdir), "--gen", str(gen), "--out", str(out)]) == 0
    page = (out / "report.md").read_text()
    assert "| generated | 10 | 100.0 % |" in page and "| decoded into a structure | 8 | 80.0 % |" in page
    assert "| E_hull <= 0.1 eV/atom | 4 | 40.0 % |" in page and "| novel: S.U.N. | 1 | 10.0 % |" in page
    assert "MP-20 DFT hull" in page and "Not DFT-verified" in page and "MatterGen" in page
    assert (out / "funnel.png").stat().st_size > 5_000
    assert json.loads((out / "summary.json").read_text())["funnel"]["generated"] == 10
