"""The DFT backends by name (kept apart from ``base.py``, which the backends import, so naming one makes no import loop)."""

from __future__ import annotations

from pccd_hpc.followup.base import DftBackend
from pccd_hpc.followup.config import FollowupConfig


def get_backend(config: FollowupConfig) -> DftBackend:
    """The backend named by ``config.backend``."""
    if config.backend == "gpaw":
        from pccd_hpc.followup.gpaw import GpawBackend

        return GpawBackend(config)
    from pccd_hpc.followup.vasp import VaspBackend

    return VaspBackend(config)
