"""Size limits of validate, checked before a relaxation starts: the site count and an estimate of its peak memory.

A relaxation's memory is dominated by the force field's graph, which grows with the number of atom
pairs within its cutoff, and, for BFGS, by the dense (3N+9)^2 Hessian. Measured with CHGNet 0.3 on
one CPU thread (forces + stress of rock-salt MgO supercells of 8-64 atoms, peak RSS):
0.28 / 0.55 / 1.11 / 2.14 GB above the loaded model for 8 / 16 / 32 / 64 atoms, i.e. about 0.6 MB per
pair within 5 A, on top of 0.45 GB for the interpreter, torch and the model; a 512-atom cell passed
12 GB before it was stopped (the estimate says 17 GB), and a 10,000-atom cell's BFGS Hessian alone is 7 GB.
"""

from __future__ import annotations

import math

from pymatgen.core import Structure

BASE_BYTES = 450e6
"""Interpreter, torch and the loaded force field."""
BYTES_PER_PAIR = 0.62e6
"""Peak memory per atom pair within ``PAIR_CUTOFF_ANG`` (the force field's graph and its gradients)."""
PAIR_CUTOFF_ANG = 5.0
"""CHGNet's atom-graph cutoff."""
HESSIAN_COPIES = 3
"""BFGS keeps its (3N+9)^2 float64 Hessian and makes about two temporaries of that size per update."""


def estimate_relax_memory_bytes(structure: Structure, optimizer: str = "BFGS") -> int:
    """Estimated peak memory (bytes) of relaxing ``structure`` with an ML force field and ``optimizer``.

    The pair count comes from the density (N^2 x sphere volume / cell volume), so the estimate costs
    nothing even for a cell far too large to relax.
    """
    return estimate_memory_bytes(len(structure), float(structure.volume), optimizer)


def estimate_memory_bytes(n_sites: int, volume_ang3: float, optimizer: str = "BFGS") -> int:
    """Estimated peak memory (bytes) of force calls on a cell of ``n_sites`` in ``volume_ang3``, plus the BFGS
    Hessian when ``optimizer`` is BFGS (``"none"``: force calls only, as for phonon displacements)."""
    pairs = n_sites * n_sites * (4.0 / 3.0) * math.pi * PAIR_CUTOFF_ANG**3 / max(volume_ang3, 1e-6)
    hessian = HESSIAN_COPIES * (3 * n_sites + 9) ** 2 * 8 if optimizer.upper() == "BFGS" else 0
    return int(BASE_BYTES + BYTES_PER_PAIR * pairs + hessian)


def site_limit_problem(n_sites: int, max_sites: int) -> str:
    """The sentence for a structure above the site limit."""
    return f"{n_sites} sites, above the site limit of {max_sites} (--max-sites)"


def size_problem(structure: Structure, max_sites: int, max_memory_gb: float, optimizer: str = "BFGS") -> str | None:
    """Why ``structure`` is too large to relax under these limits (in the command's flags), or None."""
    n = len(structure)
    if n > max_sites:
        return site_limit_problem(n, max_sites)
    need_gb = estimate_relax_memory_bytes(structure, optimizer) / 1e9
    if need_gb > max_memory_gb:
        return (f"relaxing its {n} sites would need about {need_gb:.1f} GB, above the limit of {max_memory_gb:g} GB "
                f"per worker (--max-memory-gb)")
    return None
