"""Shared data fixtures: the bundled sample, and ../shared/data when it is present."""

from __future__ import annotations

from pathlib import Path

import pytest

from pccd_hpc.data.sample import sample_csv_path

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="session")
def sample_csv() -> Path:
    """The CSV bundled with the package."""
    return sample_csv_path()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout; tests using it skip on machines without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA
