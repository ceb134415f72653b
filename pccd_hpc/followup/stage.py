"""The followup stage: prepare ``FDIR`` for chosen candidates, run their steps here, finalize.

``FDIR/config.json`` holds the resolved ``FollowupConfig``; ``FDIR/candidates/<id>/`` one folder per
candidate (see ``steps``). SLURM jobs run single steps against the same folders (``submit``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

from pccd_hpc.materials.errors import StepFailure
from pccd_hpc.materials.backends.registry import get_dft_backend
from pccd_hpc.followup.config import FollowupConfig
from pccd_hpc.followup.inputs import Candidate
from pccd_hpc.followup.steps import run_step
from pccd_hpc.followup.summary import finalize_candidate, write_campaign_summary
from pccd_hpc.io_utils import atomic_write_json, read_json
from pccd_hpc.records import record_stem

log = logging.getLogger(__name__)

LOCAL_ORDER = ("relax", "static", "bands", "phonon-forces", "phonons")


def candidate_dir(out_dir: Path, record_id: str) -> Path:
    """``FDIR/candidates/<path-safe id>``."""
    return out_dir / "candidates" / record_stem(record_id)


def prepare(out_dir: Path, candidates: Sequence[Candidate], config: FollowupConfig) -> list[Path]:
    """Write ``config.json`` and each candidate's ``input.json`` (only when changed, so finished
    steps stay valid); return the candidate folders. A config differing from the one on disk is
    refused: finished steps were computed with it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    config_path = out_dir / "config.json"
    if config_path.exists():
        on_disk = FollowupConfig.from_dict(read_json(config_path, "followup config"))
        if on_disk != config:
            raise ValueError(f"{config_path} holds different settings ({_diff(on_disk, config)}): "
                             "use a new --out folder or the same settings")
    else:
        atomic_write_json(config_path, config.to_dict())
    folders = []
    for cand in candidates:
        folder = candidate_dir(out_dir, cand.record_id)
        # input.json (what the DFT steps depend on) holds the structure only; the validation's
        # figures (E_hull, source) go to validation.json, so re-validating redoes no DFT.
        _write_if_changed(folder / "input.json", {"id": cand.record_id, "structure": cand.structure.as_dict()})
        _write_if_changed(folder / "validation.json", {"id": cand.record_id, "formula": cand.formula,
                                                       "e_above_hull_ev_per_atom": cand.e_above_hull_ev_per_atom,
                                                       "source": cand.source})
        folders.append(folder)
    return folders


def _write_if_changed(path: Path, data: dict[str, Any]) -> None:
    if not path.exists() or read_json(path) != json.loads(json.dumps(data)):
        atomic_write_json(path, data)


def load_config(out_dir: Path) -> FollowupConfig:
    """The config a prepared ``FDIR`` was made with."""
    path = out_dir / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: {out_dir} is not a prepared followup folder")
    return FollowupConfig.from_dict(read_json(path, "followup config"))


def run_local(out_dir: Path, folders: Sequence[Path]) -> list[dict[str, Any]]:
    """Run every step of every candidate here, one after another; a failing step skips its
    dependants for that candidate only. Returns the candidates' summaries."""
    backend = get_dft_backend(load_config(out_dir))
    summaries = []
    for folder in folders:
        start = time.perf_counter()
        for step in LOCAL_ORDER:
            try:
                run_step(folder, step, backend)
            except StepFailure as err:
                log.error("%s", err)
                if step in ("relax", "static"):
                    break
                if step == "phonon-forces":
                    continue  # the phonons step then records what is missing
        summary = finalize_candidate(folder)
        log.info("%s: finished in %.1f s (gap %s eV, lowest phonon %s THz)", summary["id"], time.perf_counter() - start,
                 _fmt(summary["band_gap_ev"]), _fmt(summary["lowest_phonon_frequency_thz"]))
        summaries.append(summary)
    write_campaign_summary(out_dir, collect_summaries(out_dir))
    return summaries


def collect_summaries(out_dir: Path) -> list[dict[str, Any]]:
    """Every candidate summary under ``FDIR/candidates``."""
    return [read_json(p, "candidate summary") for p in sorted((out_dir / "candidates").glob("*/summary.json"))]


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _diff(a: FollowupConfig, b: FollowupConfig) -> str:
    da, db = a.to_dict(), b.to_dict()
    return ", ".join(f"{k}: {da[k]!r} -> {db[k]!r}" for k in da if da[k] != db[k])
