"""encode -> decode reproduces every real structure that fits the limits (no model involved)."""

from __future__ import annotations

import csv
import gzip
import sys
import warnings
from collections import Counter
from pathlib import Path

import pytest
from pymatgen.core import Structure

from pccd_hpc.data.codec import CodecConfig, RecordError, encode_structure
from pccd_hpc.data.roundtrip import check_roundtrip, structure_matcher

csv.field_size_limit(sys.maxsize)


def _roundtrip_counts(path: Path, codec: CodecConfig) -> tuple[int, int, int, Counter]:
    opener = gzip.open if path.name.endswith(".gz") else open
    matcher = structure_matcher()
    n_fit = n_match = n_count = 0
    rejected: Counter = Counter()
    with opener(path, "rt", newline="") as fh, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for row in csv.DictReader(fh):
            structure = Structure.from_str(row["cif"], fmt="cif")
            try:
                enc = encode_structure(structure, codec)
            except RecordError as err:
                rejected[err.reason] += 1
                continue
            result = check_roundtrip(structure, enc, codec, matcher)
            n_fit += 1
            n_match += result.matched
            n_count += result.atom_count_matched
    return n_fit, n_match, n_count, rejected


def test_bundled_sample_round_trips_completely(sample_csv: Path) -> None:
    n_fit, n_match, n_count, rejected = _roundtrip_counts(sample_csv, CodecConfig())
    assert n_fit > 150
    assert n_match == n_fit and n_count == n_fit
    assert set(rejected) <= {"too_many_sites", "too_many_elements"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "relpath, expected_fit",
    [
        ("mp_20_sample/train.csv", 577),  # the data README's count of rows within PCCD's limits
        ("mp_20_sample/val.csv", None),
        ("carbon_24/train.csv", None),
        ("perov_5/train.csv", 1123),
        ("mp_20/val.csv.gz", 6380),
    ],
)
def test_shared_data_round_trips(shared_data: Path, relpath: str, expected_fit: int | None) -> None:
    """>= 99.5 % StructureMatcher matches and 100 % atom counts; nothing lost to the lattice cap."""
    n_fit, n_match, n_count, rejected = _roundtrip_counts(shared_data / relpath, CodecConfig())
    if expected_fit is not None:
        assert n_fit == expected_fit, rejected
    assert "lattice_out_of_range" not in rejected
    assert n_match >= 0.995 * n_fit
    assert n_count == n_fit


@pytest.mark.slow
def test_paper_preset_loses_long_cells_only(shared_data: Path) -> None:
    """PCCD's 15 A cap rejects cells ours keeps; everything it does encode still round-trips."""
    n_fit, n_match, n_count, rejected = _roundtrip_counts(shared_data / "mp_20_sample/train.csv", CodecConfig.paper())
    assert rejected["lattice_out_of_range"] > 0
    assert n_fit + rejected["lattice_out_of_range"] == 577
    assert n_match == n_fit and n_count == n_fit
