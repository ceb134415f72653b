"""Build the one-page Markdown report of a validation run (figures + metric table)."""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymatgen.core import Structure

from pccd_hpc.io_utils import atomic_write_json, atomic_write_text, read_json
from pccd_hpc.report.funnel import funnel_lines, funnel_picture, funnel_steps
from pccd_hpc.report.figures import PAPER_SPLIT_EV_PER_ATOM, PAPER_STABLE_EV_PER_ATOM, distribution_plot, e_hull_histogram
from pccd_hpc.materials import metrics as M
from pccd_hpc.materials.structure_inputs import iter_input_structures
from pccd_hpc.records import read_results_csv

log = logging.getLogger(__name__)

# The paper's screened set: 746 VASP-relaxed generated structures (Fig. 3).
PAPER_FRACTIONS = {PAPER_SPLIT_EV_PER_ATOM: 0.6268, PAPER_STABLE_EV_PER_ATOM: 0.1635}


@dataclass(frozen=True)
class ReportPaths:
    """Inputs and output of the report."""

    val_dir: Path
    out_dir: Path
    gen_dir: Path | None = None
    reference: Path | None = None
    followup_dir: Path | None = None


def build_report(paths: ReportPaths) -> Path:
    """Write ``report.md``, its figures and ``summary.json`` into ``paths.out_dir``; return the page path."""
    results_csv = paths.val_dir / "results.csv"
    if not results_csv.exists():
        raise FileNotFoundError(f"no results.csv in {paths.val_dir}: run `validate` (and its finalize step) first")
    rows = read_results_csv(results_csv)
    metrics_path = paths.val_dir / "metrics.json"
    if not metrics_path.exists():
        raise FileNotFoundError(f"no metrics.json in {paths.val_dir}: run validate's finalize step first")
    metrics: dict[str, Any] = read_json(metrics_path, "validation metrics")
    out = paths.out_dir
    out.mkdir(parents=True, exist_ok=True)
    e_hull = [r.get("e_above_hull_ev_per_atom") for r in rows]

    generated = [s for _, s in iter_input_structures(paths.gen_dir)] if paths.gen_dir else []
    distances: dict[str, Any] = {}
    relaxed = [Structure.from_str(r["relaxed_cif"], fmt="cif") for r in rows if r.get("relaxed_cif")]
    reference = [s for _, s in iter_input_structures(paths.reference)] if paths.reference else []

    e_hull_histogram(e_hull, out / "e_hull_hist.png")
    density = {"relaxed": list(M.density_g_cm3(relaxed))}
    n_el = {"relaxed": list(M.n_elements(relaxed))}
    if generated:
        density["generated"], n_el["generated"] = list(M.density_g_cm3(generated)), list(M.n_elements(generated))
    if reference:
        density["reference"], n_el["reference"] = list(M.density_g_cm3(reference)), list(M.n_elements(reference))
        distances = {f"{k}_vs_reference": v for k, v in M.wasserstein_distances(generated or relaxed, reference).items()}
    distribution_plot(density, out / "density.png", "density (g/cm³)")
    distribution_plot(n_el, out / "n_elements.png", "number of elements", discrete=True)
    bands = _copy_band_plots(paths.val_dir / "phonons", out / "phonons")
    from pccd_hpc.report.structure_picture import followup_figures, top_n_pictures

    pictures = top_n_pictures(rows, out, n=15)
    generation = (read_json(paths.gen_dir / "summary.json", "generation summary")
                  if paths.gen_dir and (paths.gen_dir / "summary.json").exists() else None)
    steps = funnel_steps(metrics, generation)
    if steps:
        funnel_picture(steps, out / "funnel.png", f"{paths.val_dir.name}: generate -> validate funnel")
    followup = followup_figures(paths.followup_dir, out) if paths.followup_dir else []

    # validate's finalize computed the fractions (over the structures a hull exists for): read, never recompute
    fractions = {thr: metrics.get(f"e_hull_below_{thr:g}") for thr in PAPER_FRACTIONS}
    summary = {"n_results": len(rows), "fractions_below": {str(k): v for k, v in fractions.items()},
               "distances_vs_reference": distances, "validation_metrics": metrics}
    summary["funnel"] = dict(steps)
    page = _render(rows, metrics, distances, fractions, bands, paths, pictures, followup)
    page = page.replace("\n## Energy above hull", "\n" + "\n".join(funnel_lines(metrics, steps, "funnel.png")) + "\n## Energy above hull", 1)
    if generation is not None:
        page = page.replace("\n## Energy above hull", "\n" + _generation_lines(generation, rows)
                            + "\n## Energy above hull", 1)
    symmetry = symmetry_table(rows, generated, reference, generation)
    summary["non_p1_fractions"] = symmetry
    atomic_write_json(out / "summary.json", summary)
    page = page.replace("\n## Distributions", "\n" + _symmetry_lines(symmetry) + "\n## Distributions", 1)
    atomic_write_text(out / "report.md", page)
    log.info("report: wrote %s", out / "report.md")
    return out / "report.md"


