"""Choose the DFT backend a followup config names (kept apart from base.py so no backend module imports back into it)."""

from __future__ import annotations

from pccd_hpc.followup.base import DftBackend
from pccd_hpc.followup.config import FollowupConfig


def get_backend(config: FollowupConfig) -> DftBackend:
    """The backend named by ``config.backend`` (``gpaw`` or ``vasp``), imported only when asked for."""
    if config.backend == "gpaw":
        from pccd_hpc.followup.gpaw import GpawBackend

        return GpawBackend(config)
    from pccd_hpc.followup.vasp import VaspBackend

    return VaspBackend(config)
