"""What a validate run works on: its paths, and the plan of every job (candidates and references).

Read by every step of the stage (compute, finalize) and by the command line, so it sits below them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymatgen.entries.computed_entries import ComputedStructureEntry

from pccd_hpc.validate.config import ValidateConfig
from pccd_hpc.validate.hull import ELEMENT_FALLBACK_PREFIX, ReferenceEnergy, chemsys, elemental_fallback_structures, select_references
from pccd_hpc.validate.inputs import InputRejection, load_reference, read_input_structures
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
    """Hull reference: structures (relaxed with the backend, cached) or a ComputedStructureEntry JSON.
    None (and no ``train``): the bundled reference set (``validate.reference``)."""
    train: Path | None = None
    """Training set for novelty; also the default hull reference when ``reference`` is None."""
    reference_cache: Path | None = None
    """Folder of cached reference records (default ``VDIR/reference_cache``); share it between runs."""

    def __post_init__(self) -> None:
        for name in ("input", "out_dir", "reference", "train", "reference_cache"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))

    @property
    def hull_reference(self) -> Path | None:
        """The reference set used for the hull."""
        return self.reference if self.reference is not None else self.train

    def cache_dir(self, backend: str) -> Path:
        """Reference-cache folder for ``backend`` (energies are only comparable within one backend).

        Default: ``VDIR/reference_cache`` for a user's reference set, the per-user cache
        (``reference.default_cache_root()``) for the bundled one, which every run shares.
        """
        if self.reference_cache is not None:
            return self.reference_cache / backend
        if self.hull_reference is None:
            from pccd_hpc.validate.reference import default_cache_root

            return default_cache_root() / "hull-reference" / backend
        return self.out_dir / "reference_cache" / backend


@dataclass
class Plan:
    """Every job of the whole run (all tasks), plus reference entries supplied ready-made."""

    candidates: list[Job]
    references: list[Job]
    ready_entries: list[ComputedStructureEntry]
    reference_structures: list[Any]
    ready_references: list[ReferenceEnergy] = field(default_factory=list)
    """Reference energies used as given (the bundled set, when the backend made them)."""
    hull_systems: set[frozenset[str]] | None = None
    """Chemical systems the reference set covers; None: whatever the references span."""
    hull_description: str = ""
    hull_gaps: dict[frozenset[str], str] = field(default_factory=dict)
    """Candidate systems the reference set cannot give a meaningful hull for, with the reason."""
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
    phase. Without a reference set, the bundled one (``validate.reference``) is used for the systems it covers."""
    found, rejections = read_input_structures(paths.input)
    found = select_candidates(found, ids, limit, str(paths.input))
    candidates = [Job(rid, "candidate", s) for rid, s in found]
    structures, entries = ([], [])
    if paths.hull_reference is not None:
        structures, entries = load_reference(paths.hull_reference)
    systems = {chemsys(job.structure.composition.elements) for job in candidates}
    if paths.hull_reference is None:
        return _plan_bundled(candidates, systems, backend, rejections)
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


def _plan_bundled(candidates: list[Job], systems: set[frozenset[str]], backend: str, rejections: list[InputRejection]) -> Plan:
    from pccd_hpc.validate.reference import bundled_references, coverage_gap, covered, default_systems

    hull_systems = default_systems()
    gaps = {s: gap for s in systems if covered(s, hull_systems) and (gap := coverage_gap(s)) is not None}
    inside = {s for s in systems if covered(s, hull_systems) and s not in gaps}
    ready, to_relax, description = bundled_references(inside, backend)
    references = [Job(rid, "reference", s) for rid, s in to_relax]
    log.info("validate plan: %d candidates (%d of %d chemical systems inside the bundled hull set), %d bundled "
             "reference energies, %d reference structures to compute", len(candidates), len(inside), len(systems),
             len(ready), len(references))
    return Plan(candidates, references, [], [], ready_references=ready, hull_systems=hull_systems,
                hull_description=description, rejections=rejections, hull_gaps=gaps)


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