def _generation_lines(gen: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """What the generation summary says of the model's geometry (plausibility as sampled and after the push-apart),
    and how many of those structures were validated here."""
    n = gen.get("n_generated") or 0
    factor = gen.get("push_apart_factor")

    def share(count: Any) -> str:
        return "n/a" if count is None or not n else f"{count} ({100 * count / n:.1f} %)"

    lines = ["## Generation", "", f"{n} samples generated, {share(gen.get('n_valid'))} valid; plausible (every bond "
             f"≥ {gen.get('plausible_bond_factor', 0.7)} × the sum of covalent radii) as the model sampled them: "
             f"{share(gen.get('n_plausible_as_sampled'))}."]
    if factor is not None:
        lines.append(f"Atoms were then pushed apart to {factor} × the sum of covalent radii (AIRSS-style, before "
                     f"relaxation): {share(gen.get('n_plausible'))} plausible as written by generate.")
    checked = [r for r in rows if r.get("plausible_initial") is not None]
    validated = f"{len(rows)} of the {n} were validated here"
    if checked:
        validated += f"; {sum(bool(r['plausible_initial']) for r in checked)} of those {len(checked)} plausible as validated"
    lines.append(validated + ".")
    return "\n".join(lines) + "\n"


def symmetry_table(rows: list[dict[str, Any]], generated: list[Structure], reference: list[Structure],
                   gen_summary: dict[str, Any] | None) -> dict[str, tuple[float | None, int]]:
    """Share of non-P1 structures (spglib at the package's tolerance) and how many were analysed, per set:
    generated, validated before and after relaxation, and the reference (real) crystals when given."""
    from pccd_hpc.data.symmetry import SpaceGroup, non_p1_fraction, space_group

    def numbers(key: str) -> list[SpaceGroup | None]:
        return [SpaceGroup("", int(r[key])) for r in rows if r.get(key) is not None]

    table: dict[str, tuple[float | None, int]] = {}
    if gen_summary is not None and "non_p1_fraction" in gen_summary:
        table["generated (as written by generate)"] = (gen_summary["non_p1_fraction"], int(gen_summary.get("n_valid") or 0))
    elif generated:
        table["generated (as written by generate)"] = (non_p1_fraction(space_group(s) for s in generated), len(generated))
    for key, label in (("space_group_number_initial", "validated, before relaxation"),
                       ("space_group_number_relaxed", "validated, after relaxation")):
        groups = numbers(key)
        if groups:
            table[label] = (non_p1_fraction(groups), len(groups))
    if reference:
        table["reference crystals (--reference)"] = (non_p1_fraction(space_group(s) for s in reference), len(reference))
    return table


def _symmetry_lines(table: dict[str, tuple[float | None, int]]) -> str:
    from pccd_hpc.data.symmetry import SYMPREC_ANG

    if not table:
        return ""
    lines = ["## Symmetry", "", f"Share of structures with any symmetry beyond P1 (spglib, tolerance {SYMPREC_ANG:g} Å); "
             "real crystals are rarely P1, so this shows how far the generator is from real symmetry.", "",
             "| structures | not P1 | analysed |", "| --- | --- | --- |"]
    lines += [f"| {label} | {_pct(share)} | {n} |" for label, (share, n) in table.items()]
    return "\n".join(lines) + "\n"


METRIC_LABELS = {
    "n_candidates": "candidates validated", "structural_validity": "structural validity (as generated)",
    "compositional_validity": "compositional validity, SMACT (as generated)", "relax_converged": "relaxations converged",
    "relax_failed": "relaxations failed", "n_unphysical": "unphysical structures",
    "n_unphysical_before_relaxation": "unphysical before relaxation (not relaxed)",
    "plausible_as_generated": "plausible as generated (bonds ≥ 0.7 × covalent radii)",
    "uniqueness": "uniqueness (after relaxation)", "novelty": "novelty (not in the training set)",
    "sun_rate": "S.U.N. rate (stable, unique, novel)", "with_e_hull": "with an E_hull",
    "n_hull_eligible": "with a hull reference", "n_without_hull": "without a hull (n/a)",
    "n_far_below_hull": "far below the hull (check the reference set)", "phonon_calculated": "phonons calculated",
    "phonon_stable": "phonon-stable (no imaginary mode)", "n_missing_records": "records missing (unfinished tasks)",
    "n_rejected_inputs": "inputs rejected", "non_p1_as_generated": "not P1 as generated (spglib)",
    "non_p1_after_relaxation": "not P1 after relaxation (spglib)",
    "wdist_density": "Wasserstein distance of densities (g/cm³)",
    "wdist_n_elements": "Wasserstein distance of element counts",
    "stable_threshold_ev_per_atom": "stability threshold (eV/atom)",
    "novel_composition": "novel composition (formula not in MP-20)",
    "sun_rate_novel_composition": "S.U.N. rate, novel compositions",
}
"""Words for the metric keys validate writes (anything else is shown with its underscores as spaces)."""


def metric_label(key: str) -> str:
    """How the report names metric ``key``: a phrase, never the raw key."""
    if key in METRIC_LABELS:
        return METRIC_LABELS[key]
    for prefix, words in (("e_hull_below_", "E_hull below {} eV/atom"), ("stable_below_", "stable (E_hull below {} eV/atom)")):
        if key.startswith(prefix):
            return words.format(key[len(prefix):])
    if key.endswith("_vs_reference"):
        return metric_label(key[: -len("_vs_reference")]) + " vs the reference set"
    return key.replace("_", " ")


def _copy_band_plots(src: Path, dst: Path) -> list[Path]:
    copied = []
    for png in sorted(src.glob("*_bands.png")) if src.is_dir() else []:
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, dst / png.name)
        copied.append(Path("phonons") / png.name)
    return copied


