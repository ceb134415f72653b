"""Shared pytest fixtures: the local real SLURM cluster (tests/slurm/start-local-slurm.sh).

Tests that submit jobs take ``local_slurm`` (or ``local_slurm_2nodes``) and are marked
``@pytest.mark.slurm``. Both fixtures are the same cluster: two simulated nodes (node1, node2)
in the default partition ``debug`` (plus ``urgent``, which preempts ``debug``). The cluster is
left running after the session so re-runs start in well under a second; stop it with
tests/slurm/stop-local-slurm.sh.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

log = logging.getLogger(__name__)

START_SCRIPT = Path(__file__).parent / "slurm" / "start-local-slurm.sh"


@dataclass(frozen=True)
class LocalSlurm:
    """A running local cluster: its state folder, the variables clients need, its nodes."""

    state_dir: Path
    """Folder with configs, logs, pid files and the accounting database."""
    env: dict[str, str]
    """Variables from ``env.sh`` (SLURM_CONF, PCCD_SLURM_DIR, PCCD_SLURM_NODES)."""
    node_names: tuple[str, ...]
    """Simulated node names, in order (node1 is the first/master node)."""
    partition: str = "debug"
    """Default partition, containing every node."""


def _start_local_slurm(nodes: int) -> LocalSlurm:
    """Run the start script (idempotent) and export its variables into os.environ."""
    cmd = [str(START_SCRIPT), "--nodes", str(nodes)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-6000:]}", pytrace=False)
    env: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("export ") and "=" in line:
            key, value = line[len("export ") :].split("=", 1)
            env[key] = value
    os.environ.update(env)
    # Jobs inherit PATH (sbatch --export=ALL): make `python` in a job this interpreter's venv.
    bin_dir = str(Path(sys.executable).parent)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != bin_dir:
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    log.info("local SLURM ready: %s", env)
    return LocalSlurm(
        state_dir=Path(env["PCCD_SLURM_DIR"]),
        env=env,
        node_names=tuple(f"node{k}" for k in range(1, int(env["PCCD_SLURM_NODES"]) + 1)),
    )


@pytest.fixture
def local_slurm() -> Iterator[LocalSlurm]:
    """The local SLURM cluster, started on first use and left running.

    Checked before every test that submits jobs (the start script is idempotent: well under a second when
    all is well): Slurm 22.05's slurmd has been seen to die of heap corruption ("malloc(): unaligned
    tcache chunk detected") on two simultaneous task launches, and a dead slurmd must fail only the
    test it died in, not every later one that would wait on a node marked down.
    """
    yield _start_local_slurm(nodes=2)


@pytest.fixture
def local_slurm_2nodes(local_slurm: LocalSlurm) -> LocalSlurm:
    """The local cluster with (at least) two nodes, node1 and node2, for ``-N 2`` jobs."""
    assert len(local_slurm.node_names) >= 2, local_slurm
    return local_slurm


SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def sample_csv() -> Path:
    """The structure sample bundled with the package."""
    from pccd_hpc.data.sample import sample_csv_path

    return sample_csv_path()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout; tests using it skip on machines without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs (a full disk on demand); skipped with the reason where mounting is not allowed (not root)."""
    import shutil

    folder = tmp_path / "tmpfs"
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a full-disk test needs root to mount a 2 MB tmpfs")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
