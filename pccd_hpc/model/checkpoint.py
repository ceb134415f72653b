"""Checkpoints: the one module that writes and reads them (train, generate, reconstruct, export).

A training run keeps its checkpoints as folders::

    RUN/checkpoints/step-00000500/state.pt   weights, EMA weights, optimizer, scheduler, RNG, config, codec, step
    RUN/checkpoints/step-00000500/COMPLETE   written last: {"step": 500, "sha256": <of state.pt>, ...}

A folder counts only once its ``COMPLETE`` marker exists and the marker's hash matches ``state.pt``;
resume takes the highest such folder, and the newest ``keep`` (at least two) complete folders are
kept, so a checkpoint found damaged still leaves one to fall back to.

A checkpoint can also be one file: :func:`export_checkpoint` writes the sampling part (EMA weights,
config, codec, step, loss, code version) as a single ``.pt``; the bundled model is such a file.
:func:`load_checkpoint` reads every form (run folder, ``checkpoints/`` folder, ``step-N/`` folder,
single file, and the older ``last.pt`` / ``step-N.pt`` files) with ``torch.load(weights_only=True)``
and returns a typed :class:`Checkpoint`.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import pickle
import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pccd_hpc import __version__
from pccd_hpc.config import RunConfig
from pccd_hpc.data.codec import CodecConfig
from pccd_hpc.io_utils import atomic_write_bytes, atomic_write_json, sha256_file

log = logging.getLogger(__name__)

STATE_NAME = "state.pt"
MARKER_NAME = "COMPLETE"
MIN_KEEP = 2
DEFAULT_MAX_CHECKPOINT_GB = 16.0
"""Most tensor data a checkpoint may declare before it is loaded (GB); ``PCCD_MAX_CHECKPOINT_GB`` overrides it."""
_STEP_DIR_RE = re.compile(r"^step-(\d+)$")
_LEGACY_RE = re.compile(r"^step-(\d+)\.pt$")
_TRAINER_KEYS = ("model", "optimizer", "scheduler", "rng", "batches_seen", "epoch", "skipped_nonfinite", "world_size")
_KNOWN_KEYS = {"ema", "config", "codec", "step", "loss", "code_version", *_TRAINER_KEYS}


@dataclass
class TrainerState:
    """What resuming training needs besides the EMA weights (absent from exported checkpoints)."""

    model: dict[str, torch.Tensor]
    """The raw (non-averaged) network weights."""
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, torch.Tensor]
    """Torch RNG states (see :func:`rng_state`)."""
    batches_seen: int
    epoch: int
    skipped_nonfinite: int
    world_size: int


@dataclass
class Checkpoint:
    """One checkpoint: the EMA weights with the config and codec they belong to, and its step."""

    step: int
    config: RunConfig
    codec: CodecConfig
    ema: dict[str, torch.Tensor]
    """EMA weights, loadable into the network ``config`` describes."""
    loss: float = math.nan
    """Training loss at the last logged step before the checkpoint (NaN when unknown)."""
    code_version: str = ""
    trainer: TrainerState | None = None
    """Optimizer, RNG and raw weights for resuming; None for an exported checkpoint."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Further entries of an exported file (kept when it is exported again)."""
    path: Path | None = None
    """Where it was read from (a ``step-N/`` folder or a file); None before it is saved."""
    sha256: str = ""
    """sha256 of the file holding the state (empty before it is saved)."""

    def to_state(self) -> dict[str, Any]:
        """The plain dict written with ``torch.save`` (tensors and primitive containers only)."""
        state: dict[str, Any] = {**self.extra, "ema": self.ema, "config": self.config.to_dict(),
                                 "codec": self.codec.to_dict(), "step": int(self.step), "loss": float(self.loss),
                                 "code_version": self.code_version or code_version()}
        if self.trainer is not None:
            state.update({key: getattr(self.trainer, key) for key in _TRAINER_KEYS})
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any], source: str | Path, sha256: str = "") -> "Checkpoint":
        """Build from a loaded dict; ``ValueError`` naming ``source`` when an entry is missing or wrong."""
        if not isinstance(state, dict):
            raise ValueError(f"{source}: not a pccd_hpc checkpoint (holds a {type(state).__name__}, not a dict)")
        for key in ("config", "ema"):
            if key not in state:
                raise ValueError(f"{source}: not a pccd_hpc checkpoint (no {key!r} entry)")
        try:
            config = RunConfig.from_dict(state["config"])
            codec = CodecConfig.from_dict(state["codec"]) if state.get("codec") else CodecConfig()
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: invalid config or codec in checkpoint: {err}") from err
        trainer = None
        if all(key in state for key in _TRAINER_KEYS):
            trainer = TrainerState(**{key: state[key] for key in _TRAINER_KEYS})
            for key in ("batches_seen", "epoch", "skipped_nonfinite", "world_size"):
                setattr(trainer, key, int(getattr(trainer, key)))
        return cls(step=int(state.get("step", 0)), config=config, codec=codec, ema=state["ema"],
                   loss=float(state.get("loss", math.nan)), code_version=str(state.get("code_version", "")),
                   trainer=trainer, extra={k: v for k, v in state.items() if k not in _KNOWN_KEYS},
                   path=Path(source), sha256=sha256)


