"""``evaluate`` subcommand: one evaluation of a checkpoint on held-out shards, the same every time."""

from __future__ import annotations

import argparse
import json
import logging

import torch

from pccd_hpc.data.separation import PUSH_APART_FACTOR
from pccd_hpc.evaluate.config import EvaluateConfig, EvaluatePaths
from pccd_hpc.io_utils import checked_input_path
from pccd_hpc.model.samplers import DDIM_STEPS, GUIDANCE_SCALE

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` subcommand."""
    p = subparsers.add_parser(
        "evaluate",
        help="measure a checkpoint on held-out shards: de novo quality, coverage, reconstruction, wall time",
        description="Writes EDIR/evaluate.json and EDIR/evaluate.md (with PNG figures). Each part's result is its "
        "own EDIR/part-*.json; re-running the same command reuses parts made with the same checkpoint (sha256) "
        "and settings and recomputes the others.",
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint: a run folder (its newest complete step-N/), a step-N/ folder or an exported .pt")
    p.add_argument("--data", required=True, help="held-out encoded shard folder")
    p.add_argument("--train-data", default=None, help="training shard folder (adds reconstruction at t = T on training items)")
    p.add_argument("--out", required=True, help="evaluation folder EDIR")
    p.add_argument("--n-samples", type=int, default=1000, help="de novo samples (default 1000)")
    p.add_argument("--n-reconstruct", type=int, default=1280, help="held-out items to reconstruct per protocol (default 1280)")
    p.add_argument("--n-train-reconstruct", type=int, default=256, help="training items to reconstruct at t = T (default 256)")
    p.add_argument("--steps", type=int, default=DDIM_STEPS, help=f"sampler steps (default {DDIM_STEPS})")
    p.add_argument("--guidance", type=float, default=GUIDANCE_SCALE,
                   help=f"classifier-free guidance scale (default {GUIDANCE_SCALE:g})")
    p.add_argument("--sampler", choices=["ddim", "ddpm"], default="ddim", help="de novo sampler (default ddim)")
    p.add_argument("--seed", type=int, default=0, help="seed of the systems drawn and the sampling noise (default 0)")
    p.add_argument("--batch-size", type=int, default=128, help="samples per model call (default 128)")
    p.add_argument("--push-apart-factor", type=float, default=PUSH_APART_FACTOR,
                   help=f"also score the samples after generate's push-apart to this separation (default {PUSH_APART_FACTOR})")
    p.add_argument("--no-push-apart", action="store_true", help="score the samples only as sampled")
    p.add_argument("--skip-coverage", action="store_true", help="skip COV-R / COV-P (fingerprints are slow)")
    p.add_argument("--csp-targets", type=int, default=0,
                   help="crystal structure prediction on this many held-out structures (default 0: skipped)")
    p.add_argument("--csp-k", type=int, default=20, help="CSP candidates per structure (default 20)")
    p.add_argument("--csp-ranked", type=int, default=0,
                   help="of the CSP structures, how many also get their candidates relaxed with CHGNet and ranked "
                   "(default 0; about 2-3 s per relaxation on a CPU)")
    p.add_argument("--csp-relax-steps", type=int, default=100, help="most steps per CSP relaxation (default 100)")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                   help="network arithmetic (default auto: bf16 autocast where the model was trained in bf16)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run the evaluation; print the headline figures; return an exit code."""
    from pccd_hpc.evaluate.stage import run_evaluate

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    paths = EvaluatePaths(
        checkpoint=checked_input_path(args.checkpoint, "--checkpoint"), data=checked_input_path(args.data, "--data"),
        out=args.out, train_data=checked_input_path(args.train_data, "--train-data") if args.train_data else None,
    )
    config = EvaluateConfig(
        n_samples=args.n_samples, n_reconstruct=args.n_reconstruct, n_train_reconstruct=args.n_train_reconstruct,
        steps=args.steps, guidance=args.guidance, sampler=args.sampler, seed=args.seed, batch_size=args.batch_size,
        skip_coverage=args.skip_coverage, precision=args.precision, csp_targets=args.csp_targets, csp_k=args.csp_k,
        csp_ranked=args.csp_ranked, csp_relax_steps=args.csp_relax_steps,
        push_apart_factor=None if args.no_push_apart else args.push_apart_factor,
    )
    summary = run_evaluate(config, paths)
    d = summary["denovo"]
    headline = {k: d[k] for k in ("decode_valid_pct", "valid_pct", "plausible_pct", "valid_and_plausible_pct")}
    if summary["coverage"]:
        headline.update(cov_recall_pct=summary["coverage"]["cov_recall_pct"], cov_precision_pct=summary["coverage"]["cov_precision_pct"])
    pushed = summary.get("denovo_pushed")
    if pushed:
        headline["pushed.valid_and_plausible_pct"] = pushed["valid_and_plausible_pct"]
        if summary.get("coverage_pushed"):
            headline["pushed.cov_recall_pct"] = summary["coverage_pushed"]["cov_recall_pct"]
            headline["pushed.cov_precision_pct"] = summary["coverage_pushed"]["cov_precision_pct"]
    for name, rec in summary["reconstruction"].items():
        headline[f"{name}.atom_count_accuracy_pct"] = rec["atom_count_accuracy_pct"]
        headline[f"{name}.match_rate_pct"] = rec["match_rate_pct"]
    if summary.get("csp"):
        for name, block in summary["csp"]["as_sampled"].items():
            headline[f"csp.{name}.match_rate_pct"] = block["match_rate_pct"]
    print(json.dumps(headline, indent=2))
    return 0
