"""The structure sample bundled with the package (see PROVENANCE.md)."""

from __future__ import annotations

from pathlib import Path

SAMPLE_CSV = "structures.csv"


def sample_csv_path() -> Path:
    """Path of the bundled sample CSV (CDVAE layout: material_id, ..., cif)."""
    return Path(__file__).with_name(SAMPLE_CSV)
