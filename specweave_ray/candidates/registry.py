"""Which estimator class a candidate's name means.

Each problem type declares its alias table (``problems.get(t).estimators``); names resolve
lazily, so ``resolve_estimator("xgboost", problem_type="classification")`` imports XGBoost only
then. Dotted paths (``"sklearn.linear_model.Ridge"``) and classes work for every type.
"""

from __future__ import annotations

import importlib
from typing import Any

from specweave_ray import problems
from specweave_ray.exceptions import CandidateError, require
from specweave_ray.problems import ProblemType

__all__ = ["resolve_estimator"]

# Other spellings people write in configs.
_SYNONYMS = {
    "xgb": "xgboost",
    "lgbm": "lightgbm",
    "lgb": "lightgbm",
    "rf": "random-forest",
    "logistic-regression": "logistic",
    "linear-regression": "linear",
}


def resolve_estimator(name_or_class: str | type, *, problem_type: str | ProblemType) -> type:
    """The estimator class a candidate name means.

    Args:
        name_or_class: A class, a dotted path (``"sklearn.linear_model.LogisticRegression"``)
            or an alias (``"xgboost"``, ``"lightgbm"``, ``"logistic"``, ``"linear"``,
            ``"ridge"``, ``"random-forest"``, ``"torch-mlp"``, ``"mlp"``).
        problem_type: A problem type (or its name); its ``estimators`` table gives the aliases.

    Returns:
        A class with ``fit`` and ``get_params``.

    Raises:
        CandidateError: Unknown alias (the message lists the known ones), unknown class, or
            something that is not a scikit-learn-style estimator.
        MissingDependencyError: The library the name needs is not installed.

    Example:
        >>> resolve_estimator("logistic", problem_type="classification").__name__
        'LogisticRegression'
    """
    problem = problems.get(problem_type)
    if isinstance(name_or_class, type):
        return _check_estimator_class(name_or_class, str(name_or_class))
    if not isinstance(name_or_class, str) or not name_or_class.strip():
        raise CandidateError(
            f"a candidate estimator is a class, a dotted path or an alias; got {name_or_class!r}"
        )
    text = name_or_class.strip()
    key = text.lower().replace("_", "-")
    key = _SYNONYMS.get(key, key)
    if key in problem.estimators:
        return _import_class(problem.estimators[key], text)
    if "." not in text:
        known = ", ".join(sorted(problem.estimators))
        elsewhere = [n for n in problems.names() if key in problems.get(n).estimators]
        hint = f" ({text!r} is a {elsewhere[0]} alias)" if elsewhere else ""
        raise CandidateError(
            f"unknown estimator {text!r} for {problem.name}{hint}; use an alias ({known}) "
            f"or a dotted path such as 'sklearn.linear_model.Ridge'"
        )
    return _import_class(text, text)


def _import_class(path: str, asked: str) -> type:
    module_name, _, attr = path.rpartition(".")
    top = module_name.split(".")[0]
    require(top, feature=f"the estimator {asked!r}")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, attr)
    except (ImportError, AttributeError) as err:
        raise CandidateError(
            f"cannot find estimator class {path!r}: {err}; check the dotted path"
        ) from err
    return _check_estimator_class(cls, asked)


def _check_estimator_class(cls: Any, asked: str) -> type:
    if not isinstance(cls, type) or not all(
        callable(getattr(cls, method, None)) for method in ("fit", "get_params")
    ):
        raise CandidateError(
            f"{asked!r} is not a scikit-learn style estimator class (needs fit and get_params)"
        )
    return cls
