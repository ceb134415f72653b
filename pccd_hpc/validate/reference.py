"""The bundled hull reference set: validate has a hull with no extra flag.

``data/hull_reference.json.gz`` (built by ``reference_build.py``) holds Materials Project
structures from MP-20 in the chemical systems the package generates by default (the paper's
RE/AE/TM oxides) plus a phase of every element, each relaxed once with CHGNet, with its energy
and the CHGNet version that made it. When the installed default backend has that version the
energies are used as they are; any other backend (or version) relaxes the same structures
itself, once per user (cached under ``default_cache_root()``), so energies always share a scale.
"""

from __future__ import annotations

import functools
import gzip
import json
import logging
import os
from pathlib import Path
from typing import Any

from pymatgen.core import Composition, Element, Lattice, Structure

from pccd_hpc.validate.hull import ReferenceEnergy, chemsys

log = logging.getLogger(__name__)

BUNDLED_REFERENCE = Path(__file__).resolve().parent / "data" / "hull_reference.json.gz"


@functools.lru_cache(maxsize=2)
def load_bundled_reference(path: Path = BUNDLED_REFERENCE) -> dict[str, Any]:
    """The bundled set: header fields (backend, backend_version, selection, ...) and ``entries``."""
    if not path.exists():
        raise FileNotFoundError(f"bundled hull reference missing: {path} (a broken install; reinstall pccd_hpc)")
    with gzip.open(path, "rt") as fh:
        return json.load(fh)


def entry_structure(entry: dict[str, Any]) -> Structure:
    """The relaxed structure of one bundled entry."""
    return Structure(Lattice(entry["lattice"]), entry["species"], entry["frac_coords"])


def default_systems() -> set[frozenset[str]]:
    """The chemical systems the bundled set covers: those ``generate`` makes by default (``paper``)."""
    from pccd_hpc.generate.systems import expand_system

    return {frozenset(Element.from_Z(z).symbol for z in slots) for slots in expand_system("paper")}


def covered(system: frozenset[str], systems: set[frozenset[str]]) -> bool:
    """True when ``system`` lies inside one of ``systems`` (all its competing phases are in the set)."""
    return any(system <= s for s in systems)


def coverage_gap(system: frozenset[str], data: dict[str, Any] | None = None) -> str | None:
    """Why the bundled set cannot give a meaningful hull for an oxide ``system``: a cation with no
    binary oxide in the set leaves a whole edge of the hull empty (a generated Mg2ScO4 once sat
    1.2 eV/atom "below the hull" for want of Sc2O3). None when every cation has one."""
    if "O" not in system or len(system) < 2:
        return None
    data = data or load_bundled_reference()
    with_oxide = {el for e in data["entries"] if len(set(e["species"])) == 2 and "O" in e["species"]
                  for el in set(e["species"]) - {"O"}}
    missing = sorted(el for el in system - {"O"} if el not in with_oxide)
    if missing:
        return f"no binary oxide of {', '.join(missing)} in the bundled reference set"
    return None


def installed_backend_version(backend: str) -> str | None:
    """Version of the installed package behind ``backend`` (None when not importable)."""
    if backend != "chgnet":
        return None
    try:
        import chgnet
    except ImportError:
        return None
    return str(chgnet.__version__)


def default_cache_root() -> Path:
    """Per-user cache: ``$PCCD_HPC_CACHE``, else ``$XDG_CACHE_HOME/pccd_hpc``, else ``~/.cache/pccd_hpc``."""
    if os.environ.get("PCCD_HPC_CACHE"):
        return Path(os.environ["PCCD_HPC_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return base / "pccd_hpc"


def bundled_references(
    candidate_systems: set[frozenset[str]], backend: str
) -> tuple[list[ReferenceEnergy], list[tuple[str, Structure]], str]:
    """Bundled references for the candidates' systems: ``(ready energies, structures to relax, description)``.

    Ready energies when ``backend`` is the one that made them (same version); otherwise the
    structures, for the backend to relax and cache.
    """
    data = load_bundled_reference()
    wanted = [e for e in data["entries"] if any(frozenset(e["species"]) <= s for s in candidate_systems)]
    version = installed_backend_version(backend)
    same = backend == data["backend"] and version == data["backend_version"]
    description = (f"bundled reference set ({data['n_entries']} MP-20 phases + elements, {data['backend']} "
                   f"{data['backend_version']} energies){'' if same else f', relaxed again with {backend}'}")
    if same:
        ready = [ReferenceEnergy(f"bundled:{e['id']}", Composition(e["formula"]), float(e["energy_ev_per_atom"])) for e in wanted]
        return ready, [], description
    if backend == data["backend"]:
        log.warning("bundled hull references were made with %s %s, installed %s: relaxing them again (cached per user)",
                    data["backend"], data["backend_version"], version)
    return [], [(f"bundled:{e['id']}", entry_structure(e)) for e in wanted], description


def system_of(composition: Composition) -> frozenset[str]:
    """The chemical system of a composition."""
    return chemsys(composition.elements)
