"""Tests for the public API: the exported names, a cheap import, the exception tree."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest

import specweave_ray
from specweave_ray import exceptions

EXPECTED_ALL = [
    "Increment",
    "ModelExperiment",
    "Predictor",
    "SpecweaveError",
    "SweepResults",
    "choice",
    "load_spec",
    "lograndint",
    "loguniform",
    "randint",
    "run_experiments",
    "track_experiment",
    "track_model",
    "uniform",
]
HEAVY = ("ray", "mlflow", "torch", "xgboost", "lightgbm")


def test_all_is_exactly_the_public_api() -> None:
    assert specweave_ray.__all__ == EXPECTED_ALL


@pytest.mark.parametrize("name", EXPECTED_ALL)
def test_every_exported_name_resolves(name: str) -> None:
    value = getattr(specweave_ray, name)
    assert getattr(value, "__module__", "").startswith("specweave_ray.")
    assert name in dir(specweave_ray)


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        specweave_ray.nope  # noqa: B018


def test_import_is_cheap_in_a_fresh_interpreter() -> None:
    code = (
        "import json, sys\n"
        "import specweave_ray\n"
        "from specweave_ray import Increment, track_experiment, ModelExperiment, run_experiments, load_spec\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def _error_classes() -> list[type[BaseException]]:
    return [c for _, c in inspect.getmembers(exceptions, inspect.isclass)
            if issubclass(c, BaseException) and c.__module__ == exceptions.__name__]


def test_exception_tree() -> None:
    classes = _error_classes()
    assert len(classes) >= 10
    assert exceptions.SpecweaveError is specweave_ray.SpecweaveError
    builtins = (ValueError, LookupError, RuntimeError, ImportError)
    for cls in classes:
        assert issubclass(cls, exceptions.SpecweaveError), cls
        if cls is not exceptions.SpecweaveError:
            assert issubclass(cls, builtins), f"{cls.__name__} also subclasses the builtin it refines"
            assert cls.__name__ in exceptions.__doc__, f"{cls.__name__} is drawn in the module docstring"
    assert issubclass(exceptions.IncrementNotFoundError, (exceptions.IncrementError, LookupError))
    assert issubclass(exceptions.MissingDependencyError, ImportError)


def test_require_names_the_pip_command() -> None:
    with pytest.raises(exceptions.MissingDependencyError, match=r"pip install specweave-ray\[serve\]"):
        exceptions.require("no_such_module_xyz", extra="serve", feature="serving")


def test_every_error_class_lives_in_exceptions_and_has_an_http_status() -> None:
    """exceptions.py holds every error class the package defines (read from the source), and
    http_status answers each: 4xx only for what a client sent, 500 for everything else."""
    import ast
    from pathlib import Path

    package = Path(specweave_ray.__file__).parent
    elsewhere = []
    for path in package.rglob("*.py"):
        if path.name == "exceptions.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(b, ast.Name) and (b.id.endswith(("Error", "Exception")) or b.id in
                                                 ("SpecweaveError", "BadRequest"))
                    for b in node.bases):
                elsewhere.append(f"{path.relative_to(package)}:{node.lineno} {node.name}")
    assert not elsewhere, elsewhere
    client = {exceptions.DataError: 422, exceptions.IncrementNotFoundError: 404}
    classes = [c for c in vars(exceptions).values() if isinstance(c, type) and issubclass(c, Exception)
               and c.__module__ == exceptions.__name__ and c is not exceptions.BadRequest]
    for cls in classes:
        assert exceptions.http_status(cls("x")) == client.get(cls, 500), cls
    assert exceptions.http_status(exceptions.BadRequest(413, "too big")) == 413
    assert exceptions.http_status(KeyError("x")) == exceptions.http_status(ValueError("x")) == 500
    with pytest.raises(ValueError, match="a BadRequest is a 4xx"):
        exceptions.BadRequest(500, "no")
