"""A composition as the codec sees it: a formula -> element slots, sites per slot and the element channel it fixes.

For crystal structure prediction the formula fixes everything in channel 1 of the codec tensor: the
element slots (canonical order), the number of sites, and which row block belongs to which element
(sites are stored in slot order). Only positions and lattice remain to be sampled, and a tensor is read
back with exactly those sites (:func:`decode_with_sites`), so the composition of every candidate is the
one asked for.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import reduce

import numpy as np
from pymatgen.core import Composition, Element, Structure

from pccd_hpc.data.codec import (
    N_ELEMENT_SLOTS, CodecConfig, DecodeResult, RecordError, block_means, canonical_element_slots, closest_pair_ang,
    decoded_lattice, point_counts,
)

_FORMULA_CHARACTERS = re.compile(r"^[A-Za-z0-9().]+$")


@dataclass(frozen=True)
class CellComposition:
    """One cell's content: ``formula_units`` x the reduced formula, in the codec's slot order."""

    reduced_formula: str
    """pymatgen's reduced formula, e.g. ``Sr2TiO4``."""
    formula_units: int
    """Z: formula units in the cell."""
    element_z: tuple[int, int, int]
    """The three element slots (atomic numbers, canonical order, padded by repeating the last)."""
    slot_counts: tuple[int, ...]
    """Sites of each distinct element, in slot order (one entry per distinct element)."""

    @property
    def n_sites(self) -> int:
        """Sites in the cell."""
        return int(sum(self.slot_counts))

    @property
    def slot_index(self) -> np.ndarray:
        """int64 (n_sites,): the slot of each site, sites in slot order (as the codec stores them)."""
        return np.repeat(np.arange(len(self.slot_counts)), self.slot_counts).astype(np.int64)

    @property
    def label(self) -> str:
        """``Sr2TiO4`` for Z = 1, ``Sr2TiO4-Z2`` otherwise (used in folder names)."""
        return self.reduced_formula if self.formula_units == 1 else f"{self.reduced_formula}-Z{self.formula_units}"


def parse_formula(formula: str) -> Composition:
    """The composition of a written formula; ``ValueError`` naming the formula and why it is not one."""
    text = formula.strip()
    if not text or not _FORMULA_CHARACTERS.match(text):
        raise ValueError(f"{formula!r} is not a chemical formula (letters, digits and brackets only, e.g. Sr2TiO4)")
    try:
        composition = Composition(text)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{formula!r} is not a chemical formula ({err})") from err
    if not composition.elements or composition.num_atoms <= 0:
        raise ValueError(f"{formula!r} has no atoms")
    for element, amount in composition.items():
        if not isinstance(element, Element) or element.Z < 1:
            raise ValueError(f"{formula!r}: {element} is not an element")
        if abs(amount - round(amount)) > 1e-6 or round(amount) < 1:
            raise ValueError(f"{formula!r}: {element} has a fractional amount ({amount:g}); a crystal cell needs whole atoms")
    return composition


