"""Crystal structure prediction (CSP) scored as the field scores it: match rate and normalised RMSE at k samples.

Protocol (CDVAE, DiffCSP, FlowMM): for each held-out structure the model is given its composition and
number of sites and makes k candidates; a candidate matches when pymatgen's ``StructureMatcher(stol=0.5,
ltol=0.3, angle_tol=10)`` matches it to the true structure, and its RMSE is the matcher's RMS displacement,
normalised by (V/N)^(1/3). Match rate at k: the share of targets with a match among the first k candidates;
RMSE at k: the mean over matched targets of the best match's RMS. "Ranked" orders a target's candidates
by relaxed energy per atom (lowest first) and scores the relaxed structures, so k = 1 ranked is the best
guess ``predict --relax`` gives.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from pymatgen.core import Structure

from pccd_hpc.data.composition import CellComposition, composition_of_structure, decode_candidate
from pccd_hpc.data.roundtrip import structure_matcher
from pccd_hpc.io_utils import atomic_write_json, read_json
from pccd_hpc.materials.energy_ranking import Relaxer, energy_order
from pccd_hpc.model.inpainting import sample_cell_candidates
from pccd_hpc.data.separation import PUSH_APART_FACTOR
from pccd_hpc.model.samplers import DDIM_STEPS, GUIDANCE_SCALE

log = logging.getLogger(__name__)

PEERS_MATCH_AT_1_PCT = {"CDVAE": 33.90, "DiffCSP": 51.49, "FlowMM": 61.39, "Crystalite": 66.05}
"""MP-20 CSP match rates at one sample per composition, as their papers report them."""
PEERS_MATCH_AT_20_PCT = {"DiffCSP": 77.9}
"""MP-20 CSP match rate at 20 samples per composition (DiffCSP)."""


@dataclass(frozen=True)
class CspSettings:
    """How candidates are made and scored; the defaults are ``predict``'s."""

    k: int = 20
    """Candidates per target."""
    steps: int = DDIM_STEPS
    """DDIM steps."""
    guidance: float = GUIDANCE_SCALE
    """Classifier-free guidance scale."""
    push_apart_factor: float | None = PUSH_APART_FACTOR
    """Push-apart after decoding (None: as sampled)."""
    fixed_noise: bool = True
    """Inpainting noise of the element channel drawn once per sample (False: afresh every step)."""
    seed: int = 0
    """Seed of the sampling noise (each target's generator is seeded with (seed, target index))."""

    def __post_init__(self) -> None:
        if self.k < 1 or self.steps < 1:
            raise ValueError(f"k and steps must be >= 1, got k={self.k}, steps={self.steps}")
        if not self.guidance >= 0:
            raise ValueError(f"guidance must be >= 0, got {self.guidance}")


def target_seed(seed: int, index: int) -> int:
    """Seed of target ``index``'s candidates (independent of how targets are split over runs)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0] % (2**63))


def match_rms(candidate: Structure | None, target: Structure, matcher=None) -> float | None:
    """Normalised RMS of ``candidate`` against ``target`` (StructureMatcher stol 0.5, ltol 0.3, angle 10), None
    when they do not match or there is no candidate."""
    if candidate is None:
        return None
    matcher = matcher or structure_matcher()
    try:
        found = matcher.get_rms_dist(candidate, target)
    except (ValueError, np.linalg.LinAlgError) as err:  # degenerate cells make the lattice search fail
        log.debug("matcher failed: %s", err)
        return None
    return None if found is None else float(found[0])


def make_candidates(checkpoint_sampler, cell: CellComposition, settings: CspSettings, codec,
                    index: int) -> list[Structure | None]:
    """``settings.k`` candidate structures (None where one did not decode) for ``cell``, seeded by ``index``."""
    generator = torch.Generator().manual_seed(target_seed(settings.seed, index))
    tensors = sample_cell_candidates(checkpoint_sampler, cell, settings.k, generator, fixed_noise=settings.fixed_noise)
    return [decode_candidate(t, cell, codec, settings.push_apart_factor).structure for t in tensors.numpy()]


def score_target(target: Structure, candidates: Sequence[Structure | None],
                 energies: Sequence[float | None] | None = None,
                 relaxed: Sequence[Structure | None] | None = None) -> dict[str, Any]:
    """One target's row: the RMS of each candidate (None: no match), and with ``energies`` / ``relaxed`` the
    relaxed candidates' energies per atom and RMS."""
    matcher = structure_matcher()
    row: dict[str, Any] = {"formula": target.composition.reduced_formula, "n_sites": len(target),
                           "rms": [match_rms(c, target, matcher) for c in candidates]}
    if energies is not None:
        row["energy_ev_per_atom"] = [None if e is None or not math.isfinite(e) else float(e) for e in energies]
    if relaxed is not None:
        row["rms_relaxed"] = [match_rms(s, target, matcher) for s in relaxed]
    return row


