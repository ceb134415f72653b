"""What a training run is: the settings that made its checkpoints, recorded once in ``RUN/settings.json``.

A resumed run must continue exactly what it started, so a checkpoint is adopted only when its settings
hash is the run's (a ``step-N/`` copied in from another run is refused by name), and a command that asks
for other training settings than the checkpoint was trained with (``lr``, batch size, ...) is refused
instead of silently keeping the old ones. The architecture still comes from the checkpoint, so a plain
rerun of the command resumes; the settings below may change on resume because they do not change what is
computed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pccd_hpc.config import RunConfig, without_retired_fields
from pccd_hpc.io_utils import atomic_write_json, read_json, settings_sha256

SETTINGS_NAME = "settings.json"

RESUMABLE_TRAIN_FIELDS = frozenset({
    "max_steps", "max_minutes", "log_every", "checkpoint_every", "keep_checkpoints", "num_workers",
    "threads_per_process", "compile", "init_from", "max_nonfinite_steps",
})
"""``train`` settings a resumed run may change (how long, how often it logs and saves, how it is run)."""


def run_settings(config: RunConfig) -> dict[str, Any]:
    """The settings that decide what a run computes: everything but the resumable ``train`` fields and the preset name."""
    data = config.to_dict()
    data.pop("preset", None)
    data["train"] = {k: v for k, v in data["train"].items() if k not in RESUMABLE_TRAIN_FIELDS}
    return data


def _differences(made: dict[str, Any], asked: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(made) | set(asked)):
        a, b = made.get(key), asked.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} {a!r} (this command: {b!r})")
    return out


def _recorded_settings_match(saved: dict[str, Any], settings: dict[str, Any]) -> bool:
    """Whether ``settings.json`` content ``saved`` records ``settings``; a record written before fields were retired
    (:data:`pccd_hpc.config.RETIRED_FIELDS`) matches when it does without them (and is intact)."""
    if saved.get("settings_sha256") == settings_sha256(settings):
        return True
    recorded = saved.get("settings")
    return (isinstance(recorded, dict) and settings_sha256(recorded) == saved.get("settings_sha256")
            and settings_sha256(without_retired_fields(recorded)[0]) == settings_sha256(settings))


def check_resume(run_dir: Path, checkpoint_path: Path | None, made: RunConfig, requested: RunConfig) -> None:
    """``ValueError`` naming the checkpoint when it belongs to another run or the command asks for other training settings.

    ``made`` is the checkpoint's config, ``requested`` the command's with the checkpoint's architecture.
    """
    recorded = run_dir / SETTINGS_NAME
    name = checkpoint_path or run_dir
    if recorded.exists():
        saved = read_json(recorded, "run settings")
        if not _recorded_settings_match(saved, run_settings(made)):
            diff = _differences(saved.get("settings", {}), run_settings(made))
            raise ValueError(f"{name} was not made by this run ({recorded} records other settings: "
                             f"{'; '.join(d.replace('(this command:', '(that checkpoint:') for d in diff[:3]) or 'hash differs'}); "
                             f"move it out of {run_dir / 'checkpoints'} or use a new --out")
    diff = _differences(run_settings(made)["train"], run_settings(requested)["train"], "train.")
    if diff:
        raise ValueError(f"{name} was trained with {'; '.join(diff[:4])}: a resumed run keeps the settings it started "
                         f"with. Rerun with them (--config {run_dir / 'config.toml'}), use a new --out, or start a "
                         f"new run from this one's weights with --init-from {run_dir}")


def record_run_settings(run_dir: Path, config: RunConfig) -> None:
    """Write ``settings.json`` (its hash and the settings) unless the run has one already."""
    path = run_dir / SETTINGS_NAME
    if not path.exists():
        settings = run_settings(config)
        atomic_write_json(path, {"settings_sha256": settings_sha256(settings), "settings": settings})
