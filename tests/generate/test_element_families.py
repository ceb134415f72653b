"""Element symbols that spell a family name (Tm, Re, Am) are elements; families are exact tokens."""

from __future__ import annotations

import pytest
from pymatgen.core import Element

from pccd_hpc.generate.systems import FAMILIES, expand_system, read_systems


def _symbols(system: tuple[int, ...]) -> set[str]:
    return {Element.from_Z(z).symbol for z in system}


@pytest.mark.parametrize("element", ["Tm", "Re", "Am"])
def test_element_symbols_are_not_families(element: str) -> None:
    systems = expand_system(f"{element},Fe,O")
    assert len(systems) == 1
    assert _symbols(systems[0]) == {element, "Fe", "O"}


@pytest.mark.parametrize("token,family", [("TM", "TM"), ("RE", "RE"), ("AM", "AM"), ("@tm", "TM"), ("@Re", "RE")])
def test_family_tokens_expand(token: str, family: str) -> None:
    systems = expand_system(f"{token},O")
    assert {frozenset(_symbols(s)) for s in systems} == {frozenset({el, "O"}) for el in FAMILIES[family]}


def test_unknown_family_and_lower_case_token_are_errors() -> None:
    with pytest.raises(ValueError, match="@XY"):
        expand_system("@XY,O")
    with pytest.raises(ValueError, match="tm"):
        read_systems(["tm,O"], None)
