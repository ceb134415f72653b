"""The report page shows a picture of every top-N structure and the followup figures (fast, no DFT)."""

from __future__ import annotations

import json

from _followup_fixtures import diamond_si, rocksalt_mgo, write_validation


def test_report_gains_structure_pictures_and_followup_figures(tmp_path):
    from pccd_hpc.followup.config import quick_config
    from pccd_hpc.followup.inputs import read_validation_candidates
    from pccd_hpc.followup.stage import prepare
    from pccd_hpc.followup.summary import finalize_candidate
    from pccd_hpc.launch import main

    vdir = write_validation(tmp_path / "v", [{"id": "si", "structure": diamond_si(), "e_hull": 0.02},
                                             {"id": "mgo", "structure": rocksalt_mgo(), "e_hull": 0.0}])
    (vdir / "metrics.json").write_text(json.dumps({"backend": "chgnet"}))
    candidates, _ = read_validation_candidates(vdir)
    fdir = tmp_path / "fdir"
    folder = prepare(fdir, [c for c in candidates if c.record_id == "mgo"], quick_config())[0]
    summary = finalize_candidate(folder)  # no step ran: every value null, each with its reason
    assert summary["band_gap_ev"] is None and summary["errors"]["relax"].startswith("not run")
    out = tmp_path / "report"
    assert main(["report", "--val", str(vdir), "--out", str(out), "--followup", str(fdir)]) == 0
    page = (out / "report.md").read_text()
    assert "| mgo | MgO | 2 | 0.000 |" in page and "![mgo](structures/mgo.png) |" in page
    assert "![si](structures/si.png) |" in page
    assert (out / "structures" / "si.png").read_bytes()[:4] == b"\x89PNG"
    assert "## DFT followup (paper Fig. 4)" in page and "gap n/a" in page
    assert (out / "followup" / "mgo-fig4.png").stat().st_size > 5000
