"""De novo generation over the held-out chemical systems, and the metrics of what comes out.

Every figure counts over ALL samples unless its name says otherwise; a tensor that does not
decode is a failure, never dropped. Two validity notions are reported:

* ``decode_valid``: the codec accepts the tensor (a lattice, 1..16 atoms, no two atoms closer than
  0.5 A) -- the field's "structural validity";
* ``valid``: decode_valid AND every requested element has an atom, exactly the rule the
  ``generate`` stage applies before it keeps a sample (``decode_tensor(..., require_all_elements=True)``
  with the generate stage's decode settings, see :func:`generate_decode_codec`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
import torch
from pymatgen.core import Structure

from pccd_hpc.data.codec import CodecConfig, DecodeResult, decode_tensor
from pccd_hpc.data.geometry import PLAUSIBLE_BOND_FACTOR, is_supercell, min_bond_ratio, shortest_distance_ang
from pccd_hpc.data.separation import decode_separated
from pccd_hpc.data.symmetry import non_p1_fraction, space_group
from pccd_hpc.data.shards import list_shards, read_structures
from pccd_hpc.progress import Progress
from pccd_hpc.sampling.checkpoint_sampler import CheckpointSampler, LoadedModel
from pccd_hpc.sampling.decoding import default_decode_codec
from pccd_hpc.materials.metrics import compositional_validity, uniqueness_flags, wasserstein_distances

log = logging.getLogger(__name__)

SHORT_BOND_ANG = 1.0
"""A generated structure whose shortest interatomic distance is below this is reported."""


@dataclass
class HeldOut:
    """The held-out records: ids, structures (the encoded cells) and element slots (N, 3)."""

    record_ids: list[str]
    structures: list[Structure]
    element_z: np.ndarray


def load_heldout(data_dir: Path) -> HeldOut:
    """Read every record of a shard folder (ids, structures, element slots)."""
    shards = list_shards(data_dir)
    if not shards:
        raise FileNotFoundError(f"no shard-*.h5 files in {data_dir}")
    ids, structures, slots = [], [], []
    for shard in shards:
        with h5py.File(shard, "r") as h5:
            element_z = h5["element_z"][:].astype(np.int64)
            if "valid" in h5:
                element_z = element_z[h5["valid"][:].astype(bool)]
        records = read_structures(shard)
        if len(records) != len(element_z):
            raise ValueError(f"{shard}: {len(records)} structures but {len(element_z)} element-slot rows")
        ids += [rid for rid, _ in records]
        structures += [s for _, s in records]
        slots.append(element_z)
    return HeldOut(ids, structures, np.concatenate(slots))


def cycled_systems(element_z: np.ndarray, n: int, seed: int) -> np.ndarray:
    """(n, 3) element slots: the rows of ``element_z`` in a seeded random order, repeated to length n."""
    if len(element_z) == 0:
        raise ValueError("no held-out element slots to sample for")
    order = np.random.default_rng(seed).permutation(len(element_z))
    return element_z[np.resize(order, n)]


def _batch_seed(seed: int, batch: int) -> int:
    return int(np.random.SeedSequence([seed, batch]).generate_state(1, dtype=np.uint64)[0] % (2**63))


def sample_tensors(loaded: LoadedModel, systems: np.ndarray, sampler: str, steps: int, guidance: float,
                   seed: int, batch_size: int, device: str = "cpu") -> tuple[np.ndarray, np.ndarray | None]:
    """Codec tensors (n, 3, 128, 3) sampled for ``systems`` (n, 3), unconditioned on band gap; seeded per batch.

    Also the numbers of sites asked for (n,) when the model is conditioned on them (drawn from its
    training distribution), else None.
    """
    model_sampler = CheckpointSampler(loaded, sampler, steps, guidance, device)
    out, asked = [], []
    with Progress("evaluation sampling", len(systems), "sample") as progress:
        for b, start in enumerate(range(0, len(systems), batch_size)):
            element_z = torch.as_tensor(systems[start : start + batch_size], dtype=torch.int64)
            generator = torch.Generator().manual_seed(_batch_seed(seed, b))
            n_sites = model_sampler.site_counts(element_z, generator)
            out.append(model_sampler.sample(element_z, None, generator, n_sites).numpy().astype(np.float32))
            if n_sites is not None:
                asked.append(n_sites.numpy())
            progress.update(len(element_z))
    return np.concatenate(out), (np.concatenate(asked) if asked else None)


def site_count_adherence(samples: Sequence[DecodedSample], requested: np.ndarray) -> dict:
    """How often a sample decodes with the number of sites it asked for (percentages of ALL samples)."""
    if len(samples) != len(requested):
        raise ValueError(f"{len(samples)} samples but {len(requested)} requested site counts")
    hits = [s.structure is not None and len(s.structure) == int(n) for s, n in zip(samples, requested)]
    return {"n": len(samples), "as_requested_pct": _pct(sum(hits), len(samples)),
            "requested_mean": float(np.mean(requested)) if len(requested) else None}


def generate_decode_codec(loaded: LoadedModel) -> CodecConfig:
    """The decode settings of the ``generate`` stage's defaults (the checkpoint's codec, block decoding, 4 points per atom)."""
    return default_decode_codec(loaded.codec)


@dataclass
class DecodedSample:
    """One sample after decoding (``structure`` is None when the codec rejected it)."""

    result: DecodeResult
    requested: tuple[int, ...]

    @property
    def structure(self) -> Structure | None:
        """The decoded structure, or None."""
        return self.result.structure

    @property
    def elements_correct(self) -> bool:
        """Decoded with exactly the requested set of elements."""
        s = self.result.structure
        return s is not None and {site.specie.Z for site in s} == set(self.requested)

    @property
    def valid(self) -> bool:
        """The generate stage's rule: decoded and every requested element present."""
        return self.elements_correct


