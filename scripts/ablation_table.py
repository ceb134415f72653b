"""Print the Markdown ablation table from evaluation folders (each written by `python -m pccd_hpc.launch evaluate`).

Usage: python scripts/ablation_table.py "LABEL=EDIR" ["LABEL=EDIR" ...]
Columns: de novo figures over ALL samples (decode-valid, plausible = every bond >= 0.7 x sum of covalent
radii, both), median min d/(r_i + r_j), COV-R / COV-P, and reconstruction of held-out items at t = 300:
all as sampled (the model's own output; evaluations older than the push-apart hold only that).
A figure an evaluation did not compute is printed as "n/a".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _fmt(value: object, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def row(label: str, edir: Path) -> str:
    """One Markdown table row for the evaluation in ``edir``."""
    s = json.loads((edir / "evaluate.json").read_text())
    d, c = s["denovo"], s.get("coverage") or {}
    r = s["reconstruction"].get("reconstruct-heldout-t300") or {}
    r = r.get("as_sampled") or r  # the t = 300 columns as sampled, like the de novo ones
    box = r.get("box_fraction_pct") or {}
    ck = s["checkpoint"]
    lattice = "/".join(_fmt(box.get(k), 0) for k in "abc")
    return (f"| {label} | {ck['network']} {ck['parameters'] / 1e6:.1f}M, step {ck['step']} | {d['n_samples']} | "
            f"{_fmt(d.get('decode_valid_pct'))} | {_fmt(d.get('plausible_pct'))} | {_fmt(d.get('valid_and_plausible_pct'))} | "
            f"{_fmt(d.get('min_bond_ratio_median'), 2)} | {_fmt(c.get('cov_recall_pct'))} | {_fmt(c.get('cov_precision_pct'))} | "
            f"{_fmt(r.get('atom_count_accuracy_pct'))} | {_fmt(r.get('match_rate_pct'))} | {lattice} |")


def main(pairs: list[str]) -> None:
    print("| candidate | network, step | samples | decode-valid % | plausible % | valid & plausible % | median min d/(r_i+r_j) "
          "| COV-R % | COV-P % | t=300 atom count % | t=300 match % | t=300 a/b/c in box % |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for pair in pairs:
        label, _, edir = pair.partition("=")
        print(row(label, Path(edir)))


if __name__ == "__main__":
    main(sys.argv[1:])
