"""Pictures of crystal structures with matplotlib (no GUI): unit cell, atoms and bonds.

Atoms are drawn as shaded discs in Jmol colours, sized by covalent radius, depth-sorted after a
fixed viewing rotation; bonds join atoms closer than ``bond_factor`` x the sum of covalent radii,
including bonds to periodic images just outside the cell (drawn as half bonds to the edge atoms).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pymatgen.core import Structure

from pccd_hpc.plotting import pyplot, save_figure

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


def draw_structure(ax, structure: Structure, bond_factor: float = BOND_FACTOR, title: str | None = None) -> None:
    """Draw ``structure``'s conventional-looking unit cell with atoms and bonds onto a matplotlib axis."""
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
    seen = dict.fromkeys(symbols)
    for sym in seen:
        ax.scatter([], [], s=60, color=colors.jmol_colors[atomic_numbers[sym]], edgecolors="k", label=sym)
    ax.legend(loc="upper right", fontsize=7, frameon=False, handletextpad=0.2, borderaxespad=0.1)
    pts = np.vstack([proj[:, :2], cell_pts[:, :2]])
    pad = 1.0
    ax.set_xlim(pts[:, 0].min() - pad, pts[:, 0].max() + pad)
    ax.set_ylim(pts[:, 1].min() - pad, pts[:, 1].max() + pad)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title if title is not None else structure.composition.reduced_formula, fontsize=9)


def _disc(xy, radius: float, colour, zorder: float):
    from matplotlib.patches import Circle

    return Circle(xy, radius, facecolor=colour, edgecolor="k", lw=0.6, zorder=zorder)


def structure_png(structure: Structure, target: str | Path, title: str | None = None, size_in: float = 2.4) -> Path:
    """Write a picture of ``structure`` to ``target`` (PNG, atomically) and return the path."""
    fig, ax = pyplot().subplots(figsize=(size_in, size_in))
    draw_structure(ax, structure, title=title)
    fig.tight_layout()
    target = Path(target)
    save_figure(fig, target, dpi=110)
    return target


def top_n_pictures(rows: list[dict], out_dir: Path, n: int = 15) -> dict[str, str]:
    """Pictures of the ``n`` lowest-E_hull rows of a results table (``relaxed_cif``) under
    ``out_dir/structures``; returns id -> path relative to ``out_dir``. Unreadable CIFs are skipped."""
    import logging

    from pccd_hpc.validate.store import record_filename

    ranked = sorted((r for r in rows if r.get("e_above_hull_ev_per_atom") is not None and r.get("relaxed_cif")),
                    key=lambda r: r["e_above_hull_ev_per_atom"])
    pictures: dict[str, str] = {}
    for row in ranked[:n]:
        name = f"structures/{record_filename(row['id'])[: -len('.json')]}.png"
        try:
            structure = Structure.from_str(row["relaxed_cif"], fmt="cif")
        except (ValueError, IndexError, KeyError, ZeroDivisionError) as err:
            logging.getLogger(__name__).warning("no picture for %s: unreadable relaxed_cif (%s)", row["id"], err)
            continue
        structure_png(structure, Path(out_dir) / name, title=structure.composition.reduced_formula, size_in=1.8)
        pictures[row["id"]] = name
    return pictures


def followup_figures(followup_dir: Path, out_dir: Path) -> list[tuple[str, str, dict]]:
    """Copy each followup candidate's ``fig4.png`` into ``out_dir/followup``; return (id, relative path, summary)."""
    import json
    import shutil

    found = []
    for summary_path in sorted(Path(followup_dir).glob("candidates/*/summary.json")):
        summary = json.loads(summary_path.read_text())
        figure = summary_path.parent / summary.get("figure", "fig4.png")
        if not figure.exists():
            continue
        target = Path(out_dir) / "followup" / f"{summary_path.parent.name}-fig4.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(figure, target)
        found.append((summary["id"], f"followup/{target.name}", summary))
    return found
