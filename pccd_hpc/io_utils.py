"""Atomic file writes and small path helpers shared by every stage."""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], needed_bytes: int = 0) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success fsync it and rename it onto ``target``.

    The temporary file lives in the same folder so the final ``os.replace`` is atomic; on error
    it is removed and ``target`` is left untouched. A full disk raises :class:`DiskFullError`
    (``needed_bytes``, when the caller knows it, is the size it reports as needed).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        # mkstemp creates 0600; give the file the mode a plain open() would (0666 minus the umask), so
        # colleagues sharing a cluster project folder can read plans, shards and reports.
        os.fchmod(fd, 0o666 & ~current_umask())
    finally:
        os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException as err:
        written = tmp.stat().st_size if tmp.exists() else 0
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT) and not isinstance(err, DiskFullError):
            raise DiskFullError(target, needed_bytes or written) from err
        raise


@contextlib.contextmanager
def disk_full_named(target: str | os.PathLike[str], needed_bytes: int = 0) -> Iterator[None]:
    """Turn a full-disk ``OSError`` inside the block (e.g. appending to a log) into :class:`DiskFullError` naming ``target``."""
    try:
        yield
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT) and not isinstance(err, DiskFullError):
            raise DiskFullError(target, needed_bytes) from err
        raise


class DiskFullError(OSError):
    """No space left for a file: names the folder, the space the file needs and what is free."""

    def __init__(self, target: str | os.PathLike[str], needed_bytes: int = 0) -> None:
        folder = Path(target).parent
        free = shutil.disk_usage(folder).free if folder.exists() else 0
        need = f"about {_size(needed_bytes)}" if needed_bytes else "more space than is free"
        self.sentence = (f"no space left in {folder} (disk or quota full): {Path(target).name} needs {need}, "
                         f"{_size(free)} are free. Free some space (or use another --out) and run the same "
                         f"command again: finished work is kept")
        super().__init__(errno.ENOSPC, self.sentence)

    def __str__(self) -> str:
        return self.sentence


def _size(n_bytes: int) -> str:
    """``37 kB``, ``4.0 MB``, ``3.20 GB``."""
    if n_bytes < 1e6:
        return f"{n_bytes / 1e3:.0f} kB"
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes < 1e9 else f"{n_bytes / 1e9:.2f} GB"


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def current_umask() -> int:
    """The process umask (read by setting and restoring it; there is no read-only call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(target: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``target`` atomically (temp name, fsync, rename)."""
    atomic_write_bytes(target, text.encode())


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``target`` atomically; :class:`DiskFullError` naming the folder and size when it does not fit.

    Libraries that misbehave on a full disk (HDF5 crashes while closing, ``torch.save`` reports an
    iostream error) build their file in memory and hand the bytes here.
    """
    with atomic_path(target, needed_bytes=len(data)) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


def remove_stale_temps(folder: str | os.PathLike[str], prefix: str = "") -> int:
    """Remove temporary files (``.NAME.XXXX.tmp``) that a killed writer left in ``folder``; return the count.

    Call it only while holding the folder's lock (no live writer can own them then); ``prefix``
    limits it to the temporaries of files whose names start with it (one array task's own files).
    """
    removed = 0
    for tmp in Path(folder).glob(f".{prefix}*.tmp"):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            tmp.unlink()
            removed += 1
    return removed


def settings_sha256(settings: Mapping[str, Any]) -> str:
    """A hash of JSON-able settings (key order does not matter): what a resumed stage compares with what made its files."""
    text = json.dumps(json_safe(dict(settings)), sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()


def atomic_write_json(target: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``target`` atomically; NaN and infinities become ``null``.

    JSON has no NaN: a bare ``NaN`` breaks strict readers (jq, JavaScript), and a metric that was
    not computed is ``null`` ("n/a"), never a number.
    """
    text = json.dumps(json_safe(obj), indent=2, sort_keys=True, default=_json_default, allow_nan=False)
    atomic_write_text(target, text + "\n")


def json_safe(obj: Any, not_computed: dict[str, str] | None = None, where: str = "") -> Any:
    """``obj`` with every non-finite float (also numpy scalars) replaced by None, recursively; paths become strings.

    With ``not_computed``, each replaced value's dotted key path (``where`` is the prefix) is recorded
    there with the reason, once, so a report can say why a figure is missing instead of printing NaN.
    """
    if isinstance(obj, dict):
        return {key: json_safe(value, not_computed, f"{where}.{key}" if where else str(key)) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(value, not_computed, where) for value in obj]
    if isinstance(obj, Path):
        return str(obj)
    value = obj.item() if hasattr(obj, "dtype") and hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0 else obj
    if isinstance(value, float) and not math.isfinite(value):
        if not_computed is not None and where and where not in not_computed:
            not_computed[where] = f"not finite ({value}): no data to compute it from"
        return None
    return value


def atomic_write_csv(target: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]], fieldnames: Sequence[str]) -> None:
    """Write ``rows`` as CSV with a header of ``fieldnames`` (keys not among them are left out), atomically.

    Text cells a spreadsheet would run as a formula (starting with ``= + - @``, tab or carriage
    return, and not a plain number) get a leading ``'`` (OWASP's CSV-injection advice).
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fieldnames), extrasaction="ignore")
    writer.writeheader()
    writer.writerows({key: spreadsheet_safe(value) for key, value in row.items()} for row in rows)
    atomic_write_text(target, buffer.getvalue())


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """``value`` with a leading ``'`` when it is text a spreadsheet would read as a formula; other values unchanged."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_STARTS):
        return value
    with contextlib.suppress(ValueError):
        float(value)
        return value  # "-0.25" is a number, not a formula
    return "'" + value


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: str | os.PathLike[str], what: str = "JSON file") -> Any:
    """Parse a JSON file; ``FileNotFoundError`` / ``ValueError`` naming ``what`` and the path when it is missing or broken."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} {path} is not valid JSON: {err}") from err


def sha256_file(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> str:
    """Return the hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_bytes), b""):
            digest.update(block)
    return digest.hexdigest()


def checked_input_path(path: str | os.PathLike[str], what: str = "input") -> Path:
    """Return ``path`` resolved, raising ``FileNotFoundError`` naming ``what`` when it is missing."""
    resolved = Path(path).expanduser().resolve()
    if not resolved.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    return resolved


def checked_output_dir(path: str | os.PathLike[str], what: str = "output folder") -> Path:
    """Create (if needed) and return an output folder, refusing paths that are existing files."""
    resolved = Path(path).expanduser().resolve()
    if resolved.exists() and not resolved.is_dir():
        raise NotADirectoryError(f"{what} is an existing file, not a folder: {path}")
    resolved.mkdir(parents=True, exist_ok=True)
    return resolved
