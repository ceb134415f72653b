"""predict on the local SLURM cluster: formulas split over a submitit array, merged into one summary."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from pccd_hpc.cluster.slurm import SlurmResources
from pccd_hpc.sampling.checkpoint_sampler import default_checkpoint, load_model
from pccd_hpc.predict.config import PredictConfig
from pccd_hpc.predict.stage import run_predict


@pytest.mark.slurm
def test_predict_runs_formulas_as_a_slurm_array(tmp_path: Path, local_slurm) -> None:
    loaded = load_model(str(default_checkpoint()))
    config = PredictConfig(compositions=["NaCl", "Sr2TiO4", "Ba2YCu3O7"], k=2, steps=3, n_tasks=2,
                           checkpoint=str(loaded.path or default_checkpoint()), checkpoint_sha256=loaded.sha256,
                           codec=loaded.codec.to_dict())
    rows = run_predict(config, tmp_path, SlurmResources(time_min=5, cpus_per_task=1))
    assert {r["formula"]: r["status"] for r in rows} == {"NaCl": "done", "Sr2TiO4": "done", "Ba2YCu3O7": "refused"}
    # submitit names an array element's log JOBID_INDEX_TASK_log.out: both elements ran
    assert {path.name.split("_")[1] for path in (tmp_path / "slurm").glob("*_log.out")} == {"0", "1"}
    with open(tmp_path / "summary.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 3
    for label in ("NaCl", "Sr2TiO4"):
        assert (tmp_path / "compositions" / label / "candidates.json").exists()


@pytest.mark.slurm
def test_predict_plan_then_sbatch_array_script_then_merge(tmp_path: Path, local_slurm) -> None:
    from pccd_hpc.cluster.slurm import sbatch, wait_for_job
    from pccd_hpc.launch import main as launch_main

    repo = Path(__file__).resolve().parents[2]
    common = ["predict", "--composition", "NaCl", "--composition", "MgO", "--k", "2", "--steps", "3",
              "--array-size", "2", "--out", str(tmp_path / "p")]
    assert launch_main([*common, "--plan-only"]) == 0
    job = sbatch(repo / "jobs" / "predict_array.sh", [str(tmp_path / "p")],
                 ["--array=0-1", f"--output={tmp_path}/task-%a.out", "--chdir", str(repo)])
    states = wait_for_job(job, timeout_s=300)
    assert sorted(states.values()) == ["COMPLETED"] * 2, states
    assert launch_main(common) == 0  # nothing left to sample: verifies and merges
    with open(tmp_path / "p" / "summary.csv", newline="") as fh:
        assert [r["status"] for r in csv.DictReader(fh)] == ["done", "done"]
