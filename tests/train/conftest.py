"""Training fixtures: the bundled sample encoded into real HDF5 shards, and a tiny fast config."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import pytest

from pccd_hpc.config import RunConfig, tiny_preset
from pccd_hpc.data.sample import sample_csv_path
from pccd_hpc.launch import main as launch_main


def _encode(csv_path: Path, out: Path) -> Path:
    assert launch_main(["encode", "--input", str(csv_path), "--out", str(out), "--no-roundtrip-check"]) == 0
    return out


@pytest.fixture(scope="session")
def sample_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All structures of the bundled sample, encoded."""
    return _encode(sample_csv_path(), tmp_path_factory.mktemp("sample_shards"))


@pytest.fixture(scope="session")
def few_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A handful (8) of structures from the sample, encoded (for overfitting)."""
    folder = tmp_path_factory.mktemp("few_shards")
    csv.field_size_limit(10**8)
    with open(sample_csv_path(), newline="") as fh:
        rows = list(csv.DictReader(fh))
    small = folder / "few.csv"
    with open(small, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows[:8])
    return _encode(small, folder / "shards")


def _fast_config(**train: object) -> RunConfig:
    """The tiny preset with a small batch, one thread, checkpoints every 3 steps; ``train`` overrides."""
    values = {"batch_size": 8, "max_steps": 6, "checkpoint_every": 3, "log_every": 1, "threads_per_process": 1,
              "warmup_steps": 2}
    values.update(train)
    return tiny_preset().with_overrides({"train": values})


@pytest.fixture()
def fast_config() -> Callable[..., RunConfig]:
    """Factory of fast test configs: ``fast_config(max_steps=4, ...)``."""
    return _fast_config
