"""ARCHITECTURE.md's worked example of adding a problem type runs, and passes the contract suite
that every registered type passes (tests/test_problems.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import test_problems as contract

from specweave_ray import problems
from specweave_ray.exceptions import DataError
from specweave_ray.problems import _registry

DOC = Path(__file__).resolve().parents[1] / "ARCHITECTURE.md"
CONTRACT = [getattr(contract, name) for name in dir(contract)
            if name.startswith("test_") and "problem" in getattr(contract, name).__code__.co_varnames[:1]]


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> problems.ProblemType:
    monkeypatch.setattr(_registry, "_TYPES", dict(_registry._TYPES))  # registered for this test only
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(code.strip().splitlines()) <= 30, "the worked example stays short"
    exec(compile(code, str(DOC), "exec"), {"__name__": "architecture_example"})  # noqa: S102
    return problems.get("poisson")


def test_the_worked_example_registers_a_type(counts: problems.ProblemType) -> None:
    assert counts.name == "counts" and "counts" in problems.names()
    assert problems.resolve("Count regression") == "counts"
    with pytest.raises(DataError, match="count target 'visits' has negative values"):
        counts.check_target(__import__("pandas").Series([1, -2, 3], name="visits"))


@pytest.mark.parametrize("check", CONTRACT, ids=lambda f: f.__name__)
def test_the_worked_example_passes_the_contract(counts: problems.ProblemType, check, tmp_path: Path) -> None:
    extra = {"tmp_path": tmp_path} if "tmp_path" in check.__code__.co_varnames[:check.__code__.co_argcount] else {}
    check(counts, **extra)


def test_the_contract_is_all_there() -> None:
    assert len(CONTRACT) >= 10
