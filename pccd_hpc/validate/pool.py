"""A process pool that survives its workers: one pipe per worker, so the parent always knows which
structure a worker held when it died (OOM kill, signal, segfault) and records that one as failed.

``multiprocessing.Pool`` cannot do this: when a worker is killed its task is lost and
``imap_unordered`` waits for it forever (seen: 17 minutes of no progress with ``--workers 2``).
Here a dead worker's job is reported through ``on_death`` and a fresh worker takes the next job.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterator, Sequence

log = logging.getLogger(__name__)


@dataclass
class _Worker:
    process: Any
    conn: Connection
    job: Any = None
    busy: bool = False
    n_done: int = 0


def death_reason(exitcode: int | None) -> str:
    """Human-readable reason for a worker's exit code (negative: killed by that signal)."""
    if exitcode is None:
        return "worker process vanished"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (SIGKILL: often the kernel's out-of-memory killer)" if -exitcode == signal.SIGKILL else ""
        return f"worker process killed by {name}{hint}"
    return f"worker process exited with code {exitcode}"


def _worker_main(conn: Connection, compute: Callable[[Any], Any], initializer: Callable[..., None], initargs: tuple) -> None:
    """Worker loop: initialise once, then compute each job received until ``None`` arrives."""
    init_error = None
    try:
        initializer(*initargs)
    except Exception as err:  # noqa: BLE001 - reported with every job this worker gets
        init_error = f"worker initialisation failed: {type(err).__name__}: {err}"
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        if init_error:
            conn.send(("error", init_error))
            continue
        try:
            conn.send(("ok", compute(job)))
        except Exception as err:  # noqa: BLE001 - reported as this job's failure; the worker goes on
            conn.send(("error", f"{type(err).__name__}: {err}"))


def run_pool(
    jobs: Sequence[Any], workers: int, compute: Callable[[Any], Any], initializer: Callable[..., None], initargs: tuple,
    on_death: Callable[[Any, str], Any], on_error: Callable[[Any, str], Any] | None = None,
    pids: list[int] | None = None, max_jobs_per_worker: int = 200,
) -> Iterator[Any]:
    """Yield ``compute(job)`` for every job (completion order) from ``workers`` spawned processes.

    A job whose worker dies yields ``on_death(job, reason)`` instead, and a new worker is started
    for the jobs left, so the pool never hangs on a lost task. ``pids``, when given, is kept
    filled with the live workers' process ids (for monitoring and tests). A worker is replaced
    after ``max_jobs_per_worker`` jobs, which bounds slow memory growth (as ``maxtasksperchild``).
    """
    # spawn: each worker starts a clean interpreter (torch and fork do not mix) and loads the model once.
    context = multiprocessing.get_context("spawn")
    queue = deque(jobs)
    pool: list[_Worker] = []
    on_error = on_error or on_death

    def start() -> _Worker:
        parent_conn, child_conn = context.Pipe()
        process = context.Process(target=_worker_main, args=(child_conn, compute, initializer, initargs), daemon=True)
        process.start()
        child_conn.close()
        worker = _Worker(process, parent_conn)
        pool.append(worker)
        return worker

    def assign_none(worker: _Worker) -> None:
        worker.job, worker.busy = None, False
        try:
            worker.conn.send(None)
        except (BrokenPipeError, OSError):
            pass

    def assign(worker: _Worker) -> None:
        if queue:
            worker.job, worker.busy = queue.popleft(), True
            worker.conn.send(worker.job)
        else:
            assign_none(worker)

    def refresh_pids() -> None:
        if pids is not None:
            pids[:] = [w.process.pid for w in pool if w.process.is_alive()]

    try:
        for _ in range(min(workers, len(queue))):
            assign(start())
        refresh_pids()
        while any(w.busy for w in pool):
            busy = [w for w in pool if w.busy]
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
            for worker in busy:
                if worker.conn not in ready and worker.process.sentinel not in ready:
                    continue
                message = None
                try:
                    if worker.conn.poll():
                        message = worker.conn.recv()
                except (EOFError, OSError):
                    message = None
                if message is not None:
                    status, payload = message
                    worker.n_done += 1
                    yield payload if status == "ok" else on_error(worker.job, payload)
                    if worker.n_done >= max_jobs_per_worker and queue:
                        assign_none(worker)
                        worker.process.join(timeout=30)
                        if worker.process.is_alive():
                            worker.process.kill()
                        worker.conn.close()
                        pool.remove(worker)
                        assign(start())
                        refresh_pids()
                    else:
                        assign(worker)
                    continue
                if worker.process.is_alive() and worker.process.sentinel not in ready:
                    continue
                worker.process.join(timeout=5)
                reason = death_reason(worker.process.exitcode)
                log.warning("validate pool: %s while computing %s; continuing with a new worker", reason, _job_name(worker.job))
                job, worker.busy = worker.job, False
                worker.conn.close()
                pool.remove(worker)
                yield on_death(job, reason)
                if queue:
                    assign(start())
                refresh_pids()
    finally:
        for worker in pool:
            if worker.process.is_alive():
                try:
                    worker.conn.send(None)
                except (BrokenPipeError, OSError):
                    pass
        for worker in pool:
            worker.process.join(timeout=10)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=5)
            worker.conn.close()
        if pids is not None:
            pids.clear()


def _job_name(job: Any) -> str:
    return str(getattr(job, "record_id", job))
