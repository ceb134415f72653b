"""Atomic writes honour the umask (mkstemp alone creates 0600 files colleagues cannot read)."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import pytest

from pccd_hpc.io_utils import atomic_write_json, atomic_write_text


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_write_uses_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        atomic_write_json(tmp_path / "b.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == mode


def test_json_has_no_bare_nan(tmp_path: Path) -> None:
    import numpy as np

    atomic_write_json(tmp_path / "m.json", {"a": math.nan, "b": [float("inf"), 1.5], "c": np.float64("nan"), "d": np.float32(2.0)})
    text = (tmp_path / "m.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [None, 1.5], "c": None, "d": 2.0}
