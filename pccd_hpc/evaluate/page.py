"""``evaluate.md``: the evaluation as one Markdown page with PNG figures (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pccd_hpc.sampling.reconstruction import PAPER_ATOM_COUNT_ACCURACY, PAPER_TABLE1
from pccd_hpc.io_utils import atomic_write_text
from pccd_hpc.plotting import save_figure

MIN_BOND_FIGURE = "figures/min-bond-ratio.png"


def _fmt(value: Any, digits: int = 1, unit: str = "") -> str:
    """A number for the page; ``n/a`` for anything not computed (never 0 in its place)."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def min_bond_histogram(generated: list[float | None], reference: list[float | None], factor: float, target: Path) -> None:
    """Histogram of min(d_ij / (r_i + r_j)) per structure, generated against held-out (density-normalised)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gen = np.array([r for r in generated if r is not None], dtype=float)
    ref = np.array([r for r in reference if r is not None], dtype=float)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    edges = np.linspace(0.0, 1.6, 65)
    if ref.size:
        ax.hist(np.clip(ref, 0, 1.6), bins=edges, density=True, alpha=0.55, label=f"held-out (n={ref.size})")
    if gen.size:
        ax.hist(np.clip(gen, 0, 1.6), bins=edges, density=True, alpha=0.55, label=f"generated, decoded (n={gen.size})")
    ax.axvline(factor, color="k", linestyle="--", linewidth=1, label=f"plausibility bound {factor}")
    ax.set_xlabel("min over atom pairs of d_ij / (r_i + r_j)  (values > 1.6 in the last bin)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, target, dpi=110)


def write_page(out: Path, summary: dict[str, Any], records: dict[str, dict]) -> Path:
    """Write ``out/evaluate.md`` (and its figures) from the summary and the part records."""
    denovo_full = records["denovo"]["result"]
    min_bond_histogram(denovo_full.get("min_bond_ratio") or [], (denovo_full.get("heldout") or {}).get("min_bond_ratio") or [],
                       denovo_full.get("plausible_factor", 0.7), out / MIN_BOND_FIGURE)
    ck, st, m = summary["checkpoint"], summary["settings"], summary["machine"]
    d, ref = summary["denovo"], summary["heldout_reference"] or {}
    lines = [
        "# Evaluation", "",
        f"Checkpoint `{ck['path']}` (sha256 `{ck['sha256'][:16]}…`, step {ck['step']}, preset `{ck['preset']}`, "
        f"{ck['network']} with {ck['parameters']:,} parameters, run in {ck['precision']}).",
        f"Held-out data `{summary['data']['heldout']['path']}` ({summary['data']['heldout']['n_records']} structures). "
        f"Sampler {st['sampler']}, {st['steps']} steps, guidance {st['guidance']}, seed {st['seed']}.",
        f"Number of sites: {ck['number_of_sites']}.",
        f"Machine: {m['cpus_usable']} usable of {m['cpu_count']} CPUs, {m['torch_threads']} torch thread(s), "
        f"torch {m['torch']}, pccd_hpc {m['pccd_hpc']}.", "",
        f"## De novo generation ({d['n_samples']} samples over the held-out chemical systems)", "",
        "Percentages of ALL samples (a failed decode counts as a failure) unless marked *of valid*.", "",
        "The *as sampled* column is the model's own output; *after push-apart* is what `generate` writes by default: the "
        "same structures with atoms moved apart to the minimum separation (AIRSS-style, `pccd_hpc.data.separation`).", "",
        "| measure | as sampled | after push-apart | held-out structures |", "|---|---|---|---|",
    ]
    p = summary.get("denovo_pushed") or {}

    def row(label: str, key: str, digits: int = 1, unit: str = " %", ref_key: str | None = None, bold: bool = False) -> str:
        mark = "**" if bold else ""
        pushed = _fmt(p.get(key), digits, unit=unit) if p else "n/a"
        ref_value = _fmt(ref.get(ref_key), digits, unit=unit) if ref_key else ""
        return f"| {mark}{label}{mark} | {mark}{_fmt(d.get(key), digits, unit=unit)}{mark} | {mark}{pushed}{mark} | {ref_value} |"

    lines += [
        row("decode valid (codec: lattice, 1–16 atoms, no pair < 0.5 Å)", "decode_valid_pct"),
        row("valid = decoded with every requested element (the generate stage's rule)", "valid_pct"),
        row("element-count correct (exactly the requested elements)", "element_count_correct_pct"),
        row(f"plausible (decoded, every d_ij ≥ {d['plausible_factor']} (r_i + r_j))", "plausible_pct", ref_key="plausible_pct"),
        row("valid and plausible", "valid_and_plausible_pct", bold=True),
        row("median min(d_ij / (r_i + r_j)) (decoded)", "min_bond_ratio_median", 2, "", ref_key="min_bond_ratio_median"),
        row(f"shortest bond < {d['short_bond_ang']} Å, *of valid*", "short_bond_pct_of_valid", ref_key="short_bond_pct"),
        row("SMACT valid", "smact_valid_pct"),
        row("unique (StructureMatcher), *of valid*", "unique_pct_of_valid"),
        row("a supercell (a smaller cell holds the same crystal, 0.25 Å), *of valid*", "supercell_pct_of_valid",
            ref_key="supercell_pct"),
        row("not P1 (spglib, 0.1 Å), *of valid*", "non_p1_pct_of_valid", ref_key="non_p1_pct"),
        row("Wasserstein distance of density (g/cm³), valid vs held-out", "wdist_density", 3, ""),
        row("Wasserstein distance of number of elements", "wdist_n_elements", 3, ""),
    ]
    cov, cov_p = summary.get("coverage"), summary.get("coverage_pushed") or {}
    if cov is None:
        lines.append(f"| COV-R / COV-P | n/a ({summary['not_computed'].get('coverage', 'not computed')}) | | |")
    else:
        lines += [f"| COV-R (CDVAE, cut-offs {cov['structure_cutoff']} / {cov['composition_cutoff']}) | "
                  f"{_fmt(cov['cov_recall_pct'], unit=' %')} | {_fmt(cov_p.get('cov_recall_pct'), unit=' %') if cov_p else 'n/a'} | |",
                  f"| COV-P | {_fmt(cov['cov_precision_pct'], unit=' %')} | "
                  f"{_fmt(cov_p.get('cov_precision_pct'), unit=' %') if cov_p else 'n/a'} | |"]
    stats = p.get("push_apart") if p else None
    if stats:
        lines += ["", f"Push-apart to {stats['push_apart_factor']} (r_i + r_j): largest atom shift per structure median "
                  f"{_fmt(stats['max_shift_ang_median'], 2, unit=' Å')} (90th percentile {_fmt(stats['max_shift_ang_p90'], 2, unit=' Å')}); "
                  f"cell expanded for {_fmt(stats['cell_expanded_pct_of_decoded'], unit=' %')} of decoded samples; "
                  f"separation reached for {_fmt(stats['converged_pct_of_decoded'], unit=' %')}."]
    lines += _by_sites_table(d, p, ref)
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(d.get("rejection_reasons", {}).items())) or "none"
    lines += ["", f"Rejections: {reasons}.", "", f"![min bond ratio]({MIN_BOND_FIGURE})", "",
              "## Reconstruction (paper Fig. 1 / Table 1)", "",
              "Decoded as `generate` decodes (block decoding, then the push-apart where set); the last two columns are "
              "the same tensors decoded without the push-apart.", "",
              "| protocol | n | atom count | a / b / c in Table-1 boxes | x / y / z in boxes | StructureMatcher match | mean RMS "
              "| atom count as sampled | match as sampled | median atom error as sampled |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in summary["reconstruction"].items():
        box = r.get("box_fraction_pct") or {}
        raw = r.get("as_sampled") or {}
        lines.append(f"| {r['label']}, t={r['t']}: {r['protocol']} | {r['n']} | {_fmt(r['atom_count_accuracy_pct'], unit=' %')} | "
                     + " / ".join(_fmt(box.get(k)) for k in "abc") + " % | " + " / ".join(_fmt(box.get(k)) for k in "xyz")
                     + f" % | {_fmt(r['match_rate_pct'], unit=' %')} | {_fmt(r['rms_mean'], 3)} | "
                     + (f"{_fmt(raw.get('atom_count_accuracy_pct'), unit=' %')} | {_fmt(raw.get('match_rate_pct'), unit=' %')} |"
                        if raw else "(no push-apart) | |")
                     + f" {_atom_error(raw.get('atom_error_ang') if raw else r.get('atom_error_ang'))} |")
    paper_abc = " / ".join(f"{PAPER_TABLE1[k][0]:.1f}" for k in "abc")
    paper_xyz = " / ".join(f"{PAPER_TABLE1[k][0]:.1f}" for k in "xyz")
    lines += [f"| paper (training items, t = T) | | {PAPER_ATOM_COUNT_ACCURACY} % | {paper_abc} % | {paper_xyz} % | | | | | |", "",
              "Median atom error: distance in Å of each atom from the one it matches (same species, one-to-one), over "
              "the structures whose atom count is right; the 90th percentile follows in brackets.", ""]
    lines += [f"![{name}]({r['figure']})" for name, r in summary["reconstruction"].items() if r.get("figure")]
    if summary.get("csp"):
        from pccd_hpc.evaluate.csp import csp_page_lines

        lines += csp_page_lines(summary["csp"])
    lines += ["", "## Wall time", "", "CPU time is this process's; where it is well below the wall time the machine was "
              "shared with other work.", "",
              "| part | wall time | CPU time | items | items/s | torch threads / usable CPUs | |",
              "|---|---|---|---|---|---|---|"]
    for name, t in summary["timing"].items():
        note = "from an earlier run" if t["reused_from_earlier_run"] else ""
        lines.append(f"| {name} | {_fmt(t['wall_s'], unit=' s')} | {_fmt(t.get('cpu_s'), unit=' s')} | {t['n_items']} | "
                     f"{_fmt(t['items_per_s'], 2)} | {_fmt(t.get('torch_threads'))} / {_fmt(t.get('cpus_usable'))} | {note} |")
    if summary["not_computed"]:
        lines += ["", "## Not computed", ""] + [f"- `{k}`: {v}" for k, v in sorted(summary["not_computed"].items())]
    target = out / "evaluate.md"
    atomic_write_text(target, "\n".join(lines) + "\n")
    return target


def _by_sites_table(denovo: dict, pushed: dict, reference: dict) -> list[str]:
    """Markdown lines: plausibility of decoded samples by number of sites, beside the held-out structures'."""
    rows = denovo.get("by_sites")
    if not rows:
        return []
    pushed_rows = pushed.get("by_sites") or [{}] * len(rows)
    ref_rows = reference.get("by_sites") or [{}] * len(rows)
    lines = ["", "Plausible by number of sites (decoded samples; the share is of decoded samples, or of held-out structures):", "",
             "| sites | decoded samples (share) | plausible as sampled | plausible after push-apart | held-out structures (share) "
             "| held-out plausible |", "|---|---|---|---|---|---|"]
    for r, q, h in zip(rows, pushed_rows, ref_rows):
        lines.append(f"| {r['sites']} | {r['n']} ({_fmt(r['share_pct'], unit=' %')}) | {_fmt(r['plausible_pct'], unit=' %')} | "
                     f"{_fmt(q.get('plausible_pct'), unit=' %')} | {h.get('n', '')} ({_fmt(h.get('share_pct'), unit=' %')}) | "
                     f"{_fmt(h.get('plausible_pct'), unit=' %')} |")
    asked = denovo.get("site_count")
    if asked:
        lines += ["", f"Each sample asked for a number of sites (mean {_fmt(asked['requested_mean'], 2)}); "
                  f"{_fmt(asked['as_requested_pct'], unit=' %')} of all samples decode with exactly that many."]
    return lines


def _atom_error(stats: dict | None) -> str:
    """Median and 90th-percentile atom error, e.g. ``0.11 Å (0.26)``; n/a when no structure had the right atom count."""
    if not stats:
        return "n/a"
    return f"{stats['median']:.2f} Å ({stats['p90']:.2f})"
