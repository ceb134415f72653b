"""Space groups of crystal structures (spglib through pymatgen) at one stated tolerance, and the CIFs that carry them.

Every space group this package reports is found with ``SYMPREC_ANG`` (0.1 Å, spglib's distance
tolerance) and ``ANGLE_TOLERANCE_DEG`` (5°), pymatgen's own defaults, so figures from ``generate``,
``validate``, ``evaluate`` and the report can be compared. A structure spglib cannot analyse gets
no space group (None), never an invented P1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable

from pymatgen.core import Structure
from pymatgen.io.cif import CifWriter
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

log = logging.getLogger(__name__)

SYMPREC_ANG = 0.1
"""spglib's distance tolerance (Å) for every space group reported."""
ANGLE_TOLERANCE_DEG = 5.0
"""spglib's angle tolerance (degrees)."""


@dataclass(frozen=True)
class SpaceGroup:
    """A space group as spglib found it: Hermann-Mauguin symbol and International Tables number."""

    symbol: str
    number: int

    @property
    def is_p1(self) -> bool:
        """True for P1 (no symmetry beyond lattice translations)."""
        return self.number == 1


def space_group(structure: Structure, symprec_ang: float = SYMPREC_ANG) -> SpaceGroup | None:
    """``structure``'s space group at ``symprec_ang``; None when spglib cannot analyse it (logged)."""
    try:
        analyzer = SpacegroupAnalyzer(structure, symprec=symprec_ang, angle_tolerance=ANGLE_TOLERANCE_DEG)
        return SpaceGroup(analyzer.get_space_group_symbol(), int(analyzer.get_space_group_number()))
    except (ValueError, TypeError, RuntimeError) as err:  # spglib gives up on degenerate cells
        log.debug("no space group for %s: %s", structure.composition.reduced_formula, err)
        return None


def non_p1_fraction(groups: Iterable[SpaceGroup | None]) -> float | None:
    """Share of the analysed structures that are not P1 (structures without a space group are left out); None if none."""
    found = [g for g in groups if g is not None]
    return sum(not g.is_p1 for g in found) / len(found) if found else None


def cif_with_space_group(structure: Structure, record_id: str, group: SpaceGroup | None,
                         symprec_ang: float = SYMPREC_ANG) -> str:
    """A one-block CIF of ``structure`` exactly as given (every atom listed, symmetry operation x,y,z only),
    with the space group spglib found stated in a comment and in ``_pccd_spglib_*`` items.

    The atoms are not moved onto symmetric positions: the file is the structure the run holds.
    """
    found = "none (spglib could not analyse the cell)" if group is None else f"{group.symbol} (No. {group.number})"
    header = (f"# {record_id}: {structure.composition.reduced_formula}, {len(structure)} sites\n"
              f"# space group {found}, found by spglib at symprec {symprec_ang:g} A and {ANGLE_TOLERANCE_DEG:g} deg;\n"
              "# the atoms are listed in P1 exactly as written by this run (not symmetrised)\n")
    body = str(CifWriter(structure)).replace("# generated using pymatgen\n", "")
    body = body.replace("data_", f"data_{record_id}_", 1)
    items = [f"_pccd_spglib_symprec_ang   {symprec_ang:g}"]
    if group is not None:
        items += [f"_pccd_spglib_space_group_name_H-M   '{group.symbol}'",
                  f"_pccd_spglib_space_group_number   {group.number}"]
    first_line_end = body.index("\n") + 1
    return header + body[:first_line_end] + "\n".join(items) + "\n" + body[first_line_end:]


def symmetrized_cif(structure: Structure, symprec_ang: float = SYMPREC_ANG) -> str | None:
    """A CIF of ``structure`` refined to its space group at ``symprec_ang`` (conventional cell, atoms on
    their symmetric positions, symmetry operations listed); None when spglib cannot analyse it."""
    try:
        return str(CifWriter(structure, symprec=symprec_ang, angle_tolerance=ANGLE_TOLERANCE_DEG))
    except (ValueError, TypeError, RuntimeError) as err:
        log.debug("no symmetrised CIF for %s: %s", structure.composition.reduced_formula, err)
        return None
