"""The DFT backends by name (kept apart from ``base.py``, which the backends import, so naming one makes no import loop)."""

from __future__ import annotations

import importlib.util

from pccd_hpc.followup.base import DftBackend
from pccd_hpc.followup.config import FollowupConfig


def get_backend(config: FollowupConfig) -> DftBackend:
    """The backend named by ``config.backend``."""
    if config.backend == "gpaw":
        if importlib.util.find_spec("gpaw") is None:
            raise ValueError("--backend gpaw needs GPAW, the [dft] extra, which is not installed: run "
                             "PCCD_WITH_DFT=1 bash scripts/bootstrap.sh (its build libraries need root), or use --backend vasp")
        from pccd_hpc.followup.gpaw import GpawBackend

        return GpawBackend(config)
    from pccd_hpc.followup.vasp import VaspBackend

    return VaspBackend(config)