def _at_k(rms_lists: Sequence[Sequence[float | None]], k: int) -> dict[str, Any]:
    best = [min((r for r in rms[:k] if r is not None), default=None) for rms in rms_lists]
    matched = [b for b in best if b is not None]
    n = len(rms_lists)
    return {"k": k, "n_targets": n, "n_matched": len(matched),
            "match_rate_pct": 100.0 * len(matched) / n if n else None,
            "rmse": float(np.mean(matched)) if matched else None}


def csp_summary(rows: Sequence[dict[str, Any]], ks: Sequence[int] = (1, 20)) -> dict[str, Any]:
    """Match rate and RMSE at each k, as sampled in sample order, and (where rows carry energies) ranked by
    relaxed energy, scoring the relaxed structures; plus the mean wall time per target."""
    summary: dict[str, Any] = {"n_targets": len(rows), "as_sampled": {f"k{k}": _at_k([r["rms"] for r in rows], k)
                                                                      for k in ks}}
    ranked_rows = [r for r in rows if "energy_ev_per_atom" in r and "rms_relaxed" in r]
    if ranked_rows:
        ordered = [[r["rms_relaxed"][i] for i in energy_order(r["energy_ev_per_atom"])] for r in ranked_rows]
        summary["ranked_relaxed"] = {f"k{k}": _at_k(ordered, k) for k in ks}
        as_sampled_ranked = [[r["rms"][i] for i in energy_order(r["energy_ev_per_atom"])] for r in ranked_rows]
        summary["ranked_as_sampled"] = {f"k{k}": _at_k(as_sampled_ranked, k) for k in ks}
        summary["n_ranked_targets"] = len(ranked_rows)
    walls = [r["wall_s"] for r in rows if r.get("wall_s") is not None]
    summary["wall_s_per_target"] = float(np.mean(walls)) if walls else None
    return summary


