"""Resumable parts: each part's result is ``EDIR/part-<name>.json``, reused only for the same checkpoint and settings.

A part file holds ``{"part", "checkpoint_sha256", "settings", "result", "wall_s"}``. On a re-run a
part is skipped when its file exists, parses, and names the same checkpoint hash and settings;
otherwise it is recomputed and the file replaced (atomically). The settings include the sha256 of
the source code that computes the part (:func:`code_digest`: every package module the evaluation can
import, found from the source itself, not from a list kept by hand), so a changed metric or sampler, or code
moved from one module to another, never passes off an old figure as new. Results never hold bare NaN:
:func:`pccd_hpc.io_utils.json_safe` turns non-finite floats into ``null`` and records why under ``not_computed``.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

from pccd_hpc.evaluate.machine import machine_info
from pccd_hpc.io_utils import atomic_write_json, json_safe

log = logging.getLogger(__name__)


def part_path(out_dir: Path, name: str) -> Path:
    """File of part ``name`` in the evaluation folder."""
    return out_dir / f"part-{name}.json"


def _canonical(settings: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(json_safe(settings), sort_keys=True))


def load_part(out_dir: Path, name: str, checkpoint_sha256: str, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The stored part record when it matches the checkpoint and settings, else None (with the reason logged)."""
    path = part_path(out_dir, name)
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        log.warning("part %s: %s unreadable (%s); recomputing", name, path, err)
        return None
    if record.get("checkpoint_sha256") != checkpoint_sha256:
        log.info("part %s: stored result is for another checkpoint; recomputing", name)
        return None
    if record.get("settings") != _canonical(settings):
        log.info("part %s: stored result has other settings; recomputing", name)
        return None
    return record


def run_part(out_dir: Path, name: str, checkpoint_sha256: str, settings: dict[str, Any],
             compute: Callable[[], tuple[dict[str, Any], int]],
             still_valid: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
    """Return part ``name``'s record, computing it with ``compute() -> (result, n_items)`` unless stored.

    ``still_valid(record)`` may veto a stored record (e.g. a file it refers to is gone or changed).
    The record gains ``wall_s``, ``cpu_s`` (CPU time of this process: on a shared machine the wall time
    depends on the load, the CPU time much less), ``n_items``, ``items_per_s`` (None when nothing was timed) and the
    ``machine`` it was timed on (a reused part keeps the machine of the run that computed it).
    """
    stored = load_part(out_dir, name, checkpoint_sha256, settings)
    if stored is not None and still_valid is not None and not still_valid(stored):
        log.info("part %s: the files the stored result refers to are missing or changed; recomputing", name)
        stored = None
    if stored is not None:
        log.info("part %s: reusing %s (same checkpoint and settings)", name, part_path(out_dir, name).name)
        stored["reused"] = True
        return stored
    log.info("part %s: computing", name)
    started, cpu_started = time.perf_counter(), time.process_time()
    result, n_items = compute()
    wall_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    not_computed: dict[str, str] = dict(result.pop("not_computed", {}) or {})
    record = {
        "part": name, "checkpoint_sha256": checkpoint_sha256, "settings": _canonical(settings),
        "result": json_safe(result, not_computed), "not_computed": not_computed,
        "wall_s": wall_s, "cpu_s": cpu_s, "n_items": n_items, "items_per_s": n_items / wall_s if wall_s > 0 else None,
        "machine": machine_info(),
    }
    atomic_write_json(part_path(out_dir, name), record)
    log.info("part %s: done in %.1f s (%d items)", name, wall_s, n_items)
    record["reused"] = False
    return record


def folder_digest(folder: Path, pattern: str = "shard-*.h5") -> str:
    """sha256 over the names and bytes of the files matching ``pattern`` (identifies a data set)."""
    digest = hashlib.sha256()
    files = sorted(folder.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no {pattern} files in {folder}")
    for path in files:
        digest.update(path.name.encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def imported_modules(root: str, package: str = "pccd_hpc") -> tuple[str, ...]:
    """Every module of ``package`` that importing ``root`` can run: its imports, theirs, and so on, including
    imports inside functions, ``importlib`` strings naming a module, and the packages' ``__init__`` files.

    Read from the source files (nothing is imported), so the answer is the same whatever this process
    happened to import before.
    """
    return tuple(sorted(_module_files(root, package)))


def _module_files(root: str, package: str) -> dict[str, Path]:
    """:func:`imported_modules` with the source file of each."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ValueError(f"no source for package {package}")
    top = Path(spec.origin).parent
    seen: dict[str, Path] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _source_file(top, package, name)
        if path is None:
            raise ValueError(f"no source for module {name}")
        seen[name] = path
        parts = name.split(".")
        todo += [".".join(parts[:k]) for k in range(1, len(parts))]  # the packages that hold it run first
        todo += [m for m in _imports_in(path, name, top, package) if m not in seen]
    return seen


def _source_file(top: Path, package: str, name: str) -> Path | None:
    """The ``.py`` file of module ``name`` of ``package`` (whose folder is ``top``), or None when there is none."""
    parts = name.split(".")
    if parts[0] != package or not all(part.isidentifier() for part in parts):
        return None
    base = top.joinpath(*parts[1:])
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _imports_in(path: Path, module: str, top: Path, package: str) -> set[str]:
    """Modules of ``package`` named by the import statements (anywhere) and module-name strings of one file."""
    here = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def add(name: str) -> None:
        if _source_file(top, package, name) is not None:
            found.add(name)

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            add(base)
            for alias in node.names:  # ``from pkg import module``
                add(f"{base}.{alias.name}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            add(node.value.split(":")[0])  # importlib.import_module("pccd_hpc...."), "module:Class" registries
    return found


def code_digest(root: str, package: str = "pccd_hpc") -> str:
    """sha256 of the source files of every module of ``package`` that ``root`` can import (:func:`imported_modules`;
    a package contributes its ``__init__.py`` only, its other modules where something imports them)."""
    digest = hashlib.sha256()
    for name, path in sorted(_module_files(root, package).items()):
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()
