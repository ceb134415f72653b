"""Evaluation fixtures: a dozen real MP structures encoded as held-out shards, and a tiny model trained on them."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from pccd_hpc.config import tiny_preset
from pccd_hpc.data.sample import sample_csv_path
from pccd_hpc.launch import main as launch_main
from pccd_hpc.train.loop import train


@pytest.fixture(scope="session")
def small_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 12 structures of the bundled sample, encoded (real HDF5 shards)."""
    folder = tmp_path_factory.mktemp("eval_shards")
    csv.field_size_limit(10**8)
    with open(sample_csv_path(), newline="") as fh:
        rows = list(csv.DictReader(fh))[:12]
    small = folder / "small.csv"
    with open(small, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = folder / "shards"
    assert launch_main(["encode", "--input", str(small), "--out", str(out), "--no-roundtrip-check"]) == 0
    return out


@pytest.fixture(scope="session")
def trained_tiny_checkpoint(small_shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny preset trained for 4 steps on ``small_shards`` (a real training run folder)."""
    config = tiny_preset().with_overrides({"train": {"batch_size": 4, "max_steps": 4, "checkpoint_every": 4,
                                                     "log_every": 1, "threads_per_process": 1, "warmup_steps": 1}})
    run = tmp_path_factory.mktemp("tiny_run")
    train(config, small_shards, run)
    return run
