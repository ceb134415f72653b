"""validate has a hull with no extra flag: the bundled reference set (MP-20 phases of the default
generation systems + every element, CHGNet energies with the version that made them). Where no
hull can be built the record says why and every fraction reads n/a, never 0 %."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure

from pccd_hpc.launch import main
from pccd_hpc.validate.reference import BUNDLED_REFERENCE, default_systems, load_bundled_reference
from pccd_hpc.validate.store import read_results_csv
from _structures import diamond_si, rocksalt_mgo, zincblende_mgo


def test_bundled_reference_is_compact_and_covers_the_default_systems() -> None:
    assert BUNDLED_REFERENCE.stat().st_size < 3 * 2**20
    data = load_bundled_reference()
    assert data["backend"] == "chgnet" and data["backend_version"]
    elements = {e["species"][0] for e in data["entries"] if len(set(e["species"])) == 1}
    needed = set().union(*default_systems())
    assert needed <= elements, sorted(needed - elements)  # an elemental phase for every element
    assert len(data["entries"]) == data["n_entries"] > 300


@pytest.fixture()
def generation_cif(tmp_path: Path) -> Path:
    """A generation shard's CIF: several data blocks in one file (MgO and a Ca-Ti-O perovskite)."""
    perovskite = Structure(Lattice.cubic(3.9), ["Ca", "Ti", "O", "O", "O"],
                           [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    blocks = [rocksalt_mgo().to(fmt="cif").replace("data_MgO", "data_gen-0000000_MgO"),
              perovskite.to(fmt="cif").replace("data_CaTiO3", "data_gen-0000001_CaTiO3"),
              zincblende_mgo().to(fmt="cif").replace("data_MgO", "data_gen-0000002_MgO")]
    path = tmp_path / "shard-00000.cif"
    path.write_text("\n".join(blocks))
    return path


def test_validate_without_flags_gives_every_plausible_structure_an_e_hull(generation_cif, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PCCD_HPC_CACHE", str(tmp_path / "user-cache"))
    out = tmp_path / "vdir"
    assert main(["validate", "--input", str(generation_cif), "--out", str(out), "--max-steps", "30"]) == 0
    rows = {r["id"]: r for r in read_results_csv(out / "results.csv")}
    assert set(rows) == {"shard-00000:gen-0000000_MgO", "shard-00000:gen-0000001_CaTiO3", "shard-00000:gen-0000002_MgO"}
    for row in rows.values():
        assert row["hull_status"] == "ok" and row["e_above_hull_ev_per_atom"] is not None, row
        assert abs(row["e_above_hull_ev_per_atom"]) < 1.0  # same energy scale as the references
    # rock salt (MgO's ground state) lies below zinc blende on the bundled hull
    assert rows["shard-00000:gen-0000000_MgO"]["e_above_hull_ev_per_atom"] < rows["shard-00000:gen-0000002_MgO"]["e_above_hull_ev_per_atom"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["with_e_hull"] == 3 and metrics["e_hull_below_0.25"] is not None
    assert "bundled reference set" in metrics["hull_reference"]
    assert "NaN" not in (out / "metrics.json").read_text()


def test_no_hull_is_na_never_zero(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PCCD_HPC_CACHE", str(tmp_path / "user-cache"))
    cands = tmp_path / "cands"
    cands.mkdir()
    diamond_si().to(filename=str(cands / "si.cif"))  # Si: outside the bundled systems
    out = tmp_path / "vdir"
    assert main(["validate", "--input", str(cands), "--out", str(out), "--max-steps", "5"]) == 0
    row = read_results_csv(out / "results.csv")[0]
    assert row["hull_status"] == "no_hull" and row["e_above_hull_ev_per_atom"] is None and "Si" in row["hull_note"]
    text = (out / "metrics.json").read_text()
    metrics = json.loads(text)
    assert "NaN" not in text
    assert metrics["e_hull_below_0.25"] is None and metrics["stable_below_0.1"] is None
    assert main(["report", "--val", str(out), "--out", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "report.md").read_text()
    assert "| 0.25 eV/atom | n/a | 62.68 % |" in page
    for label in ("E_hull below 0.25 eV/atom", "E_hull below 0.08 eV/atom", "stable (E_hull below 0.1 eV/atom)",
                  "stable (E_hull below 0 eV/atom)"):  # named in words, not by their keys (issue 28)
        assert f"| {label} | n/a |" in page
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["fractions_below"]["0.25"] is None


def test_system_with_an_empty_hull_edge_is_na(tmp_path) -> None:
    """A cation without any binary oxide in the bundled set (Au) leaves its hull edge empty: n/a, named."""
    from pccd_hpc.validate.reference import coverage_gap

    assert coverage_gap(frozenset({"Mg", "Sc", "O"})) is None  # Sc2O3 (bixbyite prototype) is in the set
    assert coverage_gap(frozenset({"Mg", "O"})) is None
    gap = coverage_gap(frozenset({"Ba", "Au", "O"}))
    assert gap is not None and "Au" in gap and "Ba" not in gap
    data = load_bundled_reference()
    rock_salt = [e for e in data["entries"] if e["id"] == "proto-MgO-rocksalt"][0]
    wurtzite_like = [e for e in data["entries"] if e["id"] == "mp-549706"][0]
    assert rock_salt["energy_ev_per_atom"] < wurtzite_like["energy_ev_per_atom"]  # the real ground state is in


def test_au_candidate_gets_na_with_the_reason(tmp_path, monkeypatch) -> None:
    from pccd_hpc.validate.finalize import hull_for_record
    from pccd_hpc.validate.record import Job, ValidationRecord
    from pccd_hpc.validate.stage import ValidatePaths, plan

    monkeypatch.setenv("PCCD_HPC_CACHE", str(tmp_path / "user-cache"))
    cands = tmp_path / "cands"
    cands.mkdir()
    baau = Structure(Lattice.cubic(4.2), ["Ba", "Au", "O", "O", "O"],
                     [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    baau.to(filename=str(cands / "baau.cif"))
    the_plan = plan(ValidatePaths(input=cands, out_dir=tmp_path / "v"))
    record = ValidationRecord.for_job(Job("baau", "candidate", baau), "chgnet")
    record.energy_ev_per_atom = -5.0
    value, status, note = hull_for_record(record, None, the_plan)
    assert value is None and status == "no_hull" and "Au" in note and note.startswith("n/a")
