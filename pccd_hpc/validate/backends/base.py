"""The backend interface: what validate needs from an energy/force model.

A new ML potential is a small subclass of ``AseBackend`` that builds an ASE calculator
(see ``chgnet.py``); register it in ``registry.BACKENDS``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from pymatgen.core import Structure

from pccd_hpc.materials.relax import RelaxConfig, RelaxResult, relax_structure

class Backend(ABC):
    """An energy model that validate can relax structures with."""

    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    runs_in_process: ClassVar[bool] = True
    """False for backends whose calculations run as separate cluster jobs (VASP)."""

    def __init__(self, **options: Any) -> None:
        unknown = set(options) - set(self.defaults)
        if unknown:
            raise ValueError(f"backend {self.name!r}: unknown options {sorted(unknown)}; known: {sorted(self.defaults)}")
        self.options: dict[str, Any] = {**self.defaults, **options}

    @abstractmethod
    def relax(self, structure: Structure, config: RelaxConfig, record_id: str) -> RelaxResult:
        """Relax ``structure`` and return its final structure and energy per atom."""


class AseBackend(Backend):
    """A backend defined by an ASE calculator; relaxation is shared (``relax.relax_structure``)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._calculator = None

    @abstractmethod
    def make_calculator(self):
        """Build the ASE calculator (called once per process, then reused)."""

    @property
    def calculator(self):
        """The process's ASE calculator, built on first use."""
        if self._calculator is None:
            self._calculator = self.make_calculator()
        return self._calculator

    def relax(self, structure: Structure, config: RelaxConfig, record_id: str) -> RelaxResult:
        """Relax with the shared guarded ASE loop."""
        return relax_structure(structure, self.calculator, config, record_id)