def _pct(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f} %"


def _num(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"


def _render(rows, metrics, distances, fractions, bands, paths: ReportPaths, pictures=None, followup=()) -> str:
    pictures = pictures or {}
    lines = [f"# Validation report: {paths.val_dir.name}", "",
             f"{len(rows)} structures validated with backend `{metrics.get('backend', '?')}`"
             f" (val: `{paths.val_dir}`{f', gen: `{paths.gen_dir}`' if paths.gen_dir else ''}).", "",
             "## Energy above hull (paper Fig. 3)", "", "![E_hull histogram](e_hull_hist.png)", "",
             "| E_hull below | this run | paper (746 VASP-screened structures) |", "| --- | --- | --- |"]
    for thr, frac in fractions.items():
        lines.append(f"| {thr} eV/atom | {_pct(frac)} | {100 * PAPER_FRACTIONS[thr]:.2f} % |")
    n_no_hull = sum(1 for r in rows if r.get("hull_status") == "no_hull")
    lines += ["", "Fractions are over the validated structures a hull exists for; failed relaxations and "
              "unphysical structures count as not below."
              + (f" {n_no_hull} structures have no hull (n/a): see their hull_note." if n_no_hull else ""),
              f"Hull reference: {metrics.get('hull_reference') or 'n/a'}.", "",
              "## Metrics", "", "| metric | value |", "| --- | --- |"]
    skip = {"space_group_symprec_ang"}  # stated in the symmetry section
    for key, value in sorted(metrics.items(), key=lambda item: metric_label(item[0]).lower()):
        if key in skip:
            continue
        label = metric_label(key)
        if value is None and key not in ("n_missing_records",):
            lines.append(f"| {label} | n/a |")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            fmt = _pct if 0 <= value <= 1 and isinstance(value, float) and not key.startswith("wdist") else _num
            lines.append(f"| {label} | {fmt(value)} |")
    for key, value in sorted(distances.items()):
        lines.append(f"| {metric_label(key)} | {_num(value)} |")
    if metrics.get("hull_notes"):
        lines += ["", "Hull notes: " + "; ".join(metrics["hull_notes"])]
    lines += ["", "## Distributions", "", "![density](density.png) ![number of elements](n_elements.png)", "",
              "## Lowest E_hull", "", "| id | formula | sites | E_hull (eV/atom) | converged | imaginary modes | structure |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    ranked = sorted((r for r in rows if r.get("e_above_hull_ev_per_atom") is not None), key=lambda r: r["e_above_hull_ev_per_atom"])
    for r in ranked[:15]:
        picture = f"![{r['id']}]({pictures[r['id']]})" if r["id"] in pictures else ""
        lines.append(f"| {r['id']} | {r['formula']} | {r['n_sites']} | {r['e_above_hull_ev_per_atom']:.3f} | "
                     f"{r['converged']} | {'n/a' if r.get('imaginary_modes') is None else r['imaginary_modes']} | {picture} |")
    failures = [r for r in rows if r.get("error")]
    if failures:
        lines += ["", f"## Failures ({len(failures)})", ""] + [f"- `{r['id']}`: {r['error']}" for r in failures[:30]]
    if followup:
        lines += ["", "## DFT followup (paper Fig. 4)", ""]
        for cid, png, s in followup:
            gap = "n/a" if s.get("band_gap_ev") is None else f"{s['band_gap_ev']:.2f} eV ({'direct' if s['gap_is_direct'] else 'indirect'})"
            low = "n/a" if s.get("lowest_phonon_frequency_thz") is None else f"{s['lowest_phonon_frequency_thz']:.2f} THz"
            lines += [f"**{cid}** ({s['formula']}, {s.get('backend')}): gap {gap}, lowest phonon {low}", "", f"![{cid}]({png})", ""]
    if bands:
        lines += ["", "## Phonon band structures", ""] + [f"![{b.stem}]({b.as_posix()})" for b in bands]
    return "\n".join(lines) + "\n"
