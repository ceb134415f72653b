"""The paper's Fig. 4 for one candidate: structure, electronic bands + DOS, phonon bands + DOS (Agg, no GUI)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.core import Structure

from pccd_hpc.materials.kpath import segments
from pccd_hpc.plotting import pyplot, save_figure


def fig4(structure: Structure, bands: dict[str, Any] | None, phonons: dict[str, Any] | None, target: Path,
         title: str = "") -> Path:
    """Write the figure to ``target`` (PNG, atomically); a missing part is drawn as a labelled empty panel."""
    from pccd_hpc.pictures import draw_structure

    fig = pyplot().figure(figsize=(12, 3.6))
    outer = fig.add_gridspec(1, 3, width_ratios=[1.1, 1.65, 1.65], wspace=0.22)
    draw_structure(fig.add_subplot(outer[0]), structure)
    for slot, data, plot, missing in ((outer[1], bands, _electronic, "electronic bands: not computed"),
                                      (outer[2], phonons, _phonon, "phonons: not computed")):
        inner = slot.subgridspec(1, 2, width_ratios=[1.3, 0.35], wspace=0.05)
        ax = fig.add_subplot(inner[0])
        if data is not None:
            plot(ax, fig.add_subplot(inner[1], sharey=ax), data)
        else:
            _missing(ax, missing)
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.12, top=0.86)
    save_figure(fig, target, dpi=120)
    return target


def _ticks(ax, ticks: list, x_max: float) -> None:
    positions = [t[0] for t in ticks]
    labels = ["Γ" if t[1] in ("\\Gamma", "GAMMA", "G") else t[1].replace("\\Gamma", "Γ") for t in ticks]
    ax.set_xticks(positions, labels, fontsize=8)
    for x in positions:
        ax.axvline(x, color="0.8", lw=0.5, zorder=0)
    ax.set_xlim(0, x_max)


def _electronic(ax, ax_dos, bands: dict[str, Any]) -> None:
    dist = np.asarray(bands["distances"])
    ref = float(bands["reference_energy_ev"])
    eigs = np.asarray(bands["path_eigenvalues_ev"]) - ref  # (n_spin, n_k, n_bands)
    for s, style in zip(range(eigs.shape[0]), ("-", "--")):
        for part in segments(dist, bands["breaks"]):
            ax.plot(dist[part], eigs[s, part, :], style, color="tab:blue", lw=1)
    _ticks(ax, bands["ticks"], float(dist[-1]))
    ax.axhline(0, color="k", lw=0.5, ls=":")
    window = (-6.0, 6.0)
    ax.set_ylim(*window)
    ax.set_ylabel("E − E_ref (eV)" if not bands.get("is_metal") else "E − E_F (eV)")
    gap = "metal" if bands.get("is_metal") else (
        f"gap {bands['band_gap_ev']:.2f} eV ({'direct' if bands['gap_is_direct'] else 'indirect'})")
    ax.set_title(f"electronic bands: {gap}", fontsize=9)
    energies = np.asarray(bands["dos_energies_ev"]) - ref
    ax_dos.fill_betweenx(energies, 0, bands["dos"], color="tab:blue", alpha=0.4, lw=0)
    ax_dos.set_xlim(left=0)
    ax_dos.set_xticks([])
    ax_dos.set_xlabel("DOS", fontsize=8)
    ax_dos.tick_params(labelleft=False)


def _phonon(ax, ax_dos, phonons: dict[str, Any]) -> None:
    dist = np.asarray(phonons["distances"])
    freqs = np.asarray(phonons["path_frequencies_thz"])
    for part in segments(dist, phonons["breaks"]):
        ax.plot(dist[part], freqs[part], color="tab:red", lw=1)
    _ticks(ax, phonons["ticks"], float(dist[-1]))
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel("frequency (THz)")
    flag = "imaginary modes" if phonons["imaginary_modes"] else "no imaginary modes"
    ax.set_title(f"phonons: {flag} (min {phonons['lowest_frequency_thz']:.2f} THz)", fontsize=9)
    ax_dos.fill_betweenx(phonons["dos_frequencies_thz"], 0, phonons["dos"], color="tab:red", alpha=0.4, lw=0)
    ax_dos.set_xlim(left=0)
    ax_dos.set_xticks([])
    ax_dos.set_xlabel("DOS", fontsize=8)
    ax_dos.tick_params(labelleft=False)


def _missing(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, color="0.4", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])
