"""Chemical systems to generate: explicit element lists and element families expanded to systems.

A system is written ``Mg,Mn,O``; a family token stands for every element of the family, so
``AE,TM,O`` expands to all alkaline-earth + transition-metal oxides (ternaries only: a system
whose tokens resolve to repeated elements is dropped). ``paper`` is the paper's batch: rare
earth, alkaline earth and transition metal cations, two of them from different families, with O.

Family tokens are exact upper-case words (``RE``, ``AE``, ``AM``, ``TM``) or, in any case, with an
``@`` prefix (``@tm``). Element symbols are read case-sensitively first: ``Tm`` is thulium, ``Re``
rhenium, ``Am`` americium (no element symbol is two capitals, so nothing is ambiguous).
"""

from __future__ import annotations

import itertools
from pathlib import Path

from pymatgen.core import Element

from pccd_hpc.data.codec import canonical_element_slots

FAMILIES: dict[str, tuple[str, ...]] = {
    "RE": ("Sc", "Y", "La", "Ce", "Pr", "Nd", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu"),
    "AE": ("Be", "Mg", "Ca", "Sr", "Ba"),
    "AM": ("Li", "Na", "K", "Rb", "Cs"),
    "TM": ("Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Zr", "Nb", "Mo", "Ru", "Rh", "Pd", "Ag", "Cd",
           "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Sn"),
}
PAPER_FAMILY_PAIRS = (("AE", "RE"), ("AE", "TM"), ("RE", "TM"))


def parse_system(text: str) -> tuple[int, ...]:
    """Parse ``"Mg,Mn,O"`` (or ``Mg-Mn-O``) into the canonical 3 element slots (atomic numbers)."""
    tokens = [t.strip() for t in text.replace("-", ",").split(",") if t.strip()]
    if not tokens:
        raise ValueError(f"empty chemical system: {text!r}")
    zs = []
    for token in tokens:
        try:
            zs.append(Element(token).Z)
        except ValueError as err:
            raise ValueError(f"unknown element {token!r} in system {text!r}") from err
    if len(set(zs)) != len(zs):
        raise ValueError(f"repeated element in system {text!r}")
    return tuple(int(z) for z in canonical_element_slots(zs))


def expand_system(text: str) -> list[tuple[int, ...]]:
    """Expand a system that may contain family tokens (RE, AE, AM, TM) or be ``paper``."""
    text = text.strip()
    if text.lower() == "paper":
        out = []
        for first, second in PAPER_FAMILY_PAIRS:
            out += expand_system(f"{first},{second},O")
        return sorted(set(out))
    tokens = [t.strip() for t in text.replace("-", ",").split(",") if t.strip()]
    choices = [family_members(t) or (t,) for t in tokens]
    systems = set()
    for combo in itertools.product(*choices):
        if len(set(combo)) == len(combo):
            systems.add(parse_system(",".join(combo)))
    if not systems:
        raise ValueError(f"system {text!r} expands to nothing")
    return sorted(systems)


def family_members(token: str) -> tuple[str, ...] | None:
    """The elements of family ``token`` (``TM`` or ``@tm``), or None when it is not a family token.

    Only an exact upper-case name or an ``@``-prefixed one is a family: ``Tm``, ``Re`` and ``Am``
    are the elements thulium, rhenium and americium.
    """
    if token.startswith("@"):
        name = token[1:].upper()
        if name not in FAMILIES:
            raise ValueError(f"unknown element family {token!r}; known: {', '.join('@' + f for f in sorted(FAMILIES))}")
        return FAMILIES[name]
    return FAMILIES.get(token) if token.isupper() else None


def read_systems(elements: list[str] | None, systems_file: str | None) -> list[tuple[int, ...]]:
    """Collect systems from ``--elements`` values and a ``--systems`` file (one per line, # comments)."""
    texts = list(elements or [])
    if systems_file:
        path = Path(systems_file)
        if not path.is_file():
            raise FileNotFoundError(f"systems file not found: {systems_file}")
        texts += [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    texts = [t for t in texts if t]
    if not texts:
        raise ValueError("give at least one chemical system (--elements Mg,Mn,O or --systems FILE)")
    seen: dict[tuple[int, ...], None] = {}
    for text in texts:
        for system in expand_system(text):
            seen.setdefault(system, None)
    return list(seen)


def system_label(slots: tuple[int, ...]) -> str:
    """``(12, 25, 8)`` -> ``"Mg-Mn-O"`` (distinct elements, slot order)."""
    distinct = list(dict.fromkeys(slots))
    return "-".join(Element.from_Z(z).symbol for z in distinct)