def cell_compositions(formula: str, codec: CodecConfig, formula_units: int | None = None) -> list[CellComposition]:
    """The cells the codec can hold for ``formula``: RecordError (with the formula as record) when none fits.

    A formula written with a common factor (``Sr4Ti2O8``) is taken as one cell as written; a reduced
    formula (``Sr2TiO4``) gives every Z with Z x its atoms <= ``codec.max_sites``; ``formula_units``
    asks for exactly that Z.
    """
    composition = parse_formula(formula)
    counts = {el: int(round(amount)) for el, amount in composition.items()}
    if len(counts) > codec.max_elements:
        raise RecordError("too_many_elements", f"{len(counts)} elements ({', '.join(str(e) for e in counts)}); "
                          f"the codec holds at most {codec.max_elements}", formula)
    common = reduce(math.gcd, counts.values())
    unit = {el: n // common for el, n in counts.items()}
    unit_sites = sum(unit.values())
    if formula_units is not None:
        if formula_units < 1:
            raise ValueError(f"--formula-units must be >= 1, got {formula_units}")
        multiples = [formula_units]
    elif common > 1:
        multiples = [common]
    else:
        multiples = list(range(1, codec.max_sites // unit_sites + 1)) or [1]
    fitting = [z for z in multiples if z * unit_sites <= codec.max_sites]
    if not fitting:
        asked = multiples[0] * unit_sites
        raise RecordError("too_many_sites", f"{asked} sites per cell ({multiples[0]} formula unit(s) of "
                          f"{unit_sites} atoms); the codec holds at most {codec.max_sites}", formula)
    slots = canonical_element_slots([el.Z for el in unit])
    distinct = list(dict.fromkeys(int(z) for z in slots))
    by_z = {el.Z: n for el, n in unit.items()}
    reduced = Composition({Element.from_Z(z): by_z[z] for z in distinct}).reduced_formula
    return [CellComposition(reduced, z, tuple(int(v) for v in slots), tuple(z * by_z[e] for e in distinct))
            for z in fitting]


def composition_of_structure(structure: Structure) -> CellComposition:
    """The cell composition of a known structure (its own number of sites), as a CSP target."""
    z_of_site = [site.specie.Z for site in structure]
    slots = canonical_element_slots(z_of_site)
    distinct = list(dict.fromkeys(int(z) for z in slots))
    counts = tuple(z_of_site.count(z) for z in distinct)
    common = reduce(math.gcd, counts)
    return CellComposition(structure.composition.reduced_formula, common, tuple(int(v) for v in slots), counts)


def element_channel(cell: CellComposition, n_points: int) -> np.ndarray:
    """The clean element channel (n_points, 3) of any crystal of this cell composition (one-hot, codec units)."""
    rows = np.repeat(np.arange(cell.n_sites), point_counts(cell.n_sites, n_points))
    channel = np.zeros((n_points, N_ELEMENT_SLOTS), dtype=np.float32)
    channel[np.arange(n_points), cell.slot_index[rows]] = 1.0
    return channel


def decode_with_sites(tensor: np.ndarray, cell: CellComposition, codec: CodecConfig,
                      min_distance_ang: float | None = None) -> DecodeResult:
    """Read ``tensor`` (3, n_points, 3) as a crystal of exactly ``cell``'s sites: block means, slots from the formula.

    Rejections: ``non_finite``, ``degenerate_lattice``, and ``overlapping_atoms`` when two atoms are closer
    than ``min_distance_ang`` (default the codec's; 0 keeps them, e.g. for a push-apart).
    """
    lattice = decoded_lattice(tensor, codec)
    if isinstance(lattice, DecodeResult):
        return lattice
    positions, _ = block_means(np.mod(np.asarray(tensor[0], dtype=np.float64), 1.0), cell.n_sites, lattice.matrix)
    limit = codec.min_distance_ang if min_distance_ang is None else min_distance_ang
    closest = closest_pair_ang(positions, lattice.matrix)
    if closest < limit:
        return DecodeResult(None, "overlapping_atoms", f"two atoms {closest:.2f} A apart", cell.n_sites)
    species = np.asarray(cell.element_z)[cell.slot_index]
    return DecodeResult(Structure(lattice, species.tolist(), positions), None, "", cell.n_sites)


def decode_candidate(tensor: np.ndarray, cell: CellComposition, codec: CodecConfig,
                     push_apart_factor: float | None) -> DecodeResult:
    """Decode ``tensor`` with ``cell``'s sites, then (unless ``push_apart_factor`` is None) push atoms apart
    to that factor x the sum of covalent radii as ``generate`` does; overlap is judged after the push."""
    from pccd_hpc.data.separation import push_apart

    if push_apart_factor is None:
        return decode_with_sites(tensor, cell, codec)
    loose = decode_with_sites(tensor, cell, codec, min_distance_ang=0.0)
    if loose.structure is None:
        return loose
    pushed = push_apart(loose.structure, push_apart_factor).structure
    closest = closest_pair_ang(pushed.frac_coords, pushed.lattice.matrix)
    if closest < codec.min_distance_ang:
        return DecodeResult(None, "overlapping_atoms", f"two atoms {closest:.2f} A apart after the push-apart",
                            cell.n_sites)
    return DecodeResult(pushed, None, "", cell.n_sites)
