"""Generation reports its progress where a SLURM log sees it: per denoising step inside a batch, and per batch."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from pccd_hpc.generate.plan import GeneratePlan
from pccd_hpc.sampling.checkpoint_sampler import load_model
from pccd_hpc.generate.tasks import run_task
from pccd_hpc.progress import Progress


class _Recording(Progress):
    """A real progress that also keeps what it was told within a batch."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.partials: list[float] = []

    def within(self, n_items: float) -> None:
        self.partials.append(n_items)
        super().within(n_items)


def test_a_task_reports_each_denoising_step_and_each_batch(tmp_path: Path, tiny_checkpoint: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="pccd_hpc.progress")
    loaded = load_model(str(tiny_checkpoint))
    plan = GeneratePlan(n=6, systems=[(14, 14, 14)], checkpoint=str(tiny_checkpoint), checkpoint_sha256=loaded.sha256,
                        steps=3, batch_size=4, n_tasks=1, codec=loaded.codec.to_dict())
    from pccd_hpc.generate.plan import write_plan

    write_plan(tmp_path, plan)
    with _Recording("sampling", 6, "sample", stream=io.StringIO(), min_gap_s=0) as progress:
        run_task(tmp_path, 0, progress=progress, plan=plan)
    # batch of 4 then batch of 2, three DDIM steps each: a third of the batch per step
    assert progress.partials == [4 / 3, 8 / 3, 4.0, 2 / 3, 4 / 3, 2.0]
    lines = [r.getMessage() for r in caplog.records if r.name == "pccd_hpc.progress"]
    assert any(line.startswith("sampling: 4/6 samples") for line in lines)
    assert any(line.startswith("sampling: 6/6 samples") and line.endswith("done") for line in lines)
    assert any(line.startswith("task 0 decoding: 6/6 samples") for line in lines)
