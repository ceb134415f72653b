"""The `train` command end to end: killed mid-run (SIGKILL), re-run, and it finishes the same run."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from pccd_hpc.config import RunConfig, save_toml
from pccd_hpc.model.checkpoint import complete_checkpoints, load_checkpoint
from pccd_hpc.train.loop import train


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_result(sample_shards: Path, tmp_path: Path,
                                                        fast_config: Callable[..., RunConfig]) -> None:
    config = fast_config(max_steps=30, checkpoint_every=5)
    save_toml(config, tmp_path / "tiny.toml")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "pccd_hpc.launch", "train", "--data", str(sample_shards), "--out", str(run),
           "--preset", "tiny", "--config", str(tmp_path / "tiny.toml")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(step >= 10 for step, _ in complete_checkpoints(run)):
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "no checkpoint at step 10 within 120 s"
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    killed_at = max(json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines())
    assert killed_at < 30

    second = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming from" in second.stderr
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 31))  # every step once: rows after the checkpoint were dropped and redone
    resumed = load_checkpoint(run)

    reference = train(config, sample_shards, tmp_path / "reference")  # the same run, never interrupted
    assert resumed.step == reference.step == 30
    assert resumed.loss == reference.loss
