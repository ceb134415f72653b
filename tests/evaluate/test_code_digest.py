"""The evaluation cache is keyed by the source of every module the evaluation can import, found from the code
itself: editing any of them, or moving code from one module to another, invalidates it; editing a module it
does not import does not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pccd_hpc.evaluate.parts import code_digest, imported_modules
from pccd_hpc.launch import main as launch_main


def _probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package ``probe``: a stage importing a helper at the top and a metric inside a function."""
    package = tmp_path / "probe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "stage.py").write_text("from probe import helpers\n\n\ndef run():\n    from probe.metric import score\n"
                                      "    return helpers.twice(score())\n")
    (package / "helpers.py").write_text("def twice(x):\n    return 2 * x\n")
    (package / "metric.py").write_text("def score():\n    return 0.7\n")
    (package / "unrelated.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return package


def test_the_modules_come_from_the_code_lazy_imports_included(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _probe(tmp_path, monkeypatch)
    assert imported_modules("probe.stage", "probe") == ("probe", "probe.helpers", "probe.metric", "probe.stage")


def test_editing_any_imported_module_changes_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = _probe(tmp_path, monkeypatch)
    before = code_digest("probe.stage", "probe")
    assert code_digest("probe.stage", "probe") == before
    (package / "unrelated.py").write_text("X = 2\n")
    assert code_digest("probe.stage", "probe") == before  # not imported by the evaluation
    (package / "metric.py").write_text("def score():\n    return 0.8\n")  # imported only inside a function
    assert code_digest("probe.stage", "probe") != before


def test_moving_code_into_a_new_module_changes_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = _probe(tmp_path, monkeypatch)
    before = code_digest("probe.stage", "probe")
    # score() moves to a new module and changes there; metric.py keeps only an import of it
    (package / "scores.py").write_text("def score():\n    return 0.9\n")
    (package / "metric.py").write_text("from probe.scores import score  # noqa: F401\n")
    assert "probe.scores" in imported_modules("probe.stage", "probe")
    moved = code_digest("probe.stage", "probe")
    assert moved != before
    (package / "scores.py").write_text("def score():\n    return 1.0\n")  # an edit where the code now lives
    assert code_digest("probe.stage", "probe") != moved


def test_the_evaluation_covers_every_module_it_used_to_list_by_hand() -> None:
    from pccd_hpc.evaluate import denovo

    modules = set(imported_modules("pccd_hpc.evaluate.stage"))
    formerly_listed = {"pccd_hpc.model.diffusion", "pccd_hpc.model.samplers", "pccd_hpc.sampling.checkpoint_sampler",
                       "pccd_hpc.evaluate.denovo", "pccd_hpc.data.codec", "pccd_hpc.data.geometry",
                       denovo.compositional_validity.__module__,  # the validity metrics, wherever they live
                       "pccd_hpc.data.separation", "pccd_hpc.evaluate.coverage",
                       "pccd_hpc.sampling.reconstruction", "pccd_hpc.data.dataset", "pccd_hpc.data.roundtrip"}
    assert formerly_listed <= modules
    assert "pccd_hpc.evaluate.page" in modules  # imported inside run_evaluate
    assert not any(m.startswith(("pccd_hpc.generate", "pccd_hpc.followup", "pccd_hpc.report")) for m in modules)


def test_every_part_is_keyed_by_the_code_digest(trained_tiny_checkpoint: Path, small_shards: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    assert launch_main(["evaluate", "--checkpoint", str(trained_tiny_checkpoint), "--data", str(small_shards),
                        "--out", str(out), "--n-samples", "4", "--n-reconstruct", "2", "--steps", "2",
                        "--batch-size", "4", "--threads", "1", "--skip-coverage"]) == 0
    parts = sorted(out.glob("part-*.json"))
    assert len(parts) >= 4
    for part in parts:
        assert json.loads(part.read_text())["settings"]["code_sha256"] == code_digest("pccd_hpc.evaluate.stage"), part.name
