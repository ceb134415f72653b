"""Shared fixtures for the validate tests: small real structures and one CHGNet backend per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def chgnet_backend():
    """The real CHGNet backend (bundled weights, offline), loaded once."""
    pytest.importorskip("chgnet")
    from pccd_hpc.materials.backends.registry import get_backend

    return get_backend("chgnet")
