"""One style for stage configs (encode, generate, reconstruct, cluster resources): validate, dict, TOML.

Every stage config is a dataclass whose ``__post_init__`` checks its fields with :func:`require`
(a ``ValueError`` naming the field), and every one goes to and from TOML the same way as the
training config (:mod:`pccd_hpc.config`): tables mirror nested dataclasses, unknown keys are
refused, absent keys take the defaults. TOML has no null, so fields that are None are left out
when writing and come back as their default (None).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import tomllib
import typing
from pathlib import Path
from typing import Any, Iterator, Mapping, TypeVar

import tomli_w

from pccd_hpc.io_utils import atomic_write_text

T = TypeVar("T")


def require(ok: bool, name: str, message: str) -> None:
    """Raise ``ValueError("config field 'name': message")`` unless ``ok``."""
    if not ok:
        raise ValueError(f"config field {name!r}: {message}")


@contextlib.contextmanager
def flags_in_errors(flags: Mapping[str, str]) -> Iterator[None]:
    """Re-raise a :func:`require` error about a field that a command-line flag sets as an error naming the flag."""
    try:
        yield
    except ValueError as err:
        match = re.match(r"config field '([^']+)': (.*)", str(err), re.DOTALL)
        if match and match.group(1) in flags:
            raise ValueError(f"{flags[match.group(1)]} {match.group(2)}") from None
        raise


def config_from_dict(klass: type[T], values: dict[str, Any], where: str = "") -> T:
    """Build a validated ``klass`` from plain values (nested dataclasses from nested tables); unknown keys raise."""
    if not isinstance(values, dict):
        raise ValueError(f"config {where or klass.__name__} must be a table, got {type(values).__name__}")
    hints = typing.get_type_hints(klass)
    fields = {f.name for f in dataclasses.fields(klass)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f"config {where or klass.__name__}: unknown field(s) {unknown}")
    kwargs = {}
    for name, value in values.items():
        kind = hints.get(name)
        if dataclasses.is_dataclass(kind) and isinstance(value, dict):
            value = config_from_dict(kind, value, f"{where}.{name}" if where else name)
        kwargs[name] = value
    return klass(**kwargs)


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dicts and lists (JSON- and TOML-safe apart from None, which :func:`save_config_toml` drops)."""
    return plain(dataclasses.asdict(config))


def save_config_toml(config: Any, path: str | Path) -> None:
    """Write a stage config as TOML, atomically."""
    atomic_write_text(path, tomli_w.dumps(_without_none(config_to_dict(config))))


def load_config_toml(klass: type[T], path: str | Path) -> T:
    """Read a stage config of type ``klass`` from a TOML file (``ValueError`` naming the file when it is invalid)."""
    try:
        with open(path, "rb") as fh:
            values = tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML: {err}") from err
    try:
        return config_from_dict(klass, values)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {err}") from err


def plain(obj: Any) -> Any:
    """Nested dicts with tuples turned into lists (TOML-, JSON- and ``weights_only``-safe)."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def _without_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _without_none(v) for k, v in obj.items() if v is not None}
    return obj
