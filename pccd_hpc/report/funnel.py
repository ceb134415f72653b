"""The generate -> validate funnel with S.U.N. (stable, unique, novel): a table and a picture.

Counts come from validate's ``metrics.json`` (``funnel``, computed once in finalize) and, when the
generation folder is given, the generation ``summary.json`` (samples generated and decoded). Nothing
is recomputed here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pccd_hpc.plotting import pyplot, save_figure

PEERS = (
    ("MatterGen (trained on MP-20)", "22.27 %", "DFT relaxation, MP hull, E_hull <= 0.1 eV/atom"),
    ("DiffCSP", "12.71 %", "as reported by MatterGen: DFT relaxation, MP hull, <= 0.1 eV/atom"),
    ("Crystalite", "48.55 %", "NequIP-OAM-L relaxations, Materials Project 2023 hull, <= 0.1 eV/atom"),
)
"""Published S.U.N. rates beside ours, each with its protocol (they are not measured the same way)."""


def funnel_steps(metrics: dict[str, Any], generation: dict[str, Any] | None) -> list[tuple[str, int]]:
    """``[(label, count), ...]`` from generated samples down to S.U.N.; generation steps only when known."""
    funnel = metrics.get("funnel") or {}
    if not funnel:
        return []
    threshold = metrics.get("stable_threshold_ev_per_atom", 0.1)
    steps: list[tuple[str, int]] = []
    if generation and generation.get("n_generated") is not None:
        steps.append(("generated", int(generation["n_generated"])))
        if generation.get("n_valid") is not None:
            steps.append(("decoded into a structure", int(generation["n_valid"])))
    steps += [("validated", funnel["candidates"]), ("plausible as given", funnel["plausible"]),
              ("relaxed, converged, physical", funnel["relaxed_converged"]),
              (f"E_hull <= {threshold:g} eV/atom", funnel[f"e_hull_le_{threshold:g}"]),
              ("unique", funnel["unique"]), ("novel: S.U.N.", funnel["sun"])]
    return steps


def funnel_picture(steps: list[tuple[str, int]], target: Path, title: str) -> None:
    """Horizontal bars, widest at the top, each labelled with its count and share of the first step."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(steps) + 1.2))
    first = max(steps[0][1], 1)
    labels = [label for label, _ in steps][::-1]
    counts = [count for _, count in steps][::-1]
    bars = ax.barh(range(len(steps)), counts, color=["tab:green" if i == 0 else "tab:blue" for i in range(len(steps))])
    for bar, count in zip(bars, counts):
        ax.text(bar.get_width() + first * 0.01, bar.get_y() + bar.get_height() / 2,
                f"{count} ({100 * count / first:.1f} %)", va="center", fontsize=9)
    ax.set_yticks(range(len(steps)), labels)
    ax.set_xlim(0, first * 1.3)
    ax.set_xlabel("structures")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, target)


def funnel_lines(metrics: dict[str, Any], steps: list[tuple[str, int]], picture: str) -> list[str]:
    """Markdown: what the figures are, the funnel table, the picture and the peers with their protocols."""
    if not steps:
        return []
    first = max(steps[0][1], 1)
    funnel = metrics["funnel"]
    lines = ["## From samples to S.U.N. candidates", "",
             f"Energies: {metrics.get('energy_scale', 'n/a')}. Hull: {metrics.get('hull_reference', 'n/a')}. "
             f"Novel: {metrics.get('funnel_novelty', 'n/a')}. Not DFT-verified: these are ML-relaxation verdicts "
             "that choose what deserves DFT time.", "", f"![funnel]({picture})", "",
             "| step | structures | share of the first step |", "| --- | --- | --- |"]
    lines += [f"| {label} | {count} | {100 * count / first:.1f} % |" for label, count in steps]
    lines += ["", f"Of the stable ones, {funnel.get('e_hull_le_0', 0)} lie on or below the hull (E_hull <= 0).", "",
              "Published S.U.N. rates (different relaxers and hulls: compare with care):", "",
              "| model | S.U.N. | protocol |", "| --- | --- | --- |"]
    lines += [f"| {name} | {rate} | {protocol} |" for name, rate, protocol in PEERS]
    return lines + [""]
