"""The reconstruction experiment (paper Fig. 1 / Table 1): noise encoded crystals to step t, denoise, compare.

Protocols (always say which one a number comes from):

* ``t = T - 1`` (``--t T`` on the command line): the paper's protocol as its code ran it: start
  from (practically) pure noise with the item's conditions, i.e. conditional sampling, compared
  one-to-one with the item;
* ``t < T`` (e.g. 300): partial-noise reconstruction, the item is really noised and denoised.

Errors: lattice lengths as relative errors (a_pred - a_true) / a_true; coordinates as periodic
differences in fractional units (wrapped to [-0.5, 0.5), so 0 and 1 are the same point) between
atoms matched one-to-one (same species, Hungarian assignment), only where the atom count is right.
The true coordinates are taken in the frame the model was given: a model trained with origin
``anchor`` sees each record shifted so that an atom of its first species sits at the cell centre,
and is compared with the record shifted the same way.
Table 1's "efficiency" is the fraction of errors inside the paper's box limits; for coordinates
the limits are read as fractional differences. ``atom_error_ang`` gives the same matched errors as
Cartesian distances in Angstrom (median and 90th percentile): the precision that bond lengths, and so
plausibility, depend on. ``noisy_input`` scores the noisy tensor itself, x_t / sqrt(alpha_bar_t) decoded
without the model: what the denoiser has to improve on (from little noise, averaging each atom's
block of points already locates it well).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Structure

from pccd_hpc.data.codec import CodecConfig, DecodeResult
from pccd_hpc.data.dataset import ShardDataset
from pccd_hpc.data.roundtrip import coordinate_errors, shifted_structure, structure_matcher
from pccd_hpc.data.separation import decode_separated
from pccd_hpc.data.shards import read_structures
from pccd_hpc.io_utils import atomic_write_json
from pccd_hpc.model.conditioning import band_gap_class
from pccd_hpc.model.diffusion import NoiseSchedule, from_model_space, to_model_space
from pccd_hpc.model.samplers import DDIM_STEPS, GUIDANCE_SCALE
from pccd_hpc.sampling.checkpoint_sampler import CheckpointSampler, LoadedModel
from pccd_hpc.sampling.reconstruction_figure import plot_reconstruction
from pccd_hpc.stage_config import require

log = logging.getLogger(__name__)

# Paper Table 1: efficiency and box limits (relative errors for a, b, c; coordinates x, y, z).
PAPER_TABLE1 = {
    "a": (88.48, -5.12, 3.81), "b": (90.55, -5.23, 3.66), "c": (89.40, -4.90, 3.57),
    "x": (70.83, -6.50, 10.05), "y": (71.60, -3.84, 5.44), "z": (72.02, -4.09, 6.44),
}
PAPER_ATOM_COUNT_ACCURACY = 67.81


@dataclass
class ReconstructConfig:
    """Settings of one reconstruction run."""

    n: int = 1280
    """Records to reconstruct (the first n of a seeded permutation)."""
    t: int = 300
    """Noise level: timestep index in [1, T-1]; T-1 means pure noise (the paper's protocol)."""
    steps: int = DDIM_STEPS
    """Deterministic DDIM steps from t down to 0."""
    guidance: float = GUIDANCE_SCALE
    """Classifier-free guidance scale."""
    batch_size: int = 128
    """Records denoised together."""
    seed: int = 0
    """Seed of the record choice and of the noise."""
    push_apart_factor: float | None = None
    """Decode as ``generate`` does with this push-apart (:func:`pccd_hpc.data.separation.decode_separated`);
    the figures without it are kept under ``as_sampled``. None: no push-apart."""

    def __post_init__(self) -> None:
        for name in ("n", "t", "steps", "batch_size"):
            require(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        require(self.guidance >= 0, "guidance", f"must be >= 0, got {self.guidance}")
        require(self.push_apart_factor is None or 0 < self.push_apart_factor <= 1.5, "push_apart_factor",
                f"must be None or in (0, 1.5], got {self.push_apart_factor}")


def run_reconstruct(loaded: LoadedModel, data_dir: str | Path, out_dir: str | Path, config: ReconstructConfig,
                    label: str = "", codec: CodecConfig | None = None) -> dict:
    """Reconstruct ``config.n`` records of ``data_dir`` from noise level ``t``; write metrics and figures.

    ``codec`` sets the decode-time clustering (default: the checkpoint's codec).
    """
    codec = codec or loaded.codec
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Items are encoded with the site order the model was trained on (a canonical-order model never saw the file order).
    dataset = ShardDataset(data_dir, loaded.config.train.augmentation().frame_only())
    originals = [s for shard in dataset.shards for s in read_structures(shard)]
    order = np.random.default_rng(config.seed).permutation(len(dataset))[: config.n]
    sampler = CheckpointSampler(loaded, "ddim", config.steps, config.guidance)
    schedule = NoiseSchedule(loaded.config.diffusion)
    t = min(config.t, schedule.timesteps - 1)
    gen = torch.Generator().manual_seed(config.seed)
    matcher = structure_matcher()
    rows, rows_as_sampled, rows_noisy = [], [], []
    for start in range(0, len(order), config.batch_size):
        idx = order[start : start + config.batch_size]
        items = [dataset[int(i)] for i in idx]
        x0 = to_model_space(torch.stack([it["x"] for it in items]))
        element_z = torch.stack([it["element_z"] for it in items])
        gaps = torch.stack([it["band_gap_ev"] for it in items])
        cond = sampler.conditions(element_z, None)
        cond.band_gap = band_gap_class(gaps)
        noise = torch.randn(x0.shape, generator=gen)
        x_t = schedule.q_sample(x0, torch.full((len(idx),), t, dtype=torch.long), noise)
        x_hat = from_model_space(sampler.denoise(x_t, t, cond)).cpu().numpy()
        # the baseline: the noisy input itself, rescaled and decoded without the model
        noisy = from_model_space(x_t / math.sqrt(float(schedule.alphas_bar[t]))).numpy()
        for k, i in enumerate(idx):
            # the record in the frame the model was given (an anchor-origin model sees it shifted)
            true, z = shifted_structure(originals[int(i)][1], dataset.origin_shift(int(i))), element_z[k].numpy()
            rows.append(_compare(true, decode_separated(x_hat[k], z, codec, config.push_apart_factor).result, matcher))
            if config.push_apart_factor is not None:
                rows_as_sampled.append(_compare(true, decode_separated(x_hat[k], z, codec, None).result, matcher))
            rows_noisy.append(_compare(true, decode_separated(noisy[k], z, codec, None).result, matcher))
        log.info("reconstructed %d/%d", len(rows), len(order))
    metrics = _aggregate(rows, t, schedule.timesteps, label, config)
    metrics["decode"] = {"method": codec.decode_method, "cluster_eps_ang": codec.cluster_eps_ang,
                         "cluster_min_points": codec.cluster_min_points, "block_rms_ang": codec.block_rms_ang,
                         "push_apart_factor": config.push_apart_factor}
    if rows_as_sampled:  # the same tensors decoded without the push-apart
        plain = _aggregate(rows_as_sampled, t, schedule.timesteps, label, config)
        metrics["as_sampled"] = {k: plain[k] for k in ("valid_fraction", "atom_count_accuracy_pct", "match_rate_pct",
                                                       "rms_mean", "box_fraction_pct", "atom_error_ang")}
    noisy_metrics = _aggregate(rows_noisy, t, schedule.timesteps, label, config)
    metrics["noisy_input"] = {k: noisy_metrics[k] for k in ("valid_fraction", "atom_count_accuracy_pct", "match_rate_pct",
                                                            "atom_error_ang")}
    atomic_write_json(out / "reconstruct.json", metrics)
    plot_reconstruction(rows, out / "reconstruct.png", title=f"{label} t={t}")
    return metrics


def _compare(true: Structure, result: DecodeResult, matcher) -> dict:
    row: dict = {"n_true": len(true), "valid": result.valid, "reason": result.reason or "",
                 "abc_true": list(true.lattice.abc)}
    if result.structure is None:
        return row
    pred = result.structure
    row.update(n_pred=len(pred), abc_pred=list(pred.lattice.abc))
    if len(pred) == len(true):
        errors = coordinate_errors(true, pred)
        if errors is not None:
            row["coord_errors"] = errors.tolist()
            row["coord_errors_ang"] = np.linalg.norm(errors @ true.lattice.matrix, axis=1).tolist()
            row["coords_true"] = true.frac_coords.tolist()
    rms = matcher.get_rms_dist(true, pred)
    row["match"] = rms is not None
    row["rms"] = None if rms is None else float(rms[0])
    return row


def _aggregate(rows: list[dict], t: int, timesteps: int, label: str, config: ReconstructConfig) -> dict:
    n = len(rows)
    valid = [r for r in rows if r["valid"]]
    count_ok = [r for r in valid if r["n_pred"] == r["n_true"]]
    metrics = {
        "label": label, "t": t, "timesteps": timesteps, "protocol": "pure noise (paper)" if t >= timesteps - 1 else "partial noise",
        "n": n, "ddim_steps": config.steps, "guidance": config.guidance,
        "valid_fraction": len(valid) / n,
        "atom_count_accuracy_pct": 100 * len(count_ok) / n,
        "match_rate_pct": 100 * sum(bool(r.get("match")) for r in rows) / n,
        "rms_mean": float(np.mean([r["rms"] for r in rows if r.get("rms") is not None])) if any(r.get("rms") is not None for r in rows) else None,
        "paper": {"atom_count_accuracy_pct": PAPER_ATOM_COUNT_ACCURACY, "table1": {k: v[0] for k, v in PAPER_TABLE1.items()}},
    }
    table = {}
    for axis, name in enumerate("abc"):
        rel = np.array([(r["abc_pred"][axis] - r["abc_true"][axis]) / r["abc_true"][axis] for r in valid]) * 100
        _, low, high = PAPER_TABLE1[name]
        table[name] = 100 * float(np.sum((rel >= low) & (rel <= high))) / n if n else 0.0
    coords = [np.array(r["coord_errors"]) for r in count_ok if "coord_errors" in r]
    all_err = np.concatenate(coords) * 100 if coords else np.zeros((0, 3))
    n_atoms_total = sum(r["n_true"] for r in rows)
    for axis, name in enumerate("xyz"):
        _, low, high = PAPER_TABLE1[name]
        inside = np.sum((all_err[:, axis] >= low) & (all_err[:, axis] <= high)) if len(all_err) else 0
        table[name] = 100 * float(inside) / max(n_atoms_total, 1)
    metrics["box_fraction_pct"] = table
    metrics["coordinate_mae_frac"] = float(np.abs(all_err / 100).mean()) if len(all_err) else math.nan
    # how far each matched atom is from where it belongs, in Angstrom (what bond lengths, hence plausibility, feel)
    ang = np.concatenate([r["coord_errors_ang"] for r in count_ok if "coord_errors_ang" in r] or [np.zeros(0)])
    metrics["atom_error_ang"] = ({"median": float(np.median(ang)), "p90": float(np.percentile(ang, 90)), "n_atoms": int(len(ang))}
                                 if len(ang) else None)
    return metrics
