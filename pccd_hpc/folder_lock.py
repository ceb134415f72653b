"""One writer per output folder: an ``fcntl`` lock on ``FOLDER/.pccd-lock`` (POSIX ``lockf``, which
NFS and Lustre honour through their lock managers, unlike ``flock`` on some mounts).

A whole-folder writer (generate, validate, train, encode) takes the lock exclusively; the tasks
of an array (generate or validate tasks running side by side on one folder) take it shared plus
an exclusive lock of their own (``.pccd-lock-task-K``), so a second command on a folder that is
being written is refused at once with a message naming the holder, never left waiting, and two
copies of one task never run together. The lock goes with the process: kill -9 releases it.

POSIX locks belong to the process, and closing any descriptor of the file drops them, so each
process opens a lock file once and nested requests for a lock it holds are no-ops.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

LOCK_NAME = ".pccd-lock"

_HELD: dict[Path, list[int]] = {}
"""Lock files this process holds: path -> [descriptor, nesting depth]."""


class FolderBusyError(RuntimeError):
    """Another process is writing the folder (the message names it and what to do)."""


def _holder_text(path: Path) -> str:
    """Who holds ``path``: the running array tasks when they are the holders, else what the holder wrote."""
    if path.name == LOCK_NAME:
        busy = [_read(task) for task in sorted(path.parent.glob(f"{LOCK_NAME}-task-*")) if _is_locked(task)]
        if busy:
            more = f" and {len(busy) - 2} more" if len(busy) > 2 else ""
            return f"{len(busy)} array task(s) hold it: " + "; ".join(busy[:2]) + more
    return _read(path) or "another process (it wrote no details)"


def _read(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text().strip()
    return ""


def _is_locked(path: Path) -> bool:
    """Whether another process holds a lock on ``path`` (probed on a descriptor of our own; we hold none there)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def _describe_self(what: str) -> str:
    command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:300]
    return (f"{what} by pid {os.getpid()} on {socket.gethostname()} since "
            f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')} (command: {command})")


@contextlib.contextmanager
def hold_lock(lock_path: str | os.PathLike[str], what: str, shared: bool = False) -> Iterator[Path]:
    """Hold ``lock_path`` (exclusive, or ``shared``) for the block; ``FolderBusyError`` naming the holder when taken.

    ``what`` says what the lock protects in the refusal message (e.g. ``generate --out X``).
    """
    path = Path(lock_path).resolve()
    if path in _HELD:  # this process holds it already (e.g. a local task run by its driver)
        _HELD[path][1] += 1
        try:
            yield path
        finally:
            _HELD[path][1] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.lockf(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            raise FolderBusyError(
                f"{path.parent} is in use: {_holder_text(path)}. Wait for it to finish, or use another --out; "
                f"if that process is gone, its lock went with it and a rerun proceeds") from None
        if not shared:  # shared holders (array tasks) describe themselves in their own task locks
            os.ftruncate(fd, 0)
            os.pwrite(fd, (_describe_self(what) + "\n").encode(), 0)
        _HELD[path] = [fd, 1]
        try:
            yield path
        finally:
            del _HELD[path]
    finally:
        os.close(fd)  # closing releases the lock


def folder_lock(folder: str | os.PathLike[str], what: str, shared: bool = False) -> contextlib.AbstractContextManager[Path]:
    """The lock of an output folder (``FOLDER/.pccd-lock``), exclusive unless ``shared`` (array tasks)."""
    return hold_lock(Path(folder) / LOCK_NAME, what, shared)


@contextlib.contextmanager
def task_lock(folder: str | os.PathLike[str], task: str, what: str) -> Iterator[None]:
    """Hold the folder lock shared and ``.pccd-lock-task-<task>`` exclusively: one array task among its siblings."""
    with folder_lock(folder, what, shared=True), hold_lock(Path(folder) / f"{LOCK_NAME}-task-{task}", what):
        yield
