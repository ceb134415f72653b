"""Measure crystal structure prediction on MP-20 validation structures: the tuning set or the held-out split.

    python scripts/csp_measure.py ../shared/data/mp_20/val.csv.gz tune 60 runs/csp-tune-g3
    python scripts/csp_measure.py ../shared/data/mp_20/val.csv.gz heldout 200 runs/csp-heldout
    python scripts/csp_measure.py ../shared/data/mp_20/val.csv.gz heldout 40 runs/csp-ranked --relax-steps 40

``tune``: validation structures outside the held-out split (``pccd_hpc.data.heldout_split``; note that
the bundled model trained on them); ``heldout``: the held-out split, which no model here trained on.
Structures that fit the codec (at most 16 sites and 3 elements) are taken in a fixed shuffled order
(seed 0), the first N. Each is scored with :func:`pccd_hpc.evaluate.csp.run_targets` (one JSON row per
structure under OUT/rows/, so a killed run resumes) and summarised into OUT/summary.json. Use one thread.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import logging
import random
import sys
from pathlib import Path

import torch
from pymatgen.core import Structure

from pccd_hpc.data.heldout_split import heldout_ids
from pccd_hpc.evaluate.csp import CspSettings, csp_summary, run_targets
from pccd_hpc.sampling.checkpoint_sampler import CheckpointSampler, default_checkpoint, load_model
from pccd_hpc.data.separation import PUSH_APART_FACTOR
from pccd_hpc.model.samplers import DDIM_STEPS, GUIDANCE_SCALE

csv.field_size_limit(sys.maxsize)


def targets(val_csv: Path, split: str, n: int, offset: int = 0) -> list[tuple[str, Structure]]:
    """The first ``n`` structures (after ``offset``) of ``split`` that fit the codec, in the fixed shuffled order."""
    held = heldout_ids()
    with gzip.open(val_csv, "rt", newline="") as fh:
        rows = sorted((r["material_id"], r["cif"]) for r in csv.DictReader(fh) if (r["material_id"] in held) == (split == "heldout"))
    random.Random(0).shuffle(rows)
    found = []
    for material_id, cif in rows:
        s = Structure.from_str(cif, fmt="cif")
        if len(s) <= 16 and len(s.composition.elements) <= 3 and s.is_ordered:
            found.append((material_id, s))
        if len(found) >= offset + n:
            break
    return found[offset:]


def main() -> None:
    """Parse the arguments, score the structures, write OUT/summary.json."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("val_csv", type=Path)
    p.add_argument("split", choices=["tune", "heldout"])
    p.add_argument("n", type=int)
    p.add_argument("out", type=Path)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--steps", type=int, default=DDIM_STEPS)
    p.add_argument("--guidance", type=float, default=GUIDANCE_SCALE)
    p.add_argument("--push-apart-factor", type=float, default=PUSH_APART_FACTOR)
    p.add_argument("--no-push-apart", action="store_true")
    p.add_argument("--fresh-noise", action="store_true", help="inpainting noise drawn afresh at every step")
    p.add_argument("--relax-steps", type=int, default=0, help="relax with CHGNet and rank (0: no ranking)")
    p.add_argument("--checkpoint", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    loaded = load_model(args.checkpoint or default_checkpoint())
    settings = CspSettings(k=args.k, steps=args.steps, guidance=args.guidance, fixed_noise=not args.fresh_noise,
                           push_apart_factor=None if args.no_push_apart else args.push_apart_factor)
    relax = None
    if args.relax_steps:
        from pccd_hpc.materials.energy_ranking import make_relaxer

        relax = make_relaxer("chgnet", max_steps=args.relax_steps)
    sampler = CheckpointSampler(loaded, "ddim", args.steps, args.guidance)
    rows = run_targets(args.out / "rows", targets(args.val_csv, args.split, args.n), sampler, loaded.codec, settings, relax)
    summary = {**csp_summary(rows, (1, 5, args.k)), "settings": {k: str(v) for k, v in vars(args).items()},
               "checkpoint_sha256": loaded.sha256}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "settings"}, indent=1))


if __name__ == "__main__":
    main()
