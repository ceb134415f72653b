"""Chemical systems and the task plan."""

from __future__ import annotations

import pytest

from pccd_hpc.generate.plan import GeneratePlan, read_plan, write_plan
from pccd_hpc.generate.systems import expand_system, parse_system, read_systems, system_label


def test_systems_are_canonical_and_families_expand() -> None:
    assert parse_system("O,Mn,Mg") == parse_system("Mg-Mn-O") == (12, 25, 8)
    assert system_label(parse_system("Si")) == "Si"
    assert parse_system("Mg,O") == (12, 8, 8)
    ae_oxides = expand_system("AE,O")
    assert len(ae_oxides) == 5 and (20, 8, 8) in ae_oxides
    paper = expand_system("paper")
    assert parse_system("Mg,Sc,O") in paper and parse_system("Ca,Sn,O") in paper
    assert all(len(set(s)) == 3 for s in paper)  # ternary oxides only
    with pytest.raises(ValueError, match="Xx"):
        parse_system("Mg,Xx")
    with pytest.raises(ValueError, match="repeated"):
        parse_system("O,O")
    with pytest.raises(ValueError, match="at least one"):
        read_systems(None, None)


def test_systems_file(tmp_path) -> None:
    path = tmp_path / "systems.txt"
    path.write_text("# wanted\nMg,Mn,O\nSi  # unary\n\nMg-Mn-O\n")
    assert read_systems(None, str(path)) == [(12, 25, 8), (14, 14, 14)]


def _plan(**kw) -> GeneratePlan:
    base = dict(n=103, systems=[(12, 8, 8), (14, 14, 14)], checkpoint="x.pt", checkpoint_sha256="0" * 64,
                batch_size=10, n_tasks=4)
    return GeneratePlan(**{**base, **kw})


def test_tasks_partition_exactly_n_samples() -> None:
    plan = _plan()
    indices = [i for k in range(plan.n_tasks) for b in plan.batches(k) for i in b]
    assert indices == list(range(103))
    assert all(len(b) <= 10 for k in range(4) for b in plan.batches(k))
    assert plan.system_of(0) == (12, 8, 8) and plan.system_of(1) == (14, 14, 14)
    with pytest.raises(ValueError, match="n_tasks"):
        _plan(n_tasks=200)
    with pytest.raises(ValueError, match="sampler"):
        _plan(sampler="euler")


def test_plan_is_fixed_once_written(tmp_path) -> None:
    write_plan(tmp_path, _plan())
    write_plan(tmp_path, _plan())  # the same plan again is fine (resume)
    assert read_plan(tmp_path).to_dict() == _plan().to_dict()
    with pytest.raises(ValueError, match="seed"):
        write_plan(tmp_path, _plan(seed=5))
