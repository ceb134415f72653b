"""Fig. 1-style figures of a reconstruction run (parity plots, atom-count heatmap, error box plots)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pccd_hpc.plotting import pyplot, save_figure


def plot_reconstruction(rows: list[dict], path: str | Path, title: str = "") -> None:
    """Write a 2x2 PNG: lattice-length parity, coordinate parity, atom-count heatmap, relative-error boxes."""
    plt = pyplot()
    valid = [r for r in rows if r["valid"]]
    fig, ax = plt.subplots(2, 2, figsize=(10, 9))
    for axis, name in enumerate("abc"):
        ax[0, 0].scatter([r["abc_true"][axis] for r in valid], [r["abc_pred"][axis] for r in valid], s=6, alpha=0.5, label=name)
    lim = max([max(r["abc_true"] + r["abc_pred"]) for r in valid], default=10)
    ax[0, 0].plot([0, lim], [0, lim], "k--", lw=0.8)
    ax[0, 0].set(xlabel="true length (Å)", ylabel="reconstructed length (Å)", title="lattice lengths")
    ax[0, 0].legend()
    for axis, name in enumerate("xyz"):
        true = [c[axis] for r in valid if "coord_errors" in r for c in r["coords_true"]]
        err = [e[axis] for r in valid if "coord_errors" in r for e in r["coord_errors"]]
        ax[0, 1].scatter(true, np.mod(np.array(true) + np.array(err), 1.0) if true else [], s=4, alpha=0.4, label=name)
    ax[0, 1].plot([0, 1], [0, 1], "k--", lw=0.8)
    ax[0, 1].set(xlabel="true fractional coordinate", ylabel="reconstructed", title="atomic positions (matched atoms)")
    ax[0, 1].legend()
    heat = np.zeros((17, 17))
    for r in rows:
        heat[min(r.get("n_pred", 0), 16), min(r["n_true"], 16)] += 1
    ax[1, 0].imshow(heat, origin="lower", cmap="viridis")
    ax[1, 0].set(xlabel="atoms in original", ylabel="atoms reconstructed (0 = invalid)", title="atom counts")
    rel = [[100 * (r["abc_pred"][k] - r["abc_true"][k]) / r["abc_true"][k] for r in valid] for k in range(3)]
    ax[1, 1].boxplot(rel, showfliers=False)
    ax[1, 1].set_xticks([1, 2, 3], ["a", "b", "c"])
    ax[1, 1].set(ylabel="relative error (%)", title="lattice length errors")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
