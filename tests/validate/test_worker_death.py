"""A worker killed mid-structure (OOM killer, signal) costs that structure only: it is recorded as
failed with the signal, a new worker takes the rest, and the pool never hangs."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from pccd_hpc.materials.relax import RelaxConfig
from pccd_hpc.validate.config import ValidateConfig
from pccd_hpc.validate.record import Job
from pccd_hpc.validate.runner import iter_results
from _structures import diamond_si, rocksalt_mgo, zincblende_mgo


@pytest.mark.slow
def test_killed_worker_is_recorded_and_the_pool_goes_on(tmp_path) -> None:
    pytest.importorskip("chgnet")
    jobs = [Job("mgo-rs", "candidate", rocksalt_mgo()), Job("mgo-zb", "candidate", zincblende_mgo()),
            Job("si", "candidate", diamond_si()), Job("mgo-big", "candidate", rocksalt_mgo(4.4))]
    config = ValidateConfig(workers=2, relax=RelaxConfig(max_steps=20))
    pids: list[int] = []
    killed: list[int] = []

    def _kill_first_worker() -> None:
        deadline = time.time() + 120
        while len(pids) < 2 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # both workers hold a job from the start: the first one dies holding it
        if pids:
            killed.append(pids[0])
            os.kill(pids[0], signal.SIGKILL)

    def _hang(signum, frame):
        raise TimeoutError("the pool hung after a worker died")

    previous = signal.signal(signal.SIGALRM, _hang)
    signal.alarm(300)
    try:
        killer = threading.Thread(target=_kill_first_worker, daemon=True)
        killer.start()
        records = list(iter_results(jobs, config, tmp_path, pids=pids))
        killer.join(timeout=5)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert killed, "no worker was started"
    assert sorted(r.id for r in records) == sorted(j.record_id for j in jobs)
    dead = [r for r in records if r.error_kind == "worker_died"]
    assert len(dead) == 1
    assert "SIGKILL" in dead[0].error and dead[0].id in dead[0].error
    finished = [r for r in records if r.error_kind != "worker_died"]
    assert len(finished) == 3 and all(r.energy_ev_per_atom is not None for r in finished)
    assert not pids  # every worker was shut down


def test_death_reason_names_the_signal() -> None:
    from pccd_hpc.validate.pool import death_reason

    assert "SIGKILL" in death_reason(-9) and "out-of-memory" in death_reason(-9)
    assert "SIGSEGV" in death_reason(-11)
    assert "code 3" in death_reason(3)


def _dead(job, reason: str) -> tuple[str, object, str]:
    return ("dead", job, reason)


def test_pool_survives_workers_killed_by_real_signals() -> None:
    """Workers that raise SIGKILL/SIGTERM on themselves or exit: each job is reported, nothing hangs."""
    import math
    import signal as sig

    from pccd_hpc.validate.pool import run_pool

    results = list(run_pool([sig.SIGKILL, sig.SIGTERM, sig.SIGKILL], 2, sig.raise_signal, os.getpid, (), on_death=_dead))
    assert sorted(r[2] for r in results) == sorted(["worker process killed by SIGKILL (SIGKILL: often the kernel's out-of-memory killer)"] * 2
                                                    + ["worker process killed by SIGTERM"])
    assert sorted(r[1] for r in results) == sorted([sig.SIGKILL, sig.SIGTERM, sig.SIGKILL])
    pids: list[int] = []
    roots = list(run_pool([1.0, 4.0, 9.0, 16.0, 25.0], 2, math.sqrt, os.getpid, (), on_death=_dead, pids=pids, max_jobs_per_worker=1))
    assert sorted(roots) == [1.0, 2.0, 3.0, 4.0, 5.0] and not pids
    errors = list(run_pool([-1.0], 1, math.sqrt, os.getpid, (), on_death=_dead, on_error=lambda job, msg: ("error", job, msg)))
    assert errors == [("error", -1.0, "ValueError: math domain error")]
