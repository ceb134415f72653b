"""A backend's energy on the DFT formation-energy scale, through fitted per-element reference energies.

An ML potential (or any backend) gives a total energy ``E`` per atom on its own scale. With one
reference energy ``mu_el`` per element, the formation energy per atom is
``E_f = E - sum_el x_el * mu_el`` (``x_el``: atom fractions). The ``mu_el`` are fitted by least
squares so that the backend's relaxed energies of real Materials Project structures reproduce their
DFT formation energies; the fit absorbs the backend's systematic error per element (CHGNet's
elemental phases alone would not: its errors on compounds are correlated by element). A robust
refit drops structures whose residual exceeds ``OUTLIER_MADS`` median absolute deviations (a
relaxation into another minimum, a magnetic state the potential misses), so that a few outliers do
not shift an element's energy; the provenance records how many were dropped.

The package ships fitted values for its default backend (``data/element_references.json``); any
other backend, or another version, fits its own once from the shipped calibration structures
(``data/calibration_structures.json.gz``), relaxed like every reference and cached per user.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from pymatgen.core import Composition, Lattice, Structure

log = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parent / "data"
SHIPPED_REFERENCES = DATA / "element_references.json"
CALIBRATION_STRUCTURES = DATA / "calibration_structures.json.gz"
CALIBRATION_ID_PREFIX = "calibration:"
OUTLIER_MADS = 6.0
MIN_STRUCTURES_PER_ELEMENT = 1


@dataclass(frozen=True)
class ElementReferences:
    """Per-element reference energies of one backend (eV/atom) and how they were obtained."""

    backend: str
    backend_version: str | None
    energies_ev_per_atom: dict[str, float]
    provenance: dict[str, Any] = field(default_factory=dict)
    """Method, data, counts per element, residuals of the fit."""

    def missing(self, elements: Iterable[Any]) -> list[str]:
        """Elements with no fitted reference energy."""
        return sorted(str(el) for el in elements if str(el) not in self.energies_ev_per_atom)

    def formation_energy_per_atom(self, composition: Composition, energy_ev_per_atom: float) -> float:
        """``E - sum x_el mu_el`` for ``composition`` at the backend energy ``energy_ev_per_atom``."""
        composition = Composition(composition)
        missing = self.missing(composition.elements)
        if missing:
            raise KeyError(f"no fitted {self.backend} reference energy for {', '.join(missing)}")
        total = composition.num_atoms
        offset = sum(amount / total * self.energies_ev_per_atom[str(el)] for el, amount in composition.items())
        return float(energy_ev_per_atom) - float(offset)

    def with_elemental_states(self, energies: dict[str, float]) -> "ElementReferences":
        """A copy with the backend's relaxed elemental-state energies for elements the fit lacks (noted)."""
        added = {el: round(float(e), 6) for el, e in energies.items() if el not in self.energies_ev_per_atom}
        if not added:
            return self
        provenance = {**self.provenance, "elemental_states": sorted(added)}
        return dataclasses.replace(self, energies_ev_per_atom={**self.energies_ev_per_atom, **added}, provenance=provenance)

    def describe(self) -> str:
        """One line for metrics and reports."""
        fit = self.provenance.get("fit", {})
        mae = fit.get("mae_ev_per_atom")
        return (f"{self.backend} {self.backend_version or ''} energies on the DFT formation-energy scale through fitted "
                f"element energies ({fit.get('n_used', '?')} relaxed MP-20 structures"
                f"{f', fit MAE {mae:.3f} eV/atom' if mae is not None else ''})").replace("  ", " ")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ElementReferences":
        """Inverse of :meth:`to_dict`."""
        return cls(backend=str(data["backend"]), backend_version=data.get("backend_version"),
                   energies_ev_per_atom={str(k): float(v) for k, v in data["energies_ev_per_atom"].items()},
                   provenance=dict(data.get("provenance") or {}))


@dataclass(frozen=True)
class CalibrationSample:
    """One relaxed real structure: composition, backend energy per atom, DFT formation energy per atom."""

    record_id: str
    composition: Composition
    energy_ev_per_atom: float
    dft_formation_energy_ev_per_atom: float


