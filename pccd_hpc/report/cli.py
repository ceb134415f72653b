"""``report`` subcommand: one Markdown page with figures and the metric table of a validation run."""

from __future__ import annotations

import argparse
from pathlib import Path

from pccd_hpc.report.page import ReportPaths, build_report


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand."""
    p = subparsers.add_parser("report", help="Markdown report (E_hull histogram, metrics) of a validation run")
    p.add_argument("--val", required=True, type=Path, help="validation folder VDIR (results.csv, metrics.json)")
    p.add_argument("--out", required=True, type=Path, help="report folder")
    p.add_argument("--gen", type=Path, help="generated structures as produced (shards/CIF folder): as-generated metrics")
    p.add_argument("--reference", type=Path, help="reference structures for the distribution plots")
    p.add_argument("--followup", type=Path, help="followup folder FDIR: adds its Fig. 4-style figures")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Build the report; return an exit code."""
    build_report(ReportPaths(val_dir=args.val, out_dir=args.out, gen_dir=args.gen, reference=args.reference,
                             followup_dir=args.followup))
    return 0
