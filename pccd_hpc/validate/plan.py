"""What a validate run works on: its paths, and the plan of every job (candidates and references).

Read by every step of the stage (compute, finalize) and by the command line, so it sits below them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymatgen.entries.computed_entries import ComputedStructureEntry

from pccd_hpc.validate.config import ValidateConfig
from pccd_hpc.validate.formation import ElementReferences
from pccd_hpc.validate.hull import ELEMENT_FALLBACK_PREFIX, ReferenceEnergy, chemsys, elemental_fallback_structures, select_references
from pccd_hpc.materials.structure_inputs import InputRejection, load_reference, read_input_structures
from pccd_hpc.validate.record import Job
from pccd_hpc.validate.store import RecordStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValidatePaths:
    """Where validate reads and writes."""

    input: Path
    """Candidates: a CIF folder, a shard folder, or a CSV with a ``cif`` column."""
    out_dir: Path
    """VDIR: records/, results.csv, metrics.json, config.json."""
    reference: Path | None = None
    """Hull reference: structures (relaxed with the backend, cached) or a ComputedStructureEntry JSON,
    compared on the backend's own energy scale. None: the MP-20 DFT hull (``dft_hull.py``), candidates
    on the formation-energy scale through fitted element energies (``formation.py``)."""
    train: Path | None = None
    """Training set, for structural novelty."""
    reference_cache: Path | None = None
    """Folder of cached reference records (default ``VDIR/reference_cache``; the per-user cache for the
    calibration structures of the default hull); share it between runs."""

    def __post_init__(self) -> None:
        for name in ("input", "out_dir", "reference", "train", "reference_cache"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))

    @property
    def hull_reference(self) -> Path | None:
        """The user's reference set for a same-backend hull (None: the MP-20 DFT hull)."""
        return self.reference

    def cache_dir(self, backend: str) -> Path:
        """Reference-cache folder for ``backend`` (energies are only comparable within one backend).

        Default: ``VDIR/reference_cache`` for a user's reference set, the per-user cache
        (``default_cache_root()``) for the calibration structures of the default hull, which every run shares.
        """
        if self.reference_cache is not None:
            return self.reference_cache / backend
        if self.hull_reference is None:
            return default_cache_root() / "calibration" / backend
        return self.out_dir / "reference_cache" / backend


