"""The fixed held-out split: material ids of MP-20's validation split that no training recipe may use.

The list (``heldout/mp20_val_heldout_ids.txt``, made by ``scripts/make_heldout_split.py``) is read by
the data scripts, the calibration benchmark and the evaluation recipes.
"""

from __future__ import annotations

from pathlib import Path

HELDOUT_IDS_FILE = Path(__file__).resolve().parent / "heldout" / "mp20_val_heldout_ids.txt"


def heldout_ids(path: Path = HELDOUT_IDS_FILE) -> frozenset[str]:
    """The held-out material ids (comment lines starting with ``#`` and blank lines skipped)."""
    return frozenset(line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))