def checkpoint_dir(run_dir: str | Path) -> Path:
    """The checkpoint folder of a run."""
    return Path(run_dir) / "checkpoints"


def step_dir(run_dir: str | Path, step: int) -> Path:
    """The folder of the checkpoint at ``step``."""
    return checkpoint_dir(run_dir) / f"step-{step:08d}"


def code_version() -> str:
    """Package version plus the git commit of the source tree when available."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        return f"{__version__}+g{sha}"
    except (OSError, subprocess.SubprocessError):
        return __version__


def _step_dirs(run_dir: str | Path) -> list[tuple[int, Path]]:
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _STEP_DIR_RE.match(p.name)))


def complete_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, folder) of every ``step-N/`` folder with its completion marker, oldest first."""
    return [(step, path) for step, path in _step_dirs(run_dir) if (path / MARKER_NAME).is_file()]


def save_checkpoint(run_dir: str | Path, checkpoint: Checkpoint, keep: int = MIN_KEEP) -> Path:
    """Write ``checkpoint`` as ``step-N/`` (state, then marker); keep the newest ``max(keep, 2)``; return the folder."""
    folder = step_dir(run_dir, checkpoint.step)
    marker = folder / MARKER_NAME
    marker.unlink(missing_ok=True)  # an earlier, interrupted attempt at this step no longer counts
    state_path = folder / STATE_NAME
    _save_state(checkpoint.to_state(), state_path)
    digest = sha256_file(state_path)
    atomic_write_json(marker, {"step": int(checkpoint.step), "sha256": digest, "file": STATE_NAME,
                               "code_version": checkpoint.code_version or code_version()})
    checkpoint.path, checkpoint.sha256 = folder, digest
    _prune(run_dir, max(keep, MIN_KEEP))
    return folder


def _prune(run_dir: str | Path, keep: int) -> None:
    """Remove all but the newest ``keep`` complete folders, and incomplete folders below the newest."""
    complete = complete_checkpoints(run_dir)
    kept = {path for _, path in complete[-keep:]}
    newest = complete[-1][0] if complete else -1
    for step, path in _step_dirs(run_dir):
        if path not in kept and step <= newest:
            shutil.rmtree(path, ignore_errors=True)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint: a run folder or its ``checkpoints/`` (highest complete step), a ``step-N/`` folder, or a file.

    ``FileNotFoundError`` when nothing is there; ``ValueError`` naming the file when it is damaged,
    incomplete, or not a pccd_hpc checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.is_file():
        return _load_file(path, map_location)
    if _STEP_DIR_RE.match(path.name) and not (path / "checkpoints").is_dir():
        return _load_step_dir(path, map_location)
    run_dir = path.parent if path.name == "checkpoints" and not (path / "checkpoints").is_dir() else path
    found = load_latest(run_dir, map_location)
    if found is None:
        raise FileNotFoundError(f"no complete checkpoint in {path} (no {checkpoint_dir(run_dir).name}/step-N/{MARKER_NAME})")
    return found


def load_latest(run_dir: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint | None:
    """The highest complete, undamaged checkpoint of a run, or None for a fresh run.

    Runs written before ``step-N/`` folders (``last.pt``, ``step-N.pt``) still resume from their newest readable file.
    """
    candidates = [path for _, path in reversed(complete_checkpoints(run_dir))]
    if not candidates:
        candidates = _legacy_files(run_dir)
    for path in candidates:
        try:
            checkpoint = load_checkpoint(path, map_location)
        except ValueError as err:
            log.warning("skipping checkpoint %s: %s", path, err)
            continue
        log.info("resuming from %s (step %d)", path, checkpoint.step)
        return checkpoint
    return None


def _legacy_files(run_dir: str | Path) -> list[Path]:
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    periodic = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _LEGACY_RE.match(p.name)))
    return [p for p in [folder / "last.pt"] + [p for _, p in reversed(periodic)] if p.is_file()]