def default_cache_root() -> Path:
    """Per-user cache: ``$PCCD_HPC_CACHE``, else ``$XDG_CACHE_HOME/pccd_hpc``, else ``~/.cache/pccd_hpc``."""
    if os.environ.get("PCCD_HPC_CACHE"):
        return Path(os.environ["PCCD_HPC_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return base / "pccd_hpc"


HULL_DFT, HULL_SAME_BACKEND = "mp20-dft", "same-backend"
"""The two kinds of hull: MP-20 DFT formation energies (default) or a user's set relaxed with the backend."""


@dataclass
class Plan:
    """Every job of the whole run (all tasks), plus reference entries supplied ready-made."""

    candidates: list[Job]
    references: list[Job]
    ready_entries: list[ComputedStructureEntry]
    reference_structures: list[Any]
    hull_kind: str = HULL_SAME_BACKEND
    """``mp20-dft`` (default: the MP-20 DFT hull) or ``same-backend`` (a user's ``--reference`` set)."""
    element_references: ElementReferences | None = None
    """For the DFT hull: the backend's shipped element energies; None while they are to be fitted
    from the calibration jobs in ``references``."""
    calibration_energies: dict[str, float] = field(default_factory=dict)
    """DFT formation energy per atom of each calibration job (by record id)."""
    hull_description: str = ""
    rejections: list[InputRejection] = field(default_factory=list)
    """Inputs that could not be used, each with its reason."""


def select_candidates(found: list[tuple[str, Any]], ids: tuple[str, ...] = (), limit: int | None = None,
                      source: str = "the input") -> list[tuple[str, Any]]:
    """The candidates named in ``ids`` (all when empty), in input order, then the first ``limit`` of them;
    ``ValueError`` naming the ids ``source`` does not hold (with a few that it does)."""
    if ids:
        known = {rid for rid, _ in found}
        unknown = [rid for rid in ids if rid not in known]
        if unknown:
            examples = ", ".join(rid for rid, _ in found[:3]) or "none"
            raise ValueError(f"--ids: {len(unknown)} id(s) not among the candidates of {source}: "
                             f"{', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''} (its ids look like: {examples})")
        wanted = set(ids)
        found = [item for item in found if item[0] in wanted]
    return found if limit is None else found[:limit]


def plan(paths: ValidatePaths, backend: str = "chgnet", ids: tuple[str, ...] = (), limit: int | None = None) -> Plan:
    """Read candidates (only ``ids`` and the first ``limit``, when given) and the reference set; pick references
    in the candidates' chemical systems, adding ASE elemental reference states for elements with no elemental
    phase. Without a reference set, the MP-20 DFT hull: no reference relaxation at all when the backend's element
    energies ship with the package, else the calibration structures, relaxed once and cached."""
    found, rejections = read_input_structures(paths.input)
    found = select_candidates(found, ids, limit, str(paths.input))
    candidates = [Job(rid, "candidate", s) for rid, s in found]
    structures, entries = ([], [])
    if paths.hull_reference is not None:
        structures, entries = load_reference(paths.hull_reference)
    systems = {chemsys(job.structure.composition.elements) for job in candidates}
    if paths.hull_reference is None:
        return _plan_dft(candidates, backend, rejections)
    selected = select_references(systems, structures)
    references = [Job(rid, "reference", s) for rid, s in _dedupe(selected)]
    have_elements = {str(j.structure.composition.elements[0]) for j in references if len(j.structure.composition.elements) == 1}
    have_elements |= {str(e.composition.elements[0]) for e in entries if len(e.composition.elements) == 1}
    # Without any reference set there is no hull (records say so); with one, fill elemental gaps.
    needed = set().union(*systems) if systems and paths.hull_reference is not None else set()
    for symbol, (structure, note) in elemental_fallback_structures(needed - have_elements).items():
        log.warning("hull reference: %s", note)
        references.append(Job(f"{ELEMENT_FALLBACK_PREFIX}{symbol}", "reference", structure, note))
    log.info("validate plan: %d candidates, %d reference structures to compute, %d ready reference entries",
             len(candidates), len(references), len(entries))
    return Plan(candidates, references, entries, [s for _, s in structures], hull_description=f"reference set {paths.hull_reference}",
                rejections=rejections)


def _plan_dft(candidates: list[Job], backend: str, rejections: list[InputRejection]) -> Plan:
    from pccd_hpc.validate import dft_hull
    from pccd_hpc.validate.formation import calibration_structures, shipped_element_references

    shipped = shipped_element_references(backend)
    references: list[Job] = []
    energies: dict[str, float] = {}
    if shipped is None:
        for rid, structure, ef in calibration_structures():
            references.append(Job(rid, "reference", structure, "calibration structure (MP-20, DFT formation energy known)"))
            energies[rid] = ef
        log.warning("no shipped element energies for backend %r at this version: relaxing %d calibration structures "
                    "once (cached per user) to fit them", backend, len(references))
        covered = {str(el) for job in references for el in job.structure.composition.elements}
    else:
        covered = set(shipped.energies_ev_per_atom)
    # An MP-20 element without a fitted energy (a noble gas seen in too few structures) gets the backend's
    # energy of its relaxed ASE reference state: the DFT formation energy of an element's ground state is 0.
    needed = {str(el) for job in candidates for el in job.structure.composition.elements} & dft_hull.dft_hull_elements()
    for symbol, (structure, note) in elemental_fallback_structures(needed - covered).items():
        log.warning("element energy: %s", note)
        references.append(Job(f"{ELEMENT_FALLBACK_PREFIX}{symbol}", "reference", structure, note))
    log.info("validate plan: %d candidates, MP-20 DFT hull, %d reference structures to compute", len(candidates), len(references))
    return Plan(candidates, references, [], [], hull_kind=HULL_DFT, element_references=shipped,
                calibration_energies=energies, hull_description=dft_hull.describe(), rejections=rejections)


def stores_for(config: ValidateConfig, paths: ValidatePaths) -> dict[str, RecordStore]:
    """The candidate record store (VDIR/records) and the backend's reference cache."""
    return {"candidate": RecordStore(paths.out_dir / "records"), "reference": RecordStore(paths.cache_dir(config.backend))}


def _dedupe(items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    seen: set[str] = set()
    out = []
    for rid, s in items:
        if rid not in seen:
            seen.add(rid)
            out.append((rid, s))
    return out
