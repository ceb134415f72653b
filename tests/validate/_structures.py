"""Small real structures shared by the validate tests (imported as a sibling module)."""

from __future__ import annotations

from pathlib import Path

from pymatgen.core import Lattice, Structure

DATA = Path(__file__).parent / "data"
SHARED_VASP = Path("/work/shared/data/vasp")


def rocksalt_mgo(a: float = 4.21) -> Structure:
    """Primitive rock-salt MgO (2 sites)."""
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]).get_primitive_structure()


def zincblende_mgo(a: float = 4.6) -> Structure:
    """Primitive zinc-blende MgO (2 sites), a higher-energy polymorph."""
    return Structure.from_spacegroup("F-43m", Lattice.cubic(a), ["Mg", "O"], [[0, 0, 0], [0.25, 0.25, 0.25]]).get_primitive_structure()


def diamond_si(a: float = 5.43) -> Structure:
    """Primitive diamond Si (2 sites)."""
    return Structure.from_spacegroup("Fd-3m", Lattice.cubic(a), ["Si"], [[0, 0, 0]]).get_primitive_structure()
