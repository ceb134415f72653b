"""Generation with a real model: exact counts, determinism, resume after a kill, SLURM arrays."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from pccd_hpc.generate.plan import read_plan
from pccd_hpc.generate.tasks import load_sampler
from pccd_hpc.sampling.checkpoint_sampler import load_model
from pccd_hpc.cluster.slurm import SlurmResources
from pccd_hpc.generate.stage import run_generate
from pccd_hpc.generate.tasks import run_task
from pccd_hpc.generate.plan import GeneratePlan
from pccd_hpc.launch import main as launch_main
from _shards import generated_tensors

REPO = Path(__file__).resolve().parents[2]


def _plan(ckpt: Path, **kw) -> GeneratePlan:
    loaded = load_model(str(ckpt))
    base = dict(n=20, systems=[(12, 8, 8), (14, 14, 14)], checkpoint=str(ckpt), checkpoint_sha256=loaded.sha256,
                steps=3, batch_size=6, n_tasks=2, seed=1, codec=loaded.codec.to_dict())
    return GeneratePlan(**{**base, **kw})


def test_generate_writes_exactly_n_samples_with_provenance(tmp_path: Path, tiny_checkpoint: Path) -> None:
    summary = run_generate(_plan(tiny_checkpoint), tmp_path)
    assert summary["n_requested"] == summary["n_generated"] == 20
    assert summary["n_valid"] + sum(summary["rejection_reasons"].values()) == 20
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    ids = []
    for k in range(2):
        with h5py.File(tmp_path / f"shard-{k:05d}.h5") as h5:
            assert h5.attrs["checkpoint_sha256"] == load_model(str(tiny_checkpoint)).sha256
            assert h5.attrs["sampler"] == "ddim" and h5.attrs["task"] == k
            ids += [v.decode() for v in h5["record_id"][:]]
            assert set(v.decode() for v in h5["system"][:]) == {"Mg-O", "Si"}
        assert (tmp_path / f"shard-{k:05d}.cif").exists()
    assert len(set(ids)) == 20
    assert not (tmp_path / "parts").exists()


def test_same_seed_same_structures_other_seed_differs(tmp_path: Path, tiny_checkpoint: Path) -> None:
    run_generate(_plan(tiny_checkpoint), tmp_path / "a")
    run_generate(_plan(tiny_checkpoint), tmp_path / "b")
    run_generate(_plan(tiny_checkpoint, seed=2), tmp_path / "c")
    assert np.array_equal(generated_tensors(tmp_path / "a"), generated_tensors(tmp_path / "b"))
    assert not np.allclose(generated_tensors(tmp_path / "a"), generated_tensors(tmp_path / "c"))


class _Killed(RuntimeError):
    pass


def test_killed_task_loses_at_most_its_current_batch(tmp_path: Path, tiny_checkpoint: Path) -> None:
    plan = _plan(tiny_checkpoint, n_tasks=1)
    calls = {"n": 0}

    def dying_factory(p):
        inner = load_sampler(p)

        class Dying:
            def sample(self, element_z, band_gap_class, generator):
                calls["n"] += 1
                if calls["n"] == 3:
                    raise _Killed("node failure")
                return inner.sample(element_z, band_gap_class, generator)

        return Dying()

    from pccd_hpc.generate.plan import write_plan

    tmp_path.mkdir(exist_ok=True)
    write_plan(tmp_path, plan)
    with pytest.raises(_Killed):
        run_task(tmp_path, 0, sampler_factory=dying_factory)
    parts = sorted((tmp_path / "parts" / "task-00000").glob("batch-*.npz"))
    assert [p.name for p in parts] == ["batch-00000.npz", "batch-00001.npz"]
    calls["n"] = 10  # the resumed run samples only what is missing
    run_task(tmp_path, 0, sampler_factory=dying_factory)
    assert calls["n"] == 10 + len(plan.batches(0)) - 2
    run_generate(plan, tmp_path / "reference")
    assert np.array_equal(generated_tensors(tmp_path), generated_tensors(tmp_path / "reference"))


def test_cli_generate_and_bad_checkpoint(tmp_path: Path, tiny_checkpoint: Path, capsys, caplog) -> None:
    args = ["generate", "--n", "5", "--elements", "Mg,O", "--checkpoint", str(tiny_checkpoint), "--steps", "2",
            "--out", str(tmp_path / "g")]
    assert launch_main(args) == 0
    assert json.loads(capsys.readouterr().out)["n_generated"] == 5
    assert launch_main(["generate", "--n", "5", "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "h")]) == 2
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert launch_main(["generate", "--n", "5", "--checkpoint", str(bad), "--out", str(tmp_path / "i")]) == 2
    assert "bad.pt: not a readable checkpoint" in caplog.text


def test_cli_generate_from_a_run_folder_pins_its_newest_step(tmp_path: Path, tiny_checkpoint: Path, capsys) -> None:
    from pccd_hpc.model.checkpoint import load_checkpoint, save_checkpoint

    checkpoint = load_checkpoint(tiny_checkpoint)
    for step in (5, 9):
        checkpoint.step = step
        save_checkpoint(tmp_path / "run", checkpoint)
    args = ["generate", "--n", "2", "--elements", "Si", "--checkpoint", str(tmp_path / "run"), "--steps", "2",
            "--out", str(tmp_path / "g")]
    assert launch_main(args) == 0
    plan = read_plan(tmp_path / "g")
    assert Path(plan.checkpoint) == (tmp_path / "run" / "checkpoints" / "step-00000009").resolve()
    assert plan.checkpoint_sha256 == load_model(plan.checkpoint).sha256


@pytest.mark.slurm
def test_sbatch_array_script_then_merge(tmp_path: Path, tiny_checkpoint: Path, local_slurm) -> None:
    from pccd_hpc.cluster.slurm import sbatch, wait_for_job

    common = ["--n", "12", "--elements", "Si", "--checkpoint", str(tiny_checkpoint), "--steps", "2",
              "--batch-size", "4", "--array-size", "3", "--out", str(tmp_path / "g")]
    assert launch_main(["generate", *common, "--plan-only"]) == 0
    job = sbatch(REPO / "jobs" / "generate_array.sh", [str(tmp_path / "g")],
                 ["--array=0-2", f"--output={tmp_path}/task-%a.out", "--chdir", str(REPO)])
    states = wait_for_job(job, timeout_s=300)
    assert sorted(states.values()) == ["COMPLETED"] * 3, states
    for k in range(3):
        assert (tmp_path / "g" / f"shard-{k:05d}.h5").exists()
        assert f"task {k} of job" in (tmp_path / f"task-{k}.out").read_text()
    assert launch_main(["generate", *common]) == 0  # nothing left to run: merges
    assert json.loads((tmp_path / "g" / "summary.json").read_text())["n_generated"] == 12


@pytest.mark.slurm
def test_cluster_slurm_runs_a_submitit_array(tmp_path: Path, tiny_checkpoint: Path, local_slurm) -> None:
    plan = _plan(tiny_checkpoint, n=8, n_tasks=2)
    summary = run_generate(plan, tmp_path, SlurmResources(time_min=5, cpus_per_task=1))
    assert summary["n_generated"] == 8
    assert any((tmp_path / "slurm").glob("*_0_log.out"))


def test_summary_counts_plausible_structures_as_recomputed_from_the_shards(tmp_path: Path) -> None:
    """Every valid sample carries its min d/(r_i+r_j); `plausible` and n_plausible agree with a fresh computation."""
    from pccd_hpc.data.geometry import is_plausible, min_bond_ratio
    from pccd_hpc.data.shards import read_structures
    from pccd_hpc.sampling.checkpoint_sampler import default_checkpoint

    summary = run_generate(_plan(default_checkpoint(), steps=10), tmp_path)  # the bundled model: valid samples
    n_plausible = 0
    for k in range(2):
        path = tmp_path / f"shard-{k:05d}.h5"
        with h5py.File(path) as h5:
            valid, plausible, ratios = h5["valid"][:], h5["plausible"][:], h5["min_bond_ratio"][:]
        assert not (plausible & ~valid).any() and np.isnan(ratios[~valid]).all()
        structures = [s for _rid, s in read_structures(path)]  # read_structures keeps the valid rows only
        assert len(structures) == int(valid.sum())
        for s, flag, ratio in zip(structures, plausible[valid], ratios[valid]):
            assert flag == is_plausible(s) and abs(ratio - min_bond_ratio(s)) < 1e-6
        n_plausible += int(plausible.sum())
    assert summary["n_plausible"] == n_plausible and summary["n_valid"] > 0
    assert summary["plausible_fraction"] == n_plausible / 20 and summary["plausible_bond_factor"] == 0.7


def test_push_apart_makes_every_valid_sample_plausible_and_keeps_the_sampled_ratio(tmp_path: Path) -> None:
    """With the push-apart the written structures are plausible; the ratio as sampled is the run without it."""
    from pccd_hpc.data.geometry import min_bond_ratio
    from pccd_hpc.data.shards import read_structures
    from pccd_hpc.sampling.checkpoint_sampler import default_checkpoint

    raw = run_generate(_plan(default_checkpoint(), steps=10, n_tasks=1), tmp_path / "raw")
    pushed = run_generate(_plan(default_checkpoint(), steps=10, n_tasks=1, push_apart_factor=0.8), tmp_path / "pushed")
    with h5py.File(tmp_path / "raw" / "shard-00000.h5") as h5:
        raw_ratio, raw_valid = h5["min_bond_ratio"][:], h5["valid"][:]
    with h5py.File(tmp_path / "pushed" / "shard-00000.h5") as h5:
        sampled, ratio, valid = h5["min_bond_ratio_sampled"][:], h5["min_bond_ratio"][:], h5["valid"][:]
        plausible, shift, valid_sampled = h5["plausible"][:], h5["push_max_shift_ang"][:], h5["valid_sampled"][:]
    # as sampled it is the run without the push-apart; overlapping atoms are now separated instead of rejected
    assert np.array_equal(raw_valid, valid_sampled) and np.allclose(raw_ratio[raw_valid], sampled[raw_valid])
    assert (valid >= raw_valid).all() and pushed["n_valid_as_sampled"] == raw["n_valid"]
    assert valid.sum() > 0 and plausible[valid].all() and (ratio[valid] >= 0.79).all()
    assert (shift[valid][sampled[valid] < 0.8] > 0).all()
    structures = [s for _rid, s in read_structures(tmp_path / "pushed" / "shard-00000.h5")]  # the valid rows
    assert len(structures) == int(valid.sum())
    assert all(min_bond_ratio(s) >= 0.79 for s in structures)
    assert pushed["n_plausible"] == int(valid.sum()) and pushed["push_apart_factor"] == 0.8
    assert pushed["n_plausible_as_sampled"] == raw["n_plausible"] and raw["push_apart_factor"] is None
    assert raw["n_plausible_as_sampled"] == raw["n_plausible"]