def fit_element_references(
    samples: Sequence[CalibrationSample], backend: str, backend_version: str | None, source: str = "",
) -> ElementReferences:
    """Least-squares element energies from ``samples`` with one robust refit (outliers dropped, counted)."""
    if not samples:
        raise ValueError("no calibration structures with an energy: cannot fit element reference energies")
    elements = sorted({str(el) for s in samples for el in s.composition.elements})
    column = {el: i for i, el in enumerate(elements)}
    fractions = np.zeros((len(samples), len(elements)))
    for row, s in enumerate(samples):
        for el, amount in s.composition.items():
            fractions[row, column[str(el)]] = amount / s.composition.num_atoms
    target = np.array([s.energy_ev_per_atom - s.dft_formation_energy_ev_per_atom for s in samples])
    keep = np.ones(len(samples), dtype=bool)
    for _ in range(2):
        mu, *_ = np.linalg.lstsq(fractions[keep], target[keep], rcond=None)
        residual = fractions @ mu - target
        mad = float(np.median(np.abs(residual - np.median(residual)))) or 1e-6
        keep = np.abs(residual) <= OUTLIER_MADS * 1.4826 * mad
    mu, *_ = np.linalg.lstsq(fractions[keep], target[keep], rcond=None)
    residual = fractions @ mu - target
    counts = Counter(str(el) for s, k in zip(samples, keep) if k for el in s.composition.elements)
    energies = {el: round(float(mu[column[el]]), 6) for el in elements if counts[el] >= MIN_STRUCTURES_PER_ELEMENT}
    provenance = {
        "method": "least squares of E_backend - E_f(DFT) on atom fractions, one refit without residuals beyond "
                  f"{OUTLIER_MADS:g} scaled MADs",
        "source": source,
        "fit": {"n_structures": len(samples), "n_used": int(keep.sum()), "n_outliers": int((~keep).sum()),
                "mae_ev_per_atom": round(float(np.mean(np.abs(residual[keep]))), 4),
                "rmse_ev_per_atom": round(float(np.sqrt(np.mean(residual[keep] ** 2))), 4),
                "mae_all_ev_per_atom": round(float(np.mean(np.abs(residual))), 4)},
        "structures_per_element": dict(sorted(counts.items())),
    }
    return ElementReferences(backend, backend_version, energies, provenance)


def installed_backend_version(backend: str) -> str | None:
    """Version of the installed package behind ``backend`` (None when unknown or not importable)."""
    if backend != "chgnet":
        return None
    try:
        import chgnet
    except ImportError:
        return None
    return str(chgnet.__version__)


@functools.lru_cache(maxsize=1)
def _shipped() -> list[dict[str, Any]]:
    if not SHIPPED_REFERENCES.exists():
        return []
    return list(json.loads(SHIPPED_REFERENCES.read_text())["fits"])


def shipped_element_references(backend: str, version: str | None = None) -> ElementReferences | None:
    """The shipped fit for ``backend`` at its installed version (``version`` overrides), else None."""
    version = version if version is not None else installed_backend_version(backend)
    for fit in _shipped():
        if fit["backend"] == backend and version is not None and fit.get("backend_version") == version:
            return ElementReferences.from_dict(fit)
    return None


@functools.lru_cache(maxsize=1)
def _calibration_data() -> dict[str, Any]:
    if not CALIBRATION_STRUCTURES.exists():
        raise FileNotFoundError(f"calibration structures missing: {CALIBRATION_STRUCTURES} (a broken install; reinstall pccd_hpc)")
    with gzip.open(CALIBRATION_STRUCTURES, "rt") as fh:
        return json.load(fh)


def calibration_structures() -> list[tuple[str, Structure, float]]:
    """The shipped calibration set: ``(record id, structure, DFT formation energy per atom)``."""
    return [(f"{CALIBRATION_ID_PREFIX}{e['id']}", Structure(Lattice(e["lattice"]), e["species"], e["frac_coords"]),
             float(e["formation_energy_ev_per_atom"])) for e in _calibration_data()["entries"]]
