"""Where a figure was measured: CPU count, usable CPUs, torch threads, platform and versions."""

from __future__ import annotations

import os
import platform
from typing import Any

import torch

from pccd_hpc import __version__


def machine_info() -> dict[str, Any]:
    """The machine and software of this process (recorded with every timed part)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    return {"cpu_count": os.cpu_count(), "cpus_usable": usable, "torch_threads": torch.get_num_threads(),
            "machine": platform.machine(), "processor": platform.processor(), "system": platform.system(),
            "python": platform.python_version(), "torch": torch.__version__, "pccd_hpc": __version__,
            "device": "cpu"}
