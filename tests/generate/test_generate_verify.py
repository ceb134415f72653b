"""Generate verifies what it resumes: truncated HDF5/CIF files are redone, errors name the file,
and a re-run of a finished folder keeps the speed figures of the run that did the work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pccd_hpc.generate.plan import GeneratePlan, read_plan
from pccd_hpc.sampling.checkpoint_sampler import load_model
from pccd_hpc.generate.stage import run_generate
from pccd_hpc.generate.summary import summarise
from pccd_hpc.generate.tasks import task_problem
from _shards import generated_tensors


def _plan(ckpt: Path) -> GeneratePlan:
    loaded = load_model(str(ckpt))
    return GeneratePlan(n=12, systems=[(12, 8, 8), (14, 14, 14)], checkpoint=str(ckpt), checkpoint_sha256=loaded.sha256,
                        steps=2, batch_size=6, n_tasks=2, seed=3, codec=loaded.codec.to_dict())


def _truncate(path: Path, keep: float = 0.5) -> None:
    """Cut the file (an untrained model may decode nothing: then its CIF is empty and gets a half block)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)] if data else b"data_gen-0000001_\n_cell_length_a 4.2\n")


def test_truncated_shard_and_cif_are_redone_and_speed_figures_kept(tmp_path: Path, tiny_checkpoint: Path) -> None:
    first = run_generate(_plan(tiny_checkpoint), tmp_path)
    reference = generated_tensors(tmp_path)
    assert first["elapsed_s"] > 0 and first["samples_per_s"] > 0

    # A finished folder: nothing runs, and the figures of the run that sampled stay.
    again = run_generate(_plan(tiny_checkpoint), tmp_path)
    assert again["elapsed_s"] == first["elapsed_s"] and again["samples_per_s"] == first["samples_per_s"]
    assert again["samples_per_task_s"] == first["samples_per_task_s"] > 0

    _truncate(tmp_path / "shard-00000.h5")
    _truncate(tmp_path / "shard-00001.cif", keep=0.4)
    assert "shard-00000.h5" in task_problem(tmp_path, 0)
    assert "shard-00001.cif" in task_problem(tmp_path, 1)
    # summarise refuses unverified files, naming them (no bare HDF5 OSError)
    with pytest.raises(FileNotFoundError, match="shard-00000.h5"):
        summarise(tmp_path, read_plan(tmp_path))

    redone = run_generate(_plan(tiny_checkpoint), tmp_path)
    assert task_problem(tmp_path, 0) is None and task_problem(tmp_path, 1) is None
    assert np.array_equal(generated_tensors(tmp_path), reference)  # fixed seeds: the same samples again
    assert redone["n_generated"] == 12 and redone["n_valid"] == first["n_valid"]
    blocks = sum((tmp_path / f"shard-{k:05d}.cif").read_text().count("data_") for k in range(2))
    assert blocks == redone["n_valid"]
    assert json.loads((tmp_path / "summary.json").read_text()) == redone


def test_unreadable_shard_with_forged_summary_is_named(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """A shard that matches its recorded sha256 but is not HDF5 (forged summary) fails with the file named."""
    from pccd_hpc.generate.tasks import task_summary_path
    from pccd_hpc.io_utils import sha256_file

    run_generate(_plan(tiny_checkpoint), tmp_path)
    shard = tmp_path / "shard-00001.h5"
    shard.write_bytes(b"not an HDF5 file")
    summary_path = task_summary_path(tmp_path, 1)
    summary = json.loads(summary_path.read_text())
    summary["h5_sha256"] = sha256_file(shard)
    summary_path.write_text(json.dumps(summary))
    with pytest.raises(RuntimeError, match="shard-00001.h5"):
        summarise(tmp_path, read_plan(tmp_path))
