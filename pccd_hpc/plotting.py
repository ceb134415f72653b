"""The one way figures are made and written: matplotlib with the file-only Agg backend, PNGs saved atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pccd_hpc.io_utils import atomic_path


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed on compute nodes); imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, target: str | Path, dpi: int = 120) -> None:
    """Write ``fig`` as a PNG to ``target`` atomically (parent folders created) and close it."""
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    pyplot().close(fig)
