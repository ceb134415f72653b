"""Progress of a long loop that a terminal and a SLURM log both show: done/total, rate, time left.

On a terminal it is a tqdm bar. Anywhere else (a SLURM log, a file, a pipe) it is a log line at
least every ``every_s`` seconds, even while one item takes longer (a heartbeat thread writes the
line then), and every ``every_n`` items (10 % by default; at most one such line a second), whichever
comes first, and one when the loop is done::

    sampling: 512/10000 samples (5.1 %), 3.41 samples/s, about 46 min left

Items counted with :meth:`Progress.skip` (already done by an earlier run) count as done but not
towards the rate, so a resumed run does not promise more than it delivers.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from typing import Any, TextIO

log = logging.getLogger("pccd_hpc.progress")

EVERY_S = 30.0
"""Longest silence of a log line (seconds)."""


def format_duration(seconds: float) -> str:
    """``42 s``, ``12 min``, ``3 h 05 min`` or ``2 d 04 h``: a time left read at a glance."""
    if not math.isfinite(seconds):
        return "unknown"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    hours, minutes = divmod(int(round(minutes)), 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours:02d} h"


class Progress:
    """Counts finished items of one loop and reports them (a context manager; :meth:`close` ends it)."""

    def __init__(self, what: str, total: int, unit: str = "item", every_s: float = EVERY_S,
                 every_n: int | None = None, stream: TextIO | None = None, logger: logging.Logger | None = None,
                 heartbeat: bool = True, min_gap_s: float = 1.0) -> None:
        """``heartbeat``: a thread writes a line when ``every_s`` passes without an item (for loops whose items
        can take longer than that; then end the loop with :meth:`close` or a ``with`` block). ``min_gap_s``: the
        every-``every_n`` lines of a fast loop come at most this often (the last line always comes)."""
        self.what, self.total, self.unit = what, int(total), unit
        self.every_s, self.min_gap_s = float(every_s), float(min_gap_s)
        self.every_n = every_n if every_n is not None else max(1, math.ceil(self.total / 10))  # every 10 %
        self.logger = logger or log
        self.done = 0
        self._rated = 0  # items done by this run (the rate's numerator)
        self._partial = 0.0  # items of the running batch already done in part (see within)
        self._lock = threading.Lock()
        self._started = self._last_line = time.monotonic()
        self._since_line = 0
        self._closed = threading.Event()
        stream = stream if stream is not None else sys.stderr
        self._bar: Any = None
        self._heartbeat: threading.Thread | None = None
        if _is_terminal(stream):
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=what, unit=unit, file=stream, dynamic_ncols=True)
        elif self.total > 0 and heartbeat:
            self._heartbeat = threading.Thread(target=self._beat, name=f"progress-{what}", daemon=True)
            self._heartbeat.start()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def skip(self, n: int) -> None:
        """Count ``n`` items an earlier run finished (done, but not part of this run's rate)."""
        with self._lock:
            self.done += n
        if self._bar is not None:
            self._bar.update(n)

    def within(self, n_items: float) -> None:
        """How much of the batch in progress is done, in items (a 256-sample batch half denoised: 128.0); it counts
        towards the rate and the time left until :meth:`update` counts the batch."""
        with self._lock:
            self._partial = max(0.0, float(n_items))

    def update(self, n: int = 1) -> None:
        """Count ``n`` more finished items; write a line when ``every_n`` items or ``every_s`` seconds have passed."""
        with self._lock:
            self.done += n
            self._rated += n
            self._partial = 0.0
            self._since_line += n
            quiet = time.monotonic() - self._last_line
            due = (self._since_line >= self.every_n and quiet >= self.min_gap_s) or quiet >= self.every_s
        if self._bar is not None:
            self._bar.update(n)
        elif due or self.done >= self.total:
            self._write()

    def line(self) -> str:
        """The progress line as it stands: done/total, share, rate and time left."""
        with self._lock:
            done, partial, elapsed = self.done, self._partial, time.monotonic() - self._started
            rated = self._rated + partial
        unit = self.unit if self.unit.endswith("s") else self.unit + "s"
        share = f" ({100 * done / self.total:.1f} %{', a batch under way' if partial else ''})" if self.total else ""
        if rated == 0:
            return f"{self.what}: {done}/{self.total} {unit}{share}, {format_duration(elapsed)} elapsed, first results pending"
        rate = rated / max(elapsed, 1e-9)
        pace = f"{rate:.3g} {unit}/s" if rate >= 1 else f"{60 * rate:.3g} {unit}/min"
        left = "done" if done >= self.total else f"about {format_duration((self.total - done - partial) / rate)} left"
        return f"{self.what}: {done}/{self.total} {unit}{share}, {pace}, {left}"

    def close(self) -> None:
        """Stop the heartbeat (and the bar); a final line is written when the loop ended early."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5)
        if self._bar is not None:
            self._bar.close()
        elif self._since_line and self.done < self.total:
            self._write()

    def _write(self) -> None:
        with self._lock:
            self._last_line, self._since_line = time.monotonic(), 0
        self.logger.info("%s", self.line())

    def _beat(self) -> None:
        """Heartbeat thread: a line whenever ``every_s`` seconds passed without one."""
        while True:
            with self._lock:
                wait_s = self._last_line + self.every_s - time.monotonic()
            if self._closed.wait(timeout=max(0.01, wait_s)):
                return
            with self._lock:
                due = time.monotonic() - self._last_line >= self.every_s and self.done < self.total
            if due:
                self._write()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or a stand-in without isatty
        return False
