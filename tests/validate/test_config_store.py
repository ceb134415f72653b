"""Config validation and round trips; record store and results.csv round trips."""

from __future__ import annotations

import json

import pytest

from pccd_hpc.validate.config import PhononConfig, ValidateConfig
from pccd_hpc.materials.relax import RelaxConfig
from pccd_hpc.validate.record import ValidationRecord
from pccd_hpc.validate.store import RecordStore
from pccd_hpc.records import read_results_csv, record_filename, write_results_csv


@pytest.mark.parametrize(
    "factory, field",
    [
        (lambda: RelaxConfig(optimizer="SD"), "optimizer"),
        (lambda: RelaxConfig(fmax_ev_per_ang=0), "fmax_ev_per_ang"),
        (lambda: RelaxConfig(max_steps=0), "max_steps"),
        (lambda: PhononConfig(min_length_ang=-1), "min_length_ang"),
        (lambda: PhononConfig(imaginary_tol_thz=-0.1), "imaginary_tol_thz"),
        (lambda: ValidateConfig(workers=0), "workers"),
    ],
)
def test_invalid_values_name_the_field(factory, field):
    with pytest.raises(ValueError, match=field):
        factory()


def test_config_round_trips_through_json():
    config = ValidateConfig(relax=RelaxConfig(optimizer="FIRE"), phonons=True, band_structure_ids=("a", "b"), workers=2)
    again = ValidateConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config


def test_record_names_are_safe_and_distinct():
    assert record_filename("mp-149") == "mp-149.json"
    a, b = record_filename("shard-0001/7"), record_filename("shard-0001_7")
    assert "/" not in a and a != b


def test_store_and_csv_round_trip(tmp_path):
    store = RecordStore(tmp_path / "records")
    common = {"kind": "candidate", "backend": "chgnet", "structure_sha": "0" * 16, "initial_cif": ""}
    records = [
        ValidationRecord(id="b/2", formula="MgO", composition="Mg1 O1", n_sites=2, energy_ev_per_atom=-6.3,
                         converged=True, error=None, **common),
        ValidationRecord(id="007", formula="Si", composition="Si2", n_sites=2, energy_ev_per_atom=None,
                         converged=False, error="007: diverged", **common),
    ]
    for r in records:
        store.put(r)
    assert store.has("b/2") and store.get("007").error == "007: diverged" and len(store) == 2
    assert store.get("b/2") == records[0]  # the typed record round-trips through its JSON file
    write_results_csv(list(store), tmp_path / "results.csv")
    rows = read_results_csv(tmp_path / "results.csv")
    assert [r["id"] for r in rows] == ["007", "b/2"]  # ids stay strings
    assert rows[1]["energy_ev_per_atom"] == -6.3 and rows[1]["converged"] is True
    assert rows[0]["energy_ev_per_atom"] is None
    assert not list((tmp_path / "records").glob(".*.tmp"))


def test_damaged_or_foreign_record_file_names_the_file(tmp_path):
    store = RecordStore(tmp_path / "records")
    store.path("x").write_text('{"id": "x", "colour": "red"}')
    # issue 30: a damaged record is named and computed again, no longer fatal to the whole run
    record, problem = store.load("x")
    assert record is None and "x.json is damaged" in problem and "colour" in problem
    assert store.get("x") is None
