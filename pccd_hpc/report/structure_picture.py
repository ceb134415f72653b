"""The report's structure pictures (the lowest-E_hull candidates) and the followup figures it shows.

The drawing itself is :mod:`pccd_hpc.pictures`, shared with ``generate`` and ``followup``.
"""

from __future__ import annotations

from pathlib import Path

from pymatgen.core import Structure

from pccd_hpc.pictures import structure_png


def top_n_pictures(rows: list[dict], out_dir: Path, n: int = 15) -> dict[str, str]:
    """Pictures of the ``n`` lowest-E_hull rows of a results table (``relaxed_cif``) under
    ``out_dir/structures``; returns id -> path relative to ``out_dir``. Unreadable CIFs are skipped."""
    import logging

    from pccd_hpc.records import record_filename

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
        structure_png(structure, Path(out_dir) / name, title=_picture_title(row, structure))
        pictures[row["id"]] = name
    return pictures


def _picture_title(row: dict, structure: Structure) -> str:
    """``id: formula, space group`` of a relaxed candidate."""
    group = row.get("space_group_relaxed")
    return f"{row['id']}: {structure.composition.reduced_formula}" + (f", {group}" if group else "")


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
