"""The backends by name: each is imported only when used, so optional extras are needed only then.

Kept apart from ``base.py`` (which the backends import) so that naming a backend here makes no import loop.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from pccd_hpc.materials.backends.base import Backend, DftBackend, DftSettings

# name -> "module:Class", imported lazily so optional extras are only needed when used.
BACKENDS: dict[str, str] = {
    "chgnet": "pccd_hpc.materials.backends.chgnet:CHGNetBackend",
    "vasp": "pccd_hpc.materials.backends.vasp:VaspBackend",
    "gpaw": "pccd_hpc.materials.backends.gpaw:GpawBackend",
}
RELAX_BACKENDS = ("chgnet", "vasp")
"""What validate relaxes with (its ``--backend``)."""
DFT_BACKENDS = ("gpaw", "vasp")
"""The DFT codes of followup's steps (its ``--backend``)."""

_EXTRAS = {"gpaw": ("gpaw", "--backend gpaw needs GPAW, the [dft] extra, which is not installed: run "
                            "PCCD_WITH_DFT=1 bash scripts/bootstrap.sh (its build libraries need root), or use --backend vasp")}
"""Backends whose module imports fine but whose code needs an extra: the package to look for, and what to tell."""


def get_backend(name: str, **options: Any) -> Backend:
    """Instantiate validate's backend ``name`` with ``options`` over its defaults."""
    return get_backend_class(name)(**options)


def get_dft_backend(config: DftSettings) -> DftBackend:
    """Followup's DFT backend ``config.backend`` with the campaign's settings."""
    backend = _backend_class(config.backend, DFT_BACKENDS)
    if config.backend == "vasp":
        return backend(config, user_incar_settings=dict(config.vasp_user_incar))
    return backend(config)


def get_backend_class(name: str) -> type[Backend]:
    """Validate's backend class registered as ``name`` (imports its module, which may need an extra)."""
    return _backend_class(name, RELAX_BACKENDS)


def _backend_class(name: str, known: tuple[str, ...]) -> type[Any]:
    if name not in known:
        raise ValueError(f"unknown backend {name!r}; known: {sorted(known)}")
    if name in _EXTRAS and importlib.util.find_spec(_EXTRAS[name][0]) is None:
        raise ValueError(_EXTRAS[name][1])
    module_name, class_name = BACKENDS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"backend {name!r} needs an optional dependency ({err}); try `pip install .[mlip]`") from err
    return getattr(module, class_name)
