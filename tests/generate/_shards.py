"""Helpers shared by the generation tests (imported as a sibling module, like tests/validate/_structures.py)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from pccd_hpc.data.shards import shard_name
from pccd_hpc.generate.plan import read_plan


def generated_tensors(out: Path) -> np.ndarray:
    """Every task's sampled tensors of the generation folder ``out``, in task order."""
    arrays = []
    for k in range(read_plan(out).n_tasks):
        with h5py.File(out / shard_name(k)) as h5:
            arrays.append(h5["tensors"][:])
    return np.concatenate(arrays)
