"""Report figures: the paper's Fig. 3 E_hull histogram and distribution plots (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from pccd_hpc.plotting import pyplot, save_figure

PAPER_SPLIT_EV_PER_ATOM = 0.25
PAPER_STABLE_EV_PER_ATOM = 0.08


def e_hull_histogram(e_hull_ev_per_atom: Sequence[float], target: Path, bin_width: float = 0.05) -> None:
    """Fig. 3 of the paper: E_hull per atom histogram, red below 0.25 eV/atom and blue above."""
    plt = pyplot()
    values = np.asarray([e for e in e_hull_ev_per_atom if e is not None and np.isfinite(e)], dtype=float)
    fig, ax = plt.subplots(figsize=(6, 4))
    if values.size:
        lo = min(values.min(), 0.0)
        hi = max(values.max(), PAPER_SPLIT_EV_PER_ATOM) + bin_width
        bin_width = max(bin_width, (hi - lo) / 80)  # a few outliers must not make thousands of bins
        edges = np.arange(np.floor(lo / bin_width) * bin_width, hi + bin_width, bin_width)
        below, above = values[values < PAPER_SPLIT_EV_PER_ATOM], values[values >= PAPER_SPLIT_EV_PER_ATOM]
        ax.hist(below, bins=edges, color="tab:red", label=f"< {PAPER_SPLIT_EV_PER_ATOM} eV/atom ({below.size})")
        ax.hist(above, bins=edges, color="tab:blue", label=f">= {PAPER_SPLIT_EV_PER_ATOM} eV/atom ({above.size})")
    ax.axvline(PAPER_SPLIT_EV_PER_ATOM, color="k", lw=1)
    ax.axvline(PAPER_STABLE_EV_PER_ATOM, color="k", lw=1, ls="--", label=f"{PAPER_STABLE_EV_PER_ATOM} eV/atom")
    ax.set_xlabel("E_hull (eV/atom)")
    ax.set_ylabel("structures")
    ax.set_title(f"Energy above hull ({values.size} structures)")
    ax.legend(frameon=False)
    fig.tight_layout()
    save_figure(fig, target)


def distribution_plot(
    series: dict[str, Sequence[float]], target: Path, xlabel: str, discrete: bool = False
) -> None:
    """Overlaid normalised histograms of one quantity for several sets (e.g. generated vs reference)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    finite = {k: np.asarray([v for v in vals if v is not None and np.isfinite(v)], float) for k, vals in series.items()}
    all_values = np.concatenate([v for v in finite.values() if v.size] or [np.zeros(1)])
    if discrete:
        edges = np.arange(all_values.min() - 0.5, all_values.max() + 1.5, 1.0)
    else:
        edges = np.histogram_bin_edges(all_values, bins=30)
    for label, values in finite.items():
        if values.size:
            ax.hist(values, bins=edges, density=True, histtype="step", lw=1.5, label=f"{label} ({values.size})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.legend(frameon=False)
    fig.tight_layout()
    save_figure(fig, target)