def run_targets(folder: Path, targets: Sequence[tuple[str, Structure]], checkpoint_sampler, codec,
                settings: CspSettings, relax: Relaxer | None = None,
                identity: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Score every ``(id, structure)`` target, one ``folder/target-<index>.json`` each; a re-run reuses the rows
    made for the same target, k and ``identity`` (e.g. checkpoint and code hashes, settings), and redoes others."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, (record_id, target) in enumerate(targets):
        path = folder / f"target-{index:05d}.json"
        if path.exists():
            try:
                row = read_json(path, "CSP target row")
                if (row.get("id") == record_id and len(row.get("rms", [])) == settings.k
                        and row.get("identity") == identity):
                    rows.append(row)
                    continue
            except ValueError:
                pass  # damaged: redone
        started = time.perf_counter()
        cell = composition_of_structure(target)
        candidates = make_candidates(checkpoint_sampler, cell, settings, codec, index)
        energies = relaxed = None
        if relax is not None:
            pairs = [relax(c, f"{record_id}-{i}") if c is not None else (None, None) for i, c in enumerate(candidates)]
            relaxed, energies = [p[0] for p in pairs], [p[1] for p in pairs]
        row = {"id": record_id, **score_target(target, candidates, energies, relaxed),
               "wall_s": time.perf_counter() - started, "identity": identity}
        atomic_write_json(path, row)
        rows.append(row)
    return rows


CSP_FOLDER = "csp"


def spread_targets(record_ids: Sequence[str], structures: Sequence[Structure], n: int,
                   seed: int) -> list[tuple[str, Structure]]:
    """``n`` held-out targets in a seeded order (all when n exceeds them)."""
    order = np.random.default_rng(seed).permutation(len(structures))[:n]
    return [(record_ids[i], structures[i]) for i in sorted(order.tolist())]


def csp_part(out: Path, loaded, record_ids: Sequence[str], structures: Sequence[Structure], n_targets: int,
             n_ranked: int, settings: CspSettings, relax_steps: int,
             identity: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The evaluation's CSP part: ``n_targets`` held-out structures at k = 1 and k = ``settings.k``, the first
    ``n_ranked`` of them also relaxed and ranked (CHGNet, at most ``relax_steps`` steps). Rows are kept in
    ``out/csp/`` so an interrupted part resumes (only rows made with the same ``identity`` are reused)."""
    from pccd_hpc.sampling.checkpoint_sampler import CheckpointSampler

    targets = spread_targets(record_ids, structures, n_targets, settings.seed)
    sampler = CheckpointSampler(loaded, "ddim", settings.steps, settings.guidance)
    codec = loaded.codec
    rows = run_targets(out / CSP_FOLDER / "as-sampled", targets, sampler, codec, settings, identity=identity)
    ks = sorted({1, settings.k})
    result = csp_summary(rows, ks)
    if n_ranked > 0:
        from pccd_hpc.materials.energy_ranking import make_relaxer

        ranked_rows = run_targets(out / CSP_FOLDER / "ranked", targets[:n_ranked], sampler, codec, settings,
                                  make_relaxer("chgnet", max_steps=relax_steps), identity)
        ranked = csp_summary(ranked_rows, ks)
        result.update({key: ranked[key] for key in ("ranked_relaxed", "ranked_as_sampled", "n_ranked_targets")
                       if key in ranked})
        result["ranked_subset_as_sampled"] = ranked["as_sampled"]
        result["wall_s_per_ranked_target"] = ranked["wall_s_per_target"]
    result["settings"] = {**settings.__dict__, "relax_steps": relax_steps, "n_targets": len(targets),
                          "n_ranked": min(n_ranked, len(targets))}
    result["peers_match_at_1_pct"] = PEERS_MATCH_AT_1_PCT
    result["peers_match_at_20_pct"] = PEERS_MATCH_AT_20_PCT
    return result, len(targets)


def _pct(block: dict | None) -> str:
    if not block or block.get("match_rate_pct") is None:
        return "–"
    rmse = "–" if block.get("rmse") is None else f"{block['rmse']:.3f}"
    return f"{block['match_rate_pct']:.1f} % ({block['n_matched']}/{block['n_targets']}), RMSE {rmse}"


def csp_page_lines(csp: dict[str, Any]) -> list[str]:
    """The evaluation page's CSP section (markdown lines) from the part's result."""
    s = csp["settings"]
    k = f"k{s['k']}"
    lines = ["", f"## Crystal structure prediction ({csp['n_targets']} held-out compositions)", "",
             f"Composition and number of sites given; element channel inpainted; DDIM-{s['steps']}, guidance "
             f"{s['guidance']}, push-apart {s['push_apart_factor']}; StructureMatcher stol 0.5, ltol 0.3, angle 10°; "
             "RMSE normalised by (V/N)^(1/3), over matched targets.", "",
             f"| | k = 1 | k = {s['k']} |", "|---|---|---|",
             f"| as sampled | {_pct(csp['as_sampled'].get('k1'))} | {_pct(csp['as_sampled'].get(k))} |"]
    if "ranked_relaxed" in csp:
        n = csp["n_ranked_targets"]
        lines += [f"| as sampled, the {n} ranked targets | {_pct(csp['ranked_subset_as_sampled'].get('k1'))} | "
                  f"{_pct(csp['ranked_subset_as_sampled'].get(k))} |",
                  f"| ranked by CHGNet energy (≤ {s['relax_steps']} steps), relaxed structures | "
                  f"{_pct(csp['ranked_relaxed'].get('k1'))} | {_pct(csp['ranked_relaxed'].get(k))} |"]
    peers = ", ".join(f"{name} {v:.2f} %" for name, v in csp["peers_match_at_1_pct"].items())
    lines += ["", f"Peers on MP-20 (their test split, k = 1): {peers}; k = 20: DiffCSP 77.9 %.",
              f"Wall time per composition: {csp['wall_s_per_target']:.1f} s as sampled"
              + (f", {csp['wall_s_per_ranked_target']:.1f} s with ranking" if csp.get("wall_s_per_ranked_target") else "")
              + "."]
    return lines


def run_csp_part(out: Path, config, loaded, heldout, heldout_digest: str) -> dict[str, Any]:
    """The evaluation's ``csp`` part record for an :class:`~pccd_hpc.evaluate.config.EvaluateConfig` (reused when
    the checkpoint, data, settings and code are the same)."""
    from pccd_hpc.evaluate.parts import code_digest, run_part

    settings = CspSettings(k=config.csp_k, steps=config.steps, guidance=config.guidance,
                           push_apart_factor=config.push_apart_factor, seed=config.seed)
    part_settings = {"data_sha256": heldout_digest, **settings.__dict__, "n_targets": config.csp_targets,
                     "n_ranked": config.csp_ranked, "relax_steps": config.csp_relax_steps,
                     "code_sha256": code_digest(__name__)}  # every module the CSP part can import
    identity = {"checkpoint_sha256": loaded.sha256, **part_settings}
    return run_part(out, "csp", loaded.sha256, part_settings,
                    lambda: csp_part(out, loaded, heldout.record_ids, heldout.structures, config.csp_targets,
                                     config.csp_ranked, settings, config.csp_relax_steps, identity))
