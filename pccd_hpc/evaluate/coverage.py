"""CDVAE's coverage metrics COV-R and COV-P (Xie et al., ICLR 2022), with matminer fingerprints.

As CDVAE's ``scripts/eval_utils.py`` (``compute_cov``) defines them:

* structure fingerprint: ``CrystalNNFingerprint.from_preset("ops")`` of every site, averaged over
  the sites (a structure whose fingerprint raises has none);
* composition fingerprint: ``ElementProperty.from_preset("magpie")`` of the composition, normalised
  with CDVAE's fixed per-feature means and standard deviations (``cdvae_comp_scaler.json``), NaN -> 0;
* distances are Euclidean; for each reference the nearest generated structure fingerprint and
  (separately) the nearest generated composition fingerprint, and vice versa;
* COV-R = fraction of reference structures with both nearest distances within the cut-offs;
  COV-P = number of generated structures with both nearest distances within the cut-offs divided
  by the number of ALL generated samples (those without a fingerprint, e.g. failed decodes, count
  as misses), cut-offs 0.4 (structure) and 10 (composition) for MP-20.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
from pymatgen.core import Structure
from scipy.spatial.distance import cdist

from pccd_hpc.progress import Progress

log = logging.getLogger(__name__)

STRUCTURE_CUTOFF_MP20 = 0.4
COMPOSITION_CUTOFF_MP20 = 10.0
_SCALER_FILE = Path(__file__).with_name("cdvae_comp_scaler.json")


@dataclass
class Fingerprints:
    """Fingerprints of N structures; rows where ``ok`` is False hold NaN."""

    structure: np.ndarray
    """(N, 61) site-averaged CrystalNN "ops" fingerprints."""
    composition: np.ndarray
    """(N, 132) raw Magpie composition fingerprints (not normalised)."""
    ok: np.ndarray
    """(N,) bool: the structure fingerprint could be computed."""

    def __len__(self) -> int:
        return int(self.ok.shape[0])

    def save(self, path: Path, key: str) -> None:
        """Write to an ``.npz`` file atomically, tagged with ``key`` (what the rows belong to)."""
        from pccd_hpc.io_utils import atomic_path

        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, structure=self.structure, composition=self.composition, ok=self.ok, key=np.array(key))

    @classmethod
    def load(cls, path: Path, key: str) -> "Fingerprints | None":
        """Read fingerprints saved under ``key``; None when missing, unreadable or for other rows."""
        try:
            with np.load(path) as data:
                if str(data["key"]) != key:
                    return None
                return cls(data["structure"], data["composition"], data["ok"].astype(bool))
        except (OSError, KeyError, ValueError):
            return None


@lru_cache(maxsize=1)
def _featurizers():
    from matminer.featurizers.composition.composite import ElementProperty
    from matminer.featurizers.site.fingerprint import CrystalNNFingerprint

    return CrystalNNFingerprint.from_preset("ops"), ElementProperty.from_preset("magpie")


def fingerprint_structures(structures: Sequence[Structure], label: str = "structures") -> Fingerprints:
    """CrystalNN "ops" (site-averaged) and Magpie fingerprints of each structure; logs the time taken."""
    site_fp, comp_fp = _featurizers()
    n = len(structures)
    struct = np.full((n, len(site_fp.feature_labels())), np.nan)
    comp = np.full((n, len(comp_fp.feature_labels())), np.nan)
    ok = np.zeros(n, dtype=bool)
    started = time.perf_counter()
    progress = Progress(f"fingerprints of {label}", n, "structure", heartbeat=False)
    for i, s in enumerate(structures):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # CrystalNN warns about missing oxidation states on every call
            comp[i] = comp_fp.featurize(s.composition)
            try:
                struct[i] = np.mean([site_fp.featurize(s, k) for k in range(len(s))], axis=0)
                ok[i] = True
            except Exception as err:  # noqa: BLE001 - matminer raises many types; CDVAE counts any as no fingerprint
                log.debug("%s %d: no structure fingerprint (%s)", label, i, err)
        progress.update()
    progress.close()
    elapsed = time.perf_counter() - started
    log.info("fingerprints of %d %s in %.1f s (%.3f s each)", n, label, elapsed, elapsed / max(n, 1))
    return Fingerprints(struct, comp, ok)


def normalise_composition(composition: np.ndarray) -> np.ndarray:
    """CDVAE's composition scaling: (x - mean) / std with its fixed MP-20 statistics, NaN -> 0."""
    scaler = json.loads(_SCALER_FILE.read_text())
    out = (np.asarray(composition, dtype=np.float64) - np.array(scaler["means"])) / np.array(scaler["stds"])
    return np.where(np.isnan(out), 0.0, out)


def coverage(generated: Fingerprints, reference: Fingerprints, n_generated: int,
             structure_cutoff: float = STRUCTURE_CUTOFF_MP20,
             composition_cutoff: float = COMPOSITION_CUTOFF_MP20) -> dict[str, float | int | None]:
    """COV-R, COV-P (fractions) and the mean nearest distances (AMSD/AMCD), CDVAE's definitions.

    ``n_generated`` is the number of ALL generated samples (the COV-P denominator); ``generated`` may
    hold fewer rows (only the decoded ones). Returns None for metrics with nothing to compare.
    """
    if n_generated < len(generated):
        raise ValueError(f"n_generated ({n_generated}) < fingerprint rows ({len(generated)})")
    ref = reference.ok
    gen = generated.ok
    out: dict[str, float | int | None] = {"n_generated": n_generated, "n_generated_fingerprinted": int(gen.sum()),
                                          "n_reference": int(ref.sum()), "structure_cutoff": structure_cutoff,
                                          "composition_cutoff": composition_cutoff}
    if not gen.any() or not ref.any():
        out.update(cov_recall=0.0 if ref.any() else None, cov_precision=0.0 if n_generated and ref.any() else None,
                   amsd_recall=None, amsd_precision=None, amcd_recall=None, amcd_precision=None)
        return out
    struct_d = cdist(generated.structure[gen], reference.structure[ref])
    comp_d = cdist(normalise_composition(generated.composition[gen]), normalise_composition(reference.composition[ref]))
    recall_s, recall_c = struct_d.min(axis=0), comp_d.min(axis=0)
    precision_s, precision_c = struct_d.min(axis=1), comp_d.min(axis=1)
    out.update(
        cov_recall=float(np.mean((recall_s <= structure_cutoff) & (recall_c <= composition_cutoff))),
        cov_precision=float(np.sum((precision_s <= structure_cutoff) & (precision_c <= composition_cutoff)) / n_generated),
        amsd_recall=float(recall_s.mean()), amsd_precision=float(precision_s.mean()),
        amcd_recall=float(recall_c.mean()), amcd_precision=float(precision_c.mean()),
    )
    return out
