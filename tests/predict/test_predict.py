"""predict end to end with the bundled model: candidates with exactly the asked composition, refusals by name,
resume that verifies and skips, and energy ranking with CHGNet."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest
from pymatgen.core import Structure

from pccd_hpc.launch import main as launch_main

FAST = ["--k", "3", "--steps", "3"]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_predict_writes_candidates_refuses_what_does_not_fit_and_resumes(tmp_path: Path, caplog) -> None:
    out = tmp_path / "p"
    args = ["predict", "--composition", "Sr2TiO4", "--composition", "Ba2YCu3O7", "--composition", "Mg9Al8",
            "--composition", "NaCl", *FAST, "--out", str(out)]
    with caplog.at_level(logging.INFO):
        assert launch_main(args) == 1  # two formulas refused, the others done
    assert "Ba2YCu3O7: does not fit the codec: too many elements (4 elements" in caplog.text
    assert "Mg9Al8: does not fit the codec: too many sites (17 sites" in caplog.text
    summary = {r["formula"]: r for r in _rows(out / "summary.csv")}
    assert [summary[f]["status"] for f in ("Sr2TiO4", "Ba2YCu3O7", "Mg9Al8", "NaCl")] == ["done", "refused", "refused", "done"]
    assert summary["Sr2TiO4"]["formula_units"] == "1 2"
    candidates = _rows(out / "compositions" / "Sr2TiO4" / "candidates.csv")
    assert [r["id"] for r in candidates] == ["Sr2TiO4-000", "Sr2TiO4-001", "Sr2TiO4-002"]
    assert [r["n_sites"] for r in candidates] == ["7", "7", "14"]  # spread over Z = 1, 2
    assert any(row["valid"] == "True" for row in candidates)
    for row in candidates:
        if row["valid"] != "True":
            assert row["reason"] and not row["cif"]
            continue
        s = Structure.from_file(out / "compositions" / "Sr2TiO4" / row["cif"])
        assert s.composition.reduced_formula == "Sr2TiO4" and len(s) == int(row["n_sites"])
    cif = out / "compositions" / "NaCl" / "cifs" / "NaCl-001.cif"
    first = cif.read_bytes()
    stamp = (out / "compositions" / "Sr2TiO4" / "candidates.json").stat().st_mtime_ns

    caplog.clear()
    cif.write_text("damaged")
    with caplog.at_level(logging.INFO):
        assert launch_main(args) == 1
    assert "Sr2TiO4: candidates verified, not sampled again" in caplog.text
    assert (out / "compositions" / "Sr2TiO4" / "candidates.json").stat().st_mtime_ns == stamp
    assert "NaCl: sampling 3 candidates" in caplog.text and "does not match its sha256" in caplog.text
    assert cif.read_bytes() == first  # redone with the same seed: the same candidate

    caplog.clear()
    assert launch_main([*args[:-2], "--guidance", "1", "--out", str(out)]) == 2  # other settings on the same --out
    assert "other settings (guidance)" in caplog.text


def test_predict_refuses_bad_arguments_before_writing(tmp_path: Path, caplog) -> None:
    assert launch_main(["predict", "--out", str(tmp_path / "a")]) == 2
    assert "give at least one formula" in caplog.text
    assert launch_main(["predict", "--composition", "Si", "--k", "0", "--out", str(tmp_path / "b")]) == 2
    assert "--k must be in [1, 1000]" in caplog.text
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow
def test_predict_relax_ranks_candidates_by_energy(tmp_path: Path) -> None:
    out = tmp_path / "r"
    args = ["predict", "--composition", "NaCl", "--formula-units", "1", *FAST, "--relax", "--relax-steps", "5",
            "--out", str(out)]
    assert launch_main(args) == 0
    ranking = _rows(out / "compositions" / "NaCl" / "ranking.csv")
    assert [r["rank"] for r in ranking] == ["1", "2", "3"]
    energies = [float(r["energy_ev_per_atom"]) for r in ranking if r["energy_ev_per_atom"]]
    assert energies == sorted(energies) and len(energies) >= 2
    summary = _rows(out / "summary.csv")[0]
    assert summary["best_id"] == ranking[0]["id"] and summary["runners_up"].split() == [r["id"] for r in ranking[1:]]
    stamp = (out / "compositions" / "NaCl" / "ranking.json").stat().st_mtime_ns
    assert launch_main(args) == 0  # resume: ranking verified, nothing relaxed again
    assert (out / "compositions" / "NaCl" / "ranking.json").stat().st_mtime_ns == stamp
