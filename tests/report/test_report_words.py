"""The report in a scientist's words: honest validated counts, metric names instead of keys, non-P1 shares,
and structure pictures large enough to read."""

from __future__ import annotations

import json
import re

from PIL import Image
from pymatgen.core import Lattice, Structure

from pccd_hpc.launch import main
from pccd_hpc.report.page import metric_label
from pccd_hpc.validate.record import ValidationRecord
from pccd_hpc.records import write_results_csv
from test_report import _record_defaults, _vdir


def test_generation_lines_count_only_what_was_validated(tmp_path) -> None:
    vdir, gen = _vdir(tmp_path)
    (gen / "summary.json").write_text(json.dumps({"n_generated": 199, "n_valid": 199, "n_plausible": 199,
                                                  "n_plausible_as_sampled": 41, "plausible_bond_factor": 0.7,
                                                  "push_apart_factor": 0.8, "non_p1_fraction": 0.2}))
    out = tmp_path / "report"
    assert main(["report", "--val", str(vdir), "--gen", str(gen), "--out", str(out)]) == 0
    page = (out / "report.md").read_text()
    assert "199 (100.0 %) plausible as validated here" not in page  # the old claim: 8 were validated
    assert "199 (100.0 %) plausible as written by generate" in page
    assert "8 of the 199 were validated here" in page


def test_metrics_table_names_every_metric_in_words(tmp_path) -> None:
    vdir, _ = _vdir(tmp_path)
    out = tmp_path / "report"
    assert main(["report", "--val", str(vdir), "--out", str(out)]) == 0
    page = (out / "report.md").read_text()
    table = page[page.index("## Metrics"): page.index("## Distributions") if "## Distributions" in page else None]
    names = re.findall(r"^\| ([^|]+) \|", table, re.MULTILINE)[2:]
    assert names and not [n for n in names if "_" in n.replace("E_hull", "")], names
    assert "| E_hull below 0.08 eV/atom | 37.50 % |" in table and "S.U.N. rate" in table
    assert metric_label("stable_below_0.1") == "stable (E_hull below 0.1 eV/atom)"
    assert metric_label("some_new_key") == "some new key"


def test_symmetry_section_and_readable_pictures(tmp_path) -> None:
    rocksalt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.21), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    skewed = Structure(Lattice.from_parameters(4.1, 4.6, 5.3, 81, 97, 104), ["Mg", "O", "O"],
                       [[0, 0, 0], [0.31, 0.52, 0.13], [0.66, 0.21, 0.71]])
    rows = [{"id": "sym", "formula": "MgO", "n_sites": 8, "e_above_hull_ev_per_atom": 0.01, "converged": True,
             "relaxed_cif": rocksalt.to(fmt="cif"), "space_group_number_initial": 1, "space_group_relaxed": "Fm-3m",
             "space_group_number_relaxed": 225},
            {"id": "p1", "formula": "MgO2", "n_sites": 3, "e_above_hull_ev_per_atom": 0.4, "converged": True,
             "relaxed_cif": skewed.to(fmt="cif"), "space_group_number_initial": 1, "space_group_relaxed": "P1",
             "space_group_number_relaxed": 1}]
    vdir = tmp_path / "v"
    write_results_csv([ValidationRecord(**_record_defaults(r)) for r in rows], vdir / "results.csv")
    (vdir / "metrics.json").write_text(json.dumps({"backend": "chgnet", "n_candidates": 2}))
    reference = tmp_path / "ref"
    reference.mkdir()
    rocksalt.to(filename=str(reference / "mgo.cif"))
    out = tmp_path / "report"
    assert main(["report", "--val", str(vdir), "--reference", str(reference), "--out", str(out)]) == 0
    page = (out / "report.md").read_text()
    assert "| validated, before relaxation | 0.00 % | 2 |" in page
    assert "| validated, after relaxation | 50.00 % | 2 |" in page
    assert "| reference crystals (--reference) | 100.00 % | 1 |" in page
    summary = json.loads((out / "summary.json").read_text())
    assert summary["non_p1_fractions"]["validated, after relaxation"] == [0.5, 2]
    pictures = sorted((out / "structures").glob("*.png"))
    assert len(pictures) == 2 and all(Image.open(p).size[0] >= 400 for p in pictures)
