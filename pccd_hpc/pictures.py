"""Pictures of crystal structures with matplotlib (no GUI): unit cell, atoms and bonds, one or a grid.

Atoms are drawn as shaded discs in Jmol colours, sized by covalent radius, depth-sorted after a
fixed viewing rotation; bonds join atoms closer than ``bond_factor`` x the sum of covalent radii,
including bonds to periodic images just outside the cell (drawn as half bonds to the edge atoms).
The element legend sits in a panel beside the atoms, never over them; every picture is at least
400 px wide per structure. Used by ``generate`` (a grid of the run), the report and followup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from pymatgen.core import Structure

from pccd_hpc.plotting import pyplot, save_figure

PICTURE_DPI = 100
"""Pixels per inch of every structure picture (sizes are given in pixels)."""
BOND_FACTOR = 1.1
"""Bond when d < BOND_FACTOR x (r_i + r_j) (covalent radii, Cordero 2008); 1.2 joined Mg-Mg in MgO2."""


def _rotation(elev_deg: float = 18.0, azim_deg: float = -62.0) -> np.ndarray:
    """A view rotation (rows: screen x, screen y, depth towards the viewer)."""
    a, e = np.radians(azim_deg), np.radians(elev_deg)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(e), -np.sin(e)], [0, np.sin(e), np.cos(e)]])
    return rx @ np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]]) @ rz


def _cell_sites(structure: Structure, edge_tol: float = 1e-3) -> tuple[np.ndarray, list[str]]:
    """Cartesian positions of the atoms in the cell plus their images on the cell faces/edges/corners."""
    coords, symbols = [], []
    for site in structure:
        frac = np.mod(site.frac_coords, 1.0)
        frac[np.abs(frac - 1.0) < edge_tol] = 0.0
        shifts = [[0, 1] if f < edge_tol else [0] for f in frac]
        for dx in shifts[0]:
            for dy in shifts[1]:
                for dz in shifts[2]:
                    coords.append(structure.lattice.get_cartesian_coords(frac + [dx, dy, dz]))
                    symbols.append(site.specie.symbol)
    return np.array(coords), symbols


def draw_structure(ax, structure: Structure, bond_factor: float = BOND_FACTOR, title: str | None = None,
                   legend_ax=None, title_size: float = 9, legend_size: float = 8) -> None:
    """Draw ``structure``'s unit cell with atoms and bonds onto a matplotlib axis, the element legend beside it
    (in ``legend_ax`` when given, else just right of ``ax``), never over the atoms."""
    from ase.data import atomic_numbers, colors

    from pccd_hpc.data.geometry import covalent_radius_ang

    rot = _rotation()
    coords, symbols = _cell_sites(structure)
    radii = np.array([covalent_radius_ang(s) for s in symbols])
    center = structure.lattice.get_cartesian_coords([0.5, 0.5, 0.5])
    proj = (coords - center) @ rot.T
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float)
    cell_pts = (structure.lattice.get_cartesian_coords(corners) - center) @ rot.T
    for i in range(8):
        for j in range(i + 1, 8):
            if np.abs(corners[i] - corners[j]).sum() == 1:
                ax.plot(cell_pts[[i, j], 0], cell_pts[[i, j], 1], color="0.35", lw=0.8, zorder=0)
    # Bonds (neighbours across the periodic boundary are included through the neighbour list).
    cutoff = 2 * bond_factor * float(radii.max()) if len(radii) else 0.0
    for a in range(len(coords)):
        for b in range(a + 1, len(coords)):
            d = float(np.linalg.norm(coords[a] - coords[b]))
            if 0.1 < d < bond_factor * (radii[a] + radii[b]) and d <= cutoff:
                mid = 0.5 * (proj[a] + proj[b])
                z = min(proj[a, 2], proj[b, 2])
                for end, sym in ((a, symbols[a]), (b, symbols[b])):
                    ax.plot([proj[end, 0], mid[0]], [proj[end, 1], mid[1]], lw=2.2, solid_capstyle="round",
                            color=colors.jmol_colors[atomic_numbers[sym]], zorder=2 + 0.01 * z)
    order = np.argsort(proj[:, 2])
    zspan = float(np.ptp(proj[:, 2])) or 1.0
    for rank, idx in enumerate(order):
        colour = colors.jmol_colors[atomic_numbers[symbols[idx]]]
        shade = 0.75 + 0.25 * (proj[idx, 2] - proj[:, 2].min()) / zspan  # nearer atoms brighter
        circle = _disc(proj[idx, :2], 0.32 * radii[idx] + 0.12, np.clip(np.asarray(colour) * shade, 0, 1), zorder=3 + rank)
        ax.add_patch(circle)
    handles = [ax.scatter([], [], s=90, color=colors.jmol_colors[atomic_numbers[sym]], edgecolors="k", label=sym)
               for sym in dict.fromkeys(symbols)]
    if legend_ax is not None:  # a panel of its own beside the atoms
        legend_ax.axis("off")
        legend_ax.legend(handles=handles, loc="center left", fontsize=legend_size, frameon=False, handletextpad=0.3)
    else:  # outside the atoms' axis, to its right
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=legend_size, frameon=False,
                  handletextpad=0.3, borderaxespad=0.2)
    pts = np.vstack([proj[:, :2], cell_pts[:, :2]])
    pad = 1.0
    ax.set_xlim(pts[:, 0].min() - pad, pts[:, 0].max() + pad)
    ax.set_ylim(pts[:, 1].min() - pad, pts[:, 1].max() + pad)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title if title is not None else structure.composition.reduced_formula, fontsize=title_size)


def _disc(xy, radius: float, colour, zorder: float):
    from matplotlib.patches import Circle

    return Circle(xy, radius, facecolor=colour, edgecolor="k", lw=0.6, zorder=zorder)


def structure_png(structure: Structure, target: str | Path, title: str | None = None, size_px: int = 480) -> Path:
    """Write a ``size_px``-wide picture of ``structure`` (legend beside the atoms) to ``target`` (PNG, atomically)."""
    fig = pyplot().figure(figsize=(size_px / PICTURE_DPI, 0.85 * size_px / PICTURE_DPI))
    grid = fig.add_gridspec(1, 2, width_ratios=[4.2, 1.0], wspace=0.0, left=0.02, right=0.98, bottom=0.02, top=0.9)
    draw_structure(fig.add_subplot(grid[0]), structure, title=title, legend_ax=fig.add_subplot(grid[1]),
                   title_size=11, legend_size=10)
    target = Path(target)
    save_figure(fig, target, dpi=PICTURE_DPI)
    return target


def picture_grid(items: Sequence[tuple[Structure, str]], target: str | Path, columns: int = 4,
                 cell_px: int = 440) -> Path:
    """Write pictures of ``(structure, title)`` pairs as one PNG grid (each cell ``cell_px`` wide, its
    legend in a panel beside its atoms) to ``target`` atomically; return the path."""
    if not items:
        raise ValueError("picture_grid: no structures to draw")
    columns = max(1, min(columns, len(items)))
    rows = -(-len(items) // columns)
    cell_in = cell_px / PICTURE_DPI
    fig = pyplot().figure(figsize=(columns * cell_in, rows * 0.9 * cell_in))
    grid = fig.add_gridspec(rows, 2 * columns, width_ratios=[4.2, 1.0] * columns, wspace=0.05, hspace=0.18,
                            left=0.01, right=0.99, bottom=0.01, top=1 - 0.06 / rows)
    for k, (structure, title) in enumerate(items):
        row, col = divmod(k, columns)
        draw_structure(fig.add_subplot(grid[row, 2 * col]), structure, title=title,
                       legend_ax=fig.add_subplot(grid[row, 2 * col + 1]), title_size=10, legend_size=10)
    target = Path(target)
    save_figure(fig, target, dpi=PICTURE_DPI)
    return target