def _load_step_dir(folder: Path, map_location: str | torch.device) -> Checkpoint:
    marker, state_path = folder / MARKER_NAME, folder / STATE_NAME
    if not marker.is_file():
        raise ValueError(f"{folder}: incomplete checkpoint (no {MARKER_NAME} marker)")
    try:
        expected = json.loads(marker.read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{marker}: unreadable completion marker: {err}") from err
    if not state_path.is_file():
        raise ValueError(f"{folder}: {STATE_NAME} is missing")
    digest = sha256_file(state_path)
    if digest != expected:
        raise ValueError(f"{state_path}: sha256 does not match its {MARKER_NAME} marker (damaged after writing)")
    checkpoint = _load_file(state_path, map_location, digest)
    checkpoint.path = folder
    return checkpoint


def max_checkpoint_bytes() -> int:
    """The most tensor bytes a checkpoint may declare (``PCCD_MAX_CHECKPOINT_GB``, default 16 GB)."""
    return int(float(os.environ.get("PCCD_MAX_CHECKPOINT_GB", DEFAULT_MAX_CHECKPOINT_GB)) * 1e9)


def check_storage_sizes(path: str | Path, max_bytes: int | None = None) -> int:
    """Sum of the tensor storages ``path`` declares, read from its zip directory without loading anything.

    ``ValueError`` naming the file when a storage record is compressed (``torch.save`` never
    compresses, so a small file cannot declare more than it holds) or the total passes ``max_bytes``
    (default :func:`max_checkpoint_bytes`): ``weights_only`` stops code, this stops memory bombs.
    """
    limit = max_checkpoint_bytes() if max_bytes is None else max_bytes
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            records = [info for info in archive.infolist() if "/data/" in info.filename]
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"{path}: not a readable checkpoint (damaged or truncated zip: {err})") from err
    packed = [info.filename for info in records
              if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size]
    if packed:
        raise ValueError(f"{path}: refused, tensor record {packed[0]} is compressed ({len(packed)} such records); "
                         f"torch.save never writes those, and a compressed record can declare far more memory than "
                         f"the file holds")
    total = sum(info.file_size for info in records)
    if total > limit:
        raise ValueError(f"{path}: refused, its tensors need {total / 1e9:.2f} GB, above the limit of {limit / 1e9:.2f} GB "
                         f"(set PCCD_MAX_CHECKPOINT_GB to allow more)")
    return total


def _why_unreadable(err: BaseException) -> str:
    """Why torch.load refused a file, in our words: never PyTorch's advice to load it unsafely."""
    text = str(err)
    if isinstance(err, pickle.UnpicklingError) or "weights_only" in text:
        return "not a PyTorch file of tensors and plain settings: a text or other file, or one that would run code"
    return f"{type(err).__name__}: {text.splitlines()[0] if text else 'no detail'}"


def _load_file(path: Path, map_location: str | torch.device, sha256: str | None = None) -> Checkpoint:
    check_storage_sizes(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - file boundary: any failure of a damaged file becomes one named error
        raise ValueError(f"{path}: not a readable checkpoint, damaged (bit flip, truncation) or not one "
                         f"({_why_unreadable(err)}); pass a checkpoint written by `train` (a .pt file, a step-N/ "
                         "folder or a training run folder)") from err
    return Checkpoint.from_state(state, path, sha256 or sha256_file(path))


def export_checkpoint(source: str | Path, out: str | Path, extra: dict[str, Any] | None = None,
                      weights_dtype: str | None = None) -> Path:
    """Write the sampling part of ``source`` (any form :func:`load_checkpoint` reads) as one file, atomically.

    ``weights_dtype="float16"`` stores the floating-point EMA weights in half precision (half the file;
    loading computes in float32).
    """
    if weights_dtype not in (None, "float16"):
        raise ValueError(f"weights_dtype must be None or 'float16', got {weights_dtype!r}")
    checkpoint = load_checkpoint(source)
    ema = checkpoint.ema
    if weights_dtype == "float16":
        ema = {k: v.half() if v.is_floating_point() else v for k, v in ema.items()}
    slim = Checkpoint(step=checkpoint.step, config=checkpoint.config, codec=checkpoint.codec, ema=ema,
                      loss=checkpoint.loss, code_version=checkpoint.code_version,
                      extra={**checkpoint.extra, **(extra or {})})
    _save_state(slim.to_state(), Path(out))
    return Path(out)


def _save_state(state: dict[str, Any], target: Path) -> None:
    """``torch.save`` into memory, then one atomic write: a full disk names the folder and the size
    (``torch.save`` to a file only says ``basic_ios::clear: iostream error``)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(target, buffer.getvalue())


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
