"""MPI when launched under ``mpiexec``/``srun``, a one-rank stand-in otherwise.

mpi4py is imported only when the environment says we were started by an MPI launcher, so plain
single-process runs never initialise MPI (which some clusters forbid on login nodes).
"""

from __future__ import annotations

import os
from typing import Any, Protocol

_LAUNCHER_VARIABLES = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS", "PMI_FD")


class Communicator(Protocol):
    """The subset of ``mpi4py.MPI.Comm`` the package uses."""

    def Get_rank(self) -> int: ...
    def Get_size(self) -> int: ...
    def barrier(self) -> None: ...
    def bcast(self, obj: Any, root: int = 0) -> Any: ...
    def gather(self, obj: Any, root: int = 0) -> list[Any] | None: ...


class SingleProcessComm:
    """A communicator of one rank with mpi4py's method names."""

    def Get_rank(self) -> int:
        """Always 0."""
        return 0

    def Get_size(self) -> int:
        """Always 1."""
        return 1

    def barrier(self) -> None:
        """Nothing to wait for."""

    def bcast(self, obj: Any, root: int = 0) -> Any:
        """Return ``obj``."""
        return obj

    def gather(self, obj: Any, root: int = 0) -> list[Any]:
        """Return ``[obj]``."""
        return [obj]


def launched_by_mpi() -> bool:
    """True when an MPI launcher (mpiexec, srun --mpi) started this process."""
    return any(name in os.environ for name in _LAUNCHER_VARIABLES)


def world_communicator(use_mpi: bool | None = None) -> Communicator:
    """Return ``MPI.COMM_WORLD`` under an MPI launcher (or when ``use_mpi``), else a single rank."""
    if use_mpi is None:
        use_mpi = launched_by_mpi()
    if not use_mpi:
        return SingleProcessComm()
    from mpi4py import MPI

    return MPI.COMM_WORLD
