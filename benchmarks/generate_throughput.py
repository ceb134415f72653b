"""Generation throughput: structures/s end to end (sampling + decoding + writing) with a checkpoint.

Usage: python benchmarks/generate_throughput.py [--checkpoint CKPT] [--n-ddim 256] [--n-ddpm 16]
       [--ddim-steps 50 20] [--threads 2] [--push-apart-factor 0.8 | --no-push-apart]

Runs the real `generate` stage into temporary folders for DDIM (each requested step count) and
ancestral DDPM (all T steps, on fewer samples), and prints samples/s, the valid fraction (0.5 A rule), the plausible fraction (every bond >= 0.7 x the sum of
covalent radii) as sampled and as written after generate's push-apart (its default 0.8) and the
projected wall time of `generate --n 10000` on this machine. Default checkpoint: the bundled model.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import torch

from pccd_hpc.generate.plan import GeneratePlan
from pccd_hpc.sampling.decoding import default_decode_codec
from pccd_hpc.sampling.checkpoint_sampler import default_checkpoint, load_model
from pccd_hpc.generate.stage import run_generate
from pccd_hpc.generate.systems import read_systems


def measure(checkpoint: str, n: int, sampler: str, steps: int, batch: int, push_apart_factor: float | None) -> dict:
    """Run one generation of ``n`` samples with generate's decode defaults; return its summary plus wall time."""
    loaded = load_model(checkpoint)
    plan = GeneratePlan(n=n, systems=read_systems(["paper"], None), checkpoint=checkpoint,
                        checkpoint_sha256=loaded.sha256, sampler=sampler, steps=steps, batch_size=batch,
                        seed=0, n_tasks=1,
                        codec=default_decode_codec(loaded.codec).to_dict(),
                        push_apart_factor=push_apart_factor)
    out = tempfile.mkdtemp(prefix="pccd-genbench-")
    t0 = time.perf_counter()
    summary = run_generate(plan, out)
    summary["wall_s"] = time.perf_counter() - t0
    shutil.rmtree(out)
    return summary


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--n-ddim", type=int, default=256)
    parser.add_argument("--n-ddpm", type=int, default=16)
    parser.add_argument("--ddim-steps", type=int, nargs="+", default=[50, 20])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--push-apart-factor", type=float, default=0.8)
    parser.add_argument("--no-push-apart", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    checkpoint = args.checkpoint or str(default_checkpoint())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    loaded = load_model(checkpoint)
    print(f"checkpoint {checkpoint} (step {loaded.step}), device {device}, {args.threads} threads")
    runs = [("ddim", s, args.n_ddim) for s in args.ddim_steps] + [("ddpm", 1000, args.n_ddpm)]
    for sampler, steps, n in runs:
        s = measure(checkpoint, n, sampler, steps, args.batch_size, None if args.no_push_apart else args.push_apart_factor)
        rate = s["n_generated"] / s["wall_s"]
        label = f"{sampler.upper()}-{steps}"
        print(f"{label:9s} n={n:5d}: {rate:8.2f} structures/s, valid {100 * s['valid_fraction']:5.1f} %, "
              f"plausible as sampled {100 * s['plausible_fraction_as_sampled']:5.1f} %, "
              f"as written {100 * s['plausible_fraction']:5.1f} % (push-apart {s['push_apart_factor']}), "
              f"10 000 structures in {10000 / rate / 60:8.1f} min")


if __name__ == "__main__":
    main()