def decode_samples(tensors: np.ndarray, systems: np.ndarray, codec: CodecConfig) -> list[DecodedSample]:
    """Decode every tensor for its element slots (no element requirement; see :class:`DecodedSample`)."""
    progress = Progress("evaluation decoding", len(tensors), "sample", heartbeat=False)
    samples = []
    for t, z in zip(tensors, systems):
        samples.append(DecodedSample(decode_tensor(t, z, codec), tuple(int(v) for v in z)))
        progress.update()
    progress.close()
    return samples


def push_samples(tensors: np.ndarray, systems: np.ndarray, codec: CodecConfig,
                 factor: float) -> tuple[list[DecodedSample], dict]:
    """The samples as the generate stage writes them with a push-apart (:func:`decode_separated`), and what it moved."""
    pushed, shifts, scales, converged, overlapping = [], [], [], [], 0
    progress = Progress("evaluation push-apart", len(tensors), "sample", heartbeat=False)
    for tensor, z in zip(tensors, systems):
        decoded = decode_separated(tensor, z, codec, factor)
        if decoded.separation is not None:
            overlapping += not decoded.sampled_valid  # decoded only because overlapping atoms are now kept
            shifts.append(decoded.separation.max_shift_ang)
            scales.append(decoded.separation.length_scale)
            converged.append(decoded.separation.converged)
        pushed.append(DecodedSample(decoded.result, tuple(int(v) for v in z)))
        progress.update()
    progress.close()
    stats = {
        "push_apart_factor": factor,
        "n_pushed": len(shifts),
        "n_overlapping_separated": overlapping,
        "converged_pct_of_decoded": _pct(sum(converged), len(converged)),
        "max_shift_ang_median": float(np.median(shifts)) if shifts else None,
        "max_shift_ang_p90": float(np.quantile(shifts, 0.9)) if shifts else None,
        "cell_expanded_pct_of_decoded": _pct(sum(s > 1.0 for s in scales), len(scales)),
    }
    return pushed, stats


def _pct(count: int, total: int) -> float | None:
    return 100.0 * count / total if total else None


def _ratios(structures: Sequence[Structure]) -> list[float | None]:
    """min_bond_ratio per structure; None (not inf) where no pair lies within the cut-off."""
    return [r if math.isfinite(r) else None for r in (min_bond_ratio(s) for s in structures)]


SITE_BINS = ((1, 4), (5, 8), (9, 12), (13, 16))
"""Bins of the number of sites for :func:`plausible_by_sites` (the codec holds 1-16 sites)."""


def plausible_by_sites(structures: Sequence[Structure], ratios: Sequence[float | None],
                       factor: float = PLAUSIBLE_BOND_FACTOR) -> list[dict]:
    """Per bin of :data:`SITE_BINS`: how many ``structures`` have that many sites (count, share) and the plausible share.

    ``ratios`` are :func:`_ratios` of ``structures`` (None counts as plausible: no pair within the cut-off).
    A bin with no structure has ``plausible_pct`` None.
    """
    rows = []
    for low, high in SITE_BINS:
        inside = [r for s, r in zip(structures, ratios) if low <= len(s) <= high]
        rows.append({"sites": f"{low}-{high}", "n": len(inside), "share_pct": _pct(len(inside), len(structures)),
                     "plausible_pct": _pct(sum(r is None or r >= factor for r in inside), len(inside))})
    return rows


