"""The backends by name: each is imported only when used, so optional extras are needed only then.

Kept apart from ``base.py`` (which the backends import) so that naming a backend here makes no import loop.
"""

from __future__ import annotations

import importlib
from typing import Any

from pccd_hpc.validate.backends.base import Backend

# name -> "module:Class", imported lazily so optional extras are only needed when used.
BACKENDS: dict[str, str] = {
    "chgnet": "pccd_hpc.validate.backends.chgnet:CHGNetBackend",
    "vasp": "pccd_hpc.validate.backends.vasp:VaspBackend",
}


def get_backend(name: str, **options: Any) -> Backend:
    """Instantiate the backend registered as ``name`` with ``options`` over its defaults."""
    return get_backend_class(name)(**options)


def get_backend_class(name: str) -> type[Backend]:
    """The backend class registered as ``name`` (imports its module, which may need an extra)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; known: {sorted(BACKENDS)}")
    module_name, class_name = BACKENDS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"backend {name!r} needs an optional dependency ({err}); try `pip install .[mlip]`") from err
    return getattr(module, class_name)
