"""Merge finished task shards into ``summary.json``: counts, rejection reasons, compositions, speed."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import h5py
import numpy as np
from pymatgen.core import Composition, Element

from pccd_hpc.data.shards import shard_name
from pccd_hpc.generate.plan import GeneratePlan
from pccd_hpc.io_utils import atomic_write_json

SUMMARY_NAME = "summary.json"


def _text(values: np.ndarray) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def summarise(out_dir: str | Path, plan: GeneratePlan, elapsed_s: float | None = None) -> dict:
    """Read every task shard of ``out_dir`` and write ``summary.json``; return it.

    Raises ``FileNotFoundError`` naming the tasks whose shards are missing.
    """
    out_dir = Path(out_dir)
    missing = [k for k in range(plan.n_tasks) if not (out_dir / shard_name(k)).exists()]
    if missing:
        raise FileNotFoundError(f"tasks not finished yet: {missing[:20]}{' ...' if len(missing) > 20 else ''}")
    n_generated = n_valid = 0
    reasons: Counter = Counter()
    per_system: Counter = Counter()
    compositions: set[str] = set()
    indices: list[np.ndarray] = []
    for k in range(plan.n_tasks):
        with h5py.File(out_dir / shard_name(k), "r") as h5:
            valid = h5["valid"][:]
            reason = _text(h5["reason"][:])
            z = h5["atomic_numbers"][:]
            indices.append(h5["input_index"][:])
            systems = _text(h5["system"][:])
        n_generated += len(valid)
        n_valid += int(valid.sum())
        reasons.update(r for r, ok in zip(reason, valid) if not ok)
        for row, ok, system in zip(z, valid, systems):
            per_system[(system, bool(ok))] += 1
            if ok:
                counts = Counter(Element.from_Z(int(a)).symbol for a in row if a > 0)
                compositions.add(Composition(counts).reduced_formula)
    all_indices = np.concatenate(indices) if indices else np.zeros(0)
    if len(np.unique(all_indices)) != len(all_indices):
        raise RuntimeError(f"{out_dir}: duplicated sample indices across shards")
    systems_seen = sorted({s for s, _ in per_system})
    summary = {
        "n_requested": plan.n,
        "n_generated": n_generated,
        "n_valid": n_valid,
        "valid_fraction": n_valid / max(n_generated, 1),
        "rejection_reasons": dict(sorted(reasons.items())),
        "n_unique_compositions": len(compositions),
        "n_systems": len(plan.systems),
        "valid_per_system": {s: per_system[(s, True)] for s in systems_seen[:200]},
        "sampler": plan.sampler,
        "steps": plan.steps if plan.sampler == "ddim" else None,
        "guidance": plan.guidance,
        "seed": plan.seed,
        "checkpoint_sha256": plan.checkpoint_sha256,
        "n_tasks": plan.n_tasks,
    }
    if elapsed_s is not None:
        summary["elapsed_s"] = round(elapsed_s, 2)
        summary["samples_per_s"] = round(n_generated / max(elapsed_s, 1e-9), 3)
    atomic_write_json(out_dir / SUMMARY_NAME, summary)
    return summary