def reference_geometry(structures: Sequence[Structure], factor: float = PLAUSIBLE_BOND_FACTOR) -> dict:
    """Plausibility, min-bond-ratio median and short-bond fraction of real (reference) structures."""
    ratios = _ratios(structures)
    finite = [r for r in ratios if r is not None]
    short = [shortest_distance_ang(s) < SHORT_BOND_ANG for s in structures]
    return {
        "n": len(structures),
        "plausible_pct": _pct(sum(r is None or r >= factor for r in ratios), len(structures)),
        "min_bond_ratio_median": float(np.median(finite)) if finite else None,
        "short_bond_pct": _pct(sum(short), len(structures)),
        "supercell_pct": _pct(sum(is_supercell(s) for s in structures), len(structures)),
        "non_p1_pct": _non_p1_pct(structures),
        "by_sites": plausible_by_sites(structures, ratios, factor),
        "min_bond_ratio": ratios,
    }


def denovo_metrics(samples: Sequence[DecodedSample], reference: Sequence[Structure],
                   factor: float = PLAUSIBLE_BOND_FACTOR) -> dict:
    """All de novo figures (percentages of ALL samples unless the key says ``_of_valid``)."""
    n = len(samples)
    decoded = [s for s in samples if s.structure is not None]
    valid = [s.structure for s in samples if s.valid]
    ratios = _ratios([s.structure for s in decoded])
    plausible = [r is None or r >= factor for r in ratios]  # None: no neighbour within 2 r_max, nothing overlaps
    plausible_valid = sum(p for p, s in zip(plausible, decoded) if s.valid)
    short_valid = [shortest_distance_ang(s) < SHORT_BOND_ANG for s in valid]
    smact = [compositional_validity(s) for s in valid]
    unique = uniqueness_flags(valid)
    reasons: dict[str, int] = {}
    for s in samples:
        if s.structure is None:
            reasons[s.result.reason or "unknown"] = reasons.get(s.result.reason or "unknown", 0) + 1
        elif not s.valid:
            reasons["missing_requested_element"] = reasons.get("missing_requested_element", 0) + 1
    finite = [r for r in ratios if r is not None]
    wdist = wasserstein_distances(valid, list(reference)) if valid and reference else {}
    metrics = {
        "n_samples": n,
        "decode_valid_pct": _pct(len(decoded), n),
        "valid_pct": _pct(len(valid), n),
        "element_count_correct_pct": _pct(len(valid), n),
        "plausible_pct": _pct(sum(plausible), n),
        "valid_and_plausible_pct": _pct(plausible_valid, n),
        "plausible_factor": factor,
        "min_bond_ratio_median": float(np.median(finite)) if finite else None,
        "short_bond_pct_of_valid": _pct(sum(short_valid), len(valid)),
        "short_bond_ang": SHORT_BOND_ANG,
        "smact_valid_pct": _pct(sum(smact), n),
        "unique_pct_of_valid": _pct(sum(unique), len(valid)),
        "supercell_pct_of_valid": _pct(sum(is_supercell(s) for s in valid), len(valid)),
        "non_p1_pct_of_valid": _non_p1_pct(valid),
        "n_unique_valid": sum(unique),
        "wdist_density": wdist.get("wdist_density"),
        "wdist_n_elements": wdist.get("wdist_n_elements"),
        "rejection_reasons": reasons,
        "by_sites": plausible_by_sites([s.structure for s in decoded], ratios, factor),  # shares and rates of decoded
        "min_bond_ratio": ratios,
    }
    metrics["not_computed"] = {key: _why_missing(key, n, decoded, valid, finite, reference)
                               for key, value in metrics.items() if value is None}
    metrics["not_computed"].update({f"by_sites.{row['sites']}.plausible_pct": "no decoded sample with that many sites"
                                    for row in metrics["by_sites"] if row["plausible_pct"] is None})
    return metrics


def _non_p1_pct(structures: Sequence[Structure]) -> float | None:
    """Percentage of ``structures`` with a space group other than P1 (spglib at the package's tolerance)."""
    share = non_p1_fraction(space_group(s) for s in structures)
    return None if share is None else 100 * share


def _why_missing(key: str, n: int, decoded: list, valid: list, finite: list, reference: Sequence[Structure]) -> str:
    if n == 0:
        return "no samples"
    if key.startswith("wdist") and not reference:
        return "no reference structures"
    if key == "min_bond_ratio_median":
        return "no decoded sample" if not decoded else "no decoded sample has a pair within 64 A"
    return "no valid sample" if not valid else "not computed"
