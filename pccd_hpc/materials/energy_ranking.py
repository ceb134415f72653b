"""Relaxed energy per atom as a ranking of candidate structures (predict's best guess, evaluate's ranked CSP).

A relaxation that fails (diverged, timed out, non-finite energy) gives no energy and ranks last.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, Sequence

from pymatgen.core import Structure

# The one place this module names the relaxation code (the validation backends and their settings).
from pccd_hpc.materials.backends.registry import get_backend
from pccd_hpc.materials.relax import RelaxConfig
from pccd_hpc.materials.errors import ValidationFailure

log = logging.getLogger(__name__)

Relaxer = Callable[[Structure, str], "tuple[Structure | None, float | None]"]
"""``relax(structure, record_id) -> (relaxed structure, energy per atom)``; (None, None) when it failed."""


def make_relaxer(backend: str = "chgnet", max_steps: int = 500, fmax_ev_per_ang: float = 0.05,
                 details: dict[str, Any] | None = None) -> Relaxer:
    """A :data:`Relaxer` with the named backend; with ``details`` the last call's ``converged``, ``n_steps``
    and ``reason`` (empty unless it failed) are left in that dict."""
    engine = get_backend(backend)
    config = RelaxConfig(max_steps=max_steps, fmax_ev_per_ang=fmax_ev_per_ang)

    def relax(structure: Structure, record_id: str) -> tuple[Structure | None, float | None]:
        info = details if details is not None else {}
        info.clear()
        try:
            result = engine.relax(structure, config, record_id)
        except ValidationFailure as err:
            log.warning("relaxation of %s failed: %s", record_id, err.message)
            info.update(converged=False, n_steps=None, reason=f"{err.kind}: {err.message}")
            return None, None
        energy = float(result.energy_ev_per_atom)
        if not math.isfinite(energy):
            info.update(converged=False, n_steps=int(result.n_steps), reason="non-finite energy")
            return None, None
        info.update(converged=bool(result.converged), n_steps=int(result.n_steps), reason="")
        return result.structure, energy

    return relax


def energy_order(energies: Sequence[float | None]) -> list[int]:
    """Indices by energy per atom, lowest first; those without an energy last, in their given order."""
    return sorted(range(len(energies)), key=lambda i: (energies[i] is None, energies[i] or 0.0, i))
