"""Training checkpoints: ``RUN/checkpoints/step-NNNNNNNN.pt`` plus ``last.pt``, written atomically.

A checkpoint is a plain dict of tensors and primitive containers (config as a dict, RNG state as
tensors, code version as a string), so it loads with ``torch.load(weights_only=True)``. Each file is
written under a temporary name and renamed, so a file that exists is complete; ``last.pt`` is a hard
link to the newest periodic file (falling back to a copy). Resume reads ``last.pt`` and, if that is
unreadable, the newest periodic checkpoint that loads.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import torch

from pccd_hpc import __version__
from pccd_hpc.io_utils import atomic_path

log = logging.getLogger(__name__)

LAST = "last.pt"
_STEP_RE = re.compile(r"^step-(\d+)\.pt$")


def checkpoint_dir(run_dir: str | Path) -> Path:
    """The checkpoint folder of a run."""
    return Path(run_dir) / "checkpoints"


def code_version() -> str:
    """Package version plus the git commit of the source tree when available."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        return f"{__version__}+g{sha}"
    except (OSError, subprocess.SubprocessError):
        return __version__


def periodic_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every ``step-N.pt``, oldest first."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_RE.match(p.name))]
    return sorted(found)


def save_checkpoint(run_dir: str | Path, state: dict[str, Any], step: int, keep: int = 2) -> Path:
    """Write ``state`` as ``step-N.pt`` and point ``last.pt`` at it; prune all but the newest ``keep``."""
    folder = checkpoint_dir(run_dir)
    path = folder / f"step-{step:08d}.pt"
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    with atomic_path(folder / LAST) as tmp:
        tmp.unlink()
        try:
            os.link(path, tmp)
        except OSError:  # file systems without hard links
            shutil.copyfile(path, tmp)
    for _, old in periodic_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load one checkpoint with ``weights_only=True`` (no pickled code runs)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def load_latest(run_dir: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
    """The newest readable checkpoint of a run (``last.pt`` first), or None for a fresh run."""
    candidates = [checkpoint_dir(run_dir) / LAST] + [p for _, p in reversed(periodic_checkpoints(run_dir))]
    for path in candidates:
        if not path.exists():
            continue
        try:
            state = load_checkpoint(path, map_location)
        except (RuntimeError, EOFError, OSError, ValueError) as err:  # truncated or corrupt file
            log.warning("skipping unreadable checkpoint %s: %s", path, err)
            continue
        log.info("resuming from %s (step %d)", path, int(state["step"]))
        return state
    return None


def rng_state() -> dict[str, torch.Tensor]:
    """The torch RNG states of this process as tensors (CPU, and CUDA when present)."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    """Restore states saved by :func:`rng_state`."""
    torch.set_rng_state(state["cpu"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())
