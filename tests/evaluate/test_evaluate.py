"""The ``evaluate`` command end to end with a real (tiny, briefly trained) model: outputs, rules, resume."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from pccd_hpc.data.codec import decode_tensor
from pccd_hpc.evaluate.denovo import generate_decode_codec, load_heldout
from pccd_hpc.sampling.checkpoint_sampler import load_model
from pccd_hpc.launch import main as launch_main

PARTS = ("sample", "denovo", "denovo-pushed", "coverage", "coverage-pushed", "reconstruct-heldout-t300",
         "reconstruct-heldout-tT", "reconstruct-train-tT")


def _no_nan(text: str) -> dict:
    def refuse(token: str):
        raise AssertionError(f"bare {token} in JSON")

    return json.loads(text, parse_constant=refuse)


def _nulls(obj, path=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _nulls(v, f"{path}.{k}" if path else k)
    elif obj is None:
        yield path


def _evaluate(ckpt: Path, data: Path, out: Path, *extra: str) -> dict:
    args = ["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--train-data", str(data), "--out", str(out),
            "--n-samples", "6", "--n-reconstruct", "3", "--n-train-reconstruct", "2", "--steps", "2",
            "--batch-size", "4", "--threads", "1", *extra]
    assert launch_main(args) == 0
    return _no_nan((out / "evaluate.json").read_text())


def test_evaluate_writes_every_part_and_resumes_only_what_changed(trained_tiny_checkpoint: Path, small_shards: Path,
                                                                  tmp_path: Path) -> None:
    out = tmp_path / "eval"
    summary = _evaluate(trained_tiny_checkpoint, small_shards, out)
    loaded = load_model(str(trained_tiny_checkpoint))
    assert summary["checkpoint"]["sha256"] == loaded.sha256 and summary["checkpoint"]["step"] == 4
    assert summary["machine"]["torch_threads"] == 1
    assert summary["checkpoint"]["number_of_sites"].startswith("not a condition")  # the tiny model reads no count
    assert summary["denovo"]["n_samples"] == 6
    assert summary["coverage"]["n_generated"] == 6 and summary["coverage"]["n_reference"] == 9
    assert set(summary["reconstruction"]) == {p for p in PARTS if p.startswith("reconstruct-")}
    assert summary["reconstruction"]["reconstruct-train-tT"]["n"] == 2
    for rec in summary["reconstruction"].values():  # decoded as generate does, and as sampled beside it
        assert rec["decode"]["method"] == "blocks" and rec["decode"]["push_apart_factor"] == 0.8
        assert rec["as_sampled"]["atom_count_accuracy_pct"] <= 100
        for err in (rec["atom_error_ang"], rec["as_sampled"]["atom_error_ang"]):  # Angstrom; a None is explained below
            assert err is None or 0 <= err["median"] <= err["p90"]
    assert summary["reconstruction"]["reconstruct-heldout-tT"]["t"] == loaded.config.diffusion.timesteps - 1
    for name in PARTS:
        assert (out / f"part-{name}.json").exists()
        timing = summary["timing"][name]
        assert timing["wall_s"] > 0 and timing["cpu_s"] > 0 and not timing["reused_from_earlier_run"]
    # every null in the figures is explained
    for section in ("denovo", "denovo_pushed", "coverage", "coverage_pushed", "reconstruction"):
        part = section.replace("_", "-")
        for path in _nulls(summary[section]):
            key = path if section == "reconstruction" else f"{part}.{path}"
            assert any(key.endswith(k.split(".", 1)[-1]) for k in summary["not_computed"]), path

    # systems come from the held-out element slots; validity is exactly the generate stage's rule
    heldout = load_heldout(small_shards)
    with np.load(out / "denovo-samples.npz") as data:
        tensors, systems = data["tensors"], data["element_z"]
    assert {tuple(z) for z in systems} <= {tuple(z) for z in heldout.element_z}
    codec = generate_decode_codec(loaded)
    generate_valid = [decode_tensor(t, z, codec, require_all_elements=True).valid for t, z in zip(tensors, systems)]
    assert summary["denovo"]["valid_pct"] == pytest.approx(100 * np.mean(generate_valid))

    # the pushed-apart figures score the same samples after generate's push-apart (0.8 by default)
    from pccd_hpc.data.separation import push_apart

    pushed = summary["denovo_pushed"]
    loose = dataclasses.replace(codec, min_distance_ang=0.0)  # overlapping atoms are separated, not rejected
    decoded = [decode_tensor(t, z, loose) for t, z in zip(tensors, systems)]
    assert pushed["n_samples"] == 6 and pushed["push_apart"]["n_pushed"] == sum(r.valid for r in decoded)
    expected = [push_apart(r.structure, 0.8).min_bond_ratio_after >= 0.7 for r in decoded if r.valid]
    assert pushed["plausible_pct"] == pytest.approx(100 * sum(expected) / 6)
    assert summary["coverage_pushed"]["n_generated"] == 6

    page = (out / "evaluate.md").read_text()
    assert "median atom error as sampled" in page and "Plausible by number of sites" in page
    assert f"Number of sites: {summary['checkpoint']['number_of_sites']}." in page
    assert sum(row["n"] for row in summary["denovo"]["by_sites"]) == round(summary["denovo"]["decode_valid_pct"] * 6 / 100)
    ref_rows = summary["heldout_reference"]["by_sites"]
    assert sum(row["n"] for row in ref_rows) == summary["heldout_reference"]["n"] == 9
    empty = {f"heldout_reference.by_sites.{row['sites']}.plausible_pct" for row in ref_rows if row["n"] == 0}
    assert empty == {k for k in summary["not_computed"] if k.startswith("heldout_reference.by_sites")}
    assert "valid and plausible" in page and "COV-R" in page and "after push-apart" in page and "NaN" not in page and "nan %" not in page
    for figure in ("figures/min-bond-ratio.png", "reconstruct-heldout-t300/reconstruct.png"):
        assert f"]({figure})" in page
        assert (out / figure).read_bytes()[:4] == b"\x89PNG"

    # the same command again: every part is reused, nothing is rewritten
    stamps = {name: (out / f"part-{name}.json").stat().st_mtime_ns for name in PARTS}
    again = _evaluate(trained_tiny_checkpoint, small_shards, out)
    assert all(again["timing"][name]["reused_from_earlier_run"] for name in PARTS)
    assert {name: (out / f"part-{name}.json").stat().st_mtime_ns for name in PARTS} == stamps
    assert again["denovo"] == summary["denovo"]

    # lost samples file: sampling and everything after it is redone; another guidance: all sampling parts redone
    (out / "denovo-samples.npz").write_bytes(b"corrupt")
    third = _evaluate(trained_tiny_checkpoint, small_shards, out, "--guidance", "1.5", "--skip-coverage")
    assert not third["timing"]["sample"]["reused_from_earlier_run"]
    assert not third["timing"]["reconstruct-heldout-t300"]["reused_from_earlier_run"]
    assert third["coverage"] is None and "coverage" in third["not_computed"]
    assert json.loads((out / "part-sample.json").read_text())["settings"]["guidance"] == 1.5


def test_evaluate_rejects_bad_input_with_a_clear_error(trained_tiny_checkpoint: Path, small_shards: Path,
                                                       tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert launch_main(["evaluate", "--checkpoint", str(trained_tiny_checkpoint), "--data", str(empty),
                        "--out", str(tmp_path / "e")]) == 2
    assert "no shard-*.h5 files" in caplog.text
    assert launch_main(["evaluate", "--checkpoint", str(tmp_path / "missing.pt"), "--data", str(small_shards),
                        "--out", str(tmp_path / "e")]) == 2
    assert "missing.pt" in caplog.text
    assert launch_main(["evaluate", "--checkpoint", str(trained_tiny_checkpoint), "--data", str(small_shards),
                        "--out", str(tmp_path / "e"), "--n-samples", "0"]) == 2
    assert "n_samples must be >= 1" in caplog.text


def test_reconstruction_gaps_explain_every_missing_figure_and_nothing_else() -> None:
    from pccd_hpc.evaluate.stage import _reconstruction_gaps

    found = {"median": 0.1, "p90": 0.2, "n_atoms": 9}
    complete = {"rms_mean": 0.1, "coordinate_mae_frac": 0.01, "atom_error_ang": found,
                "as_sampled": {"rms_mean": 0.2, "atom_error_ang": found}, "noisy_input": {"atom_error_ang": found}}
    assert _reconstruction_gaps(complete) == {}
    gaps = _reconstruction_gaps({**complete, "coordinate_mae_frac": float("nan"),
                                 "as_sampled": {"rms_mean": None, "atom_error_ang": found},
                                 "noisy_input": {"atom_error_ang": None}})
    assert set(gaps) == {"coordinate_mae_frac", "rms_mean", "noisy_input.atom_error_ang"}
    assert "matched" in gaps["rms_mean"] and "noisy input" in gaps["noisy_input.atom_error_ang"]


def test_a_model_conditioned_on_the_number_of_sites_reports_how_often_samples_keep_the_count_asked_for(
        small_shards: Path, tmp_path: Path) -> None:
    from pccd_hpc.config import tiny_preset
    from pccd_hpc.train.loop import train

    config = tiny_preset().with_overrides({"model": {"site_condition": True}, "train": {
        "batch_size": 4, "max_steps": 2, "checkpoint_every": 2, "threads_per_process": 1, "warmup_steps": 1}})
    train(config, small_shards, tmp_path / "run")
    out = tmp_path / "eval"
    summary = _evaluate(tmp_path / "run", small_shards, out, "--skip-coverage")
    assert summary["checkpoint"]["number_of_sites"].startswith("a condition")
    with np.load(out / "denovo-samples.npz") as data:
        asked, tensors, systems = data["n_sites"], data["tensors"], data["element_z"]
    heldout = load_heldout(small_shards)
    assert len(asked) == 6 and set(asked.tolist()) <= {len(s) for s in heldout.structures}  # drawn from the training counts
    codec = generate_decode_codec(load_model(str(tmp_path / "run")))
    decoded = [decode_tensor(t, z, codec) for t, z in zip(tensors, systems)]
    hits = sum(r.structure is not None and len(r.structure) == n for r, n in zip(decoded, asked))
    assert summary["denovo"]["site_count"]["as_requested_pct"] == pytest.approx(100 * hits / 6)
    assert summary["denovo"]["site_count"]["requested_mean"] == pytest.approx(float(np.mean(asked)))
    assert "asked for a number of sites" in (out / "evaluate.md").read_text()


def test_an_empty_site_bin_of_the_held_out_reference_is_explained() -> None:
    from pccd_hpc.evaluate.denovo import plausible_by_sites
    from pccd_hpc.evaluate.stage import _reference_gaps
    from pymatgen.core import Lattice, Structure

    small = Structure(Lattice.cubic(4.2), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    rows = plausible_by_sites([small, small], [0.9, 0.95])
    assert _reference_gaps({"by_sites": rows}) == {
        f"heldout_reference.by_sites.{bin_}.plausible_pct": "no held-out structure with that many sites"
        for bin_ in ("5-8", "9-12", "13-16")}
    assert _reference_gaps({"by_sites": plausible_by_sites([small], [0.9])[:1]}) == {}
