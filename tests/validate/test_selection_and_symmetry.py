"""validate --limit / --ids for a quick try on part of a run, space groups before and after relaxation,
the symmetrised CIF beside the relaxed one, and inputs refused before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from pccd_hpc.launch import main
from pccd_hpc.validate.cli import read_id_list
from pccd_hpc.records import read_results_csv
from _structures import diamond_si, rocksalt_mgo, zincblende_mgo


@pytest.fixture()
def candidates(tmp_path: Path) -> Path:
    folder = tmp_path / "cands"
    folder.mkdir()
    rocksalt_mgo().to(filename=str(folder / "mgo-rocksalt.cif"))
    zincblende_mgo().to(filename=str(folder / "mgo-zincblende.cif"))
    diamond_si().to(filename=str(folder / "si-diamond.cif"))
    return folder


def test_ids_and_limit_validate_only_the_chosen_candidates_with_space_groups(candidates, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PCCD_HPC_CACHE", str(tmp_path / "user-cache"))
    ids = tmp_path / "ids.txt"
    ids.write_text("# two of three\nsi-diamond\nmgo-rocksalt\n\n")
    out = tmp_path / "v"
    assert main(["validate", "--input", str(candidates), "--out", str(out), "--ids", str(ids), "--limit", "1",
                 "--max-steps", "5"]) == 0
    rows = read_results_csv(out / "results.csv")
    assert [r["id"] for r in rows] == ["mgo-rocksalt"]  # input order, then the first one
    row = rows[0]
    assert (row["space_group_initial"], row["space_group_number_initial"]) == ("Fm-3m", 225)
    relaxed = Structure.from_str(row["relaxed_cif"], fmt="cif")
    assert row["space_group_number_relaxed"] == SpacegroupAnalyzer(relaxed, symprec=0.1).get_space_group_number()
    symmetrized = out / "relaxed" / "mgo-rocksalt_symmetrized.cif"
    assert (out / "relaxed" / "mgo-rocksalt.cif").read_text() == row["relaxed_cif"]
    refined = Structure.from_file(symmetrized)
    assert SpacegroupAnalyzer(refined, symprec=1e-3).get_space_group_number() == row["space_group_number_relaxed"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_candidates"] == 1 and metrics["non_p1_as_generated"] == 1.0
    assert metrics["space_group_symprec_ang"] == 0.1 and metrics["non_p1_after_relaxation"] == 1.0

    assert main(["validate", "--input", str(candidates), "--out", str(tmp_path / "w"), "--ids",
                 "si-diamond,mgo-zincblende", "--max-steps", "5"]) == 0
    assert [r["id"] for r in read_results_csv(tmp_path / "w" / "results.csv")] == ["mgo-zincblende", "si-diamond"]


def test_unknown_ids_bad_limit_and_missing_input_are_refused_before_any_folder_is_made(candidates, tmp_path, caplog) -> None:
    out = tmp_path / "v"
    assert main(["validate", "--input", str(candidates), "--out", str(out), "--ids", "gen-0000001,si-diamond"]) == 2
    assert "--ids: 1 id(s) not among the candidates" in caplog.text and "gen-0000001" in caplog.text
    assert not out.exists()
    assert main(["validate", "--input", str(candidates), "--out", str(out), "--limit", "0"]) == 2
    assert "--limit must be >= 1" in caplog.text and not out.exists()
    assert main(["validate", "--input", "/nonexistent", "--out", str(out)]) == 2
    assert "--input not found: /nonexistent" in caplog.text and not out.exists()
    assert main(["validate", "--input", str(candidates), "--out", str(out), "--ids", ", ,"]) == 2
    assert "no ids given" in caplog.text and not out.exists()


def test_id_list_reads_files_and_comma_lists(tmp_path: Path) -> None:
    listed = tmp_path / "ids"
    listed.write_text("a\n  b  # why\n#c\na\n")
    assert read_id_list(str(listed)) == ("a", "b")
    assert read_id_list("gen-1, gen-2,gen-1") == ("gen-1", "gen-2")


def test_the_selection_travels_to_array_and_finalize_jobs_in_the_config_toml(tmp_path: Path) -> None:
    from pccd_hpc.stage_config import load_config_toml, save_config_toml
    from pccd_hpc.validate.config import ValidateConfig

    config = ValidateConfig(candidate_ids=("gen-0000001", "gen-0000007"), candidate_limit=1)
    save_config_toml(config, tmp_path / "validate.toml")
    assert load_config_toml(ValidateConfig, tmp_path / "validate.toml") == config
    with pytest.raises(ValueError, match="candidate_limit"):
        ValidateConfig(candidate_limit=0)
