"""``io_utils.json_safe``: the one NaN-to-null conversion every stage's JSON goes through."""

import json
import math
from pathlib import Path

import numpy as np

from pccd_hpc.io_utils import json_safe


def test_non_finite_values_become_null_and_are_explained() -> None:
    not_computed: dict[str, str] = {}
    data = {"a": {"b": float("nan"), "c": np.float32(1.5)}, "d": [1.0, np.float64(np.inf)], "e": Path("/x/y"),
            "f": np.int64(3), "g": "text"}
    safe = json_safe(data, not_computed)
    assert safe == {"a": {"b": None, "c": 1.5}, "d": [1.0, None], "e": "/x/y", "f": 3, "g": "text"}
    assert type(safe["f"]) is int and type(safe["a"]["c"]) is float
    assert set(not_computed) == {"a.b", "d"}
    assert "nan" in not_computed["a.b"] and "inf" in not_computed["d"]
    json.dumps(safe, allow_nan=False)  # strict JSON


def test_first_reason_is_kept_and_no_record_without_a_dict() -> None:
    not_computed = {"x": "explained earlier"}
    assert json_safe({"x": math.nan}, not_computed) == {"x": None}
    assert not_computed == {"x": "explained earlier"}
    assert json_safe({"x": [math.nan, 2]}) == {"x": [None, 2]}
    assert json_safe(math.nan, {}, "") is None  # a bare value has no key to record
