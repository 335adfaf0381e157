"""Helpers shared by the candidate modules: estimator families, names, JSON-safe params.

Nothing here imports XGBoost, LightGBM or torch: an estimator can only belong to one of those
families when its library is already imported, so ``sys.modules`` tells us without paying for
an import.
"""

from __future__ import annotations

import json
import sys
from numbers import Integral, Real
from typing import Any, Literal

from specweave_ray.exceptions import CandidateError

EstimatorFamily = Literal["xgboost", "lightgbm", "torch-mlp", "sklearn"]

TORCH_MLP_MODULE = "specweave_ray.candidates.torch_mlp"


def family_of(estimator: Any) -> EstimatorFamily:
    """Name the library family an estimator (instance or class) belongs to.

    Returns:
        ``"xgboost"``, ``"lightgbm"``, ``"torch-mlp"``, or ``"sklearn"`` for anything else.
    """
    cls = estimator if isinstance(estimator, type) else type(estimator)
    xgb = sys.modules.get("xgboost")
    if xgb is not None and issubclass(cls, xgb.XGBModel):
        return "xgboost"
    lgb = sys.modules.get("lightgbm")
    if lgb is not None and issubclass(cls, lgb.LGBMModel):
        return "lightgbm"
    mlp = sys.modules.get(TORCH_MLP_MODULE)
    if mlp is not None and issubclass(cls, mlp.TorchMLPBase):
        return "torch-mlp"
    return "sklearn"


def is_xgboost_random_forest(estimator: Any) -> bool:
    """True for ``XGBRFClassifier``/``XGBRFRegressor``, whose ``n_estimators`` is forest size."""
    xgb = sys.modules.get("xgboost")
    return xgb is not None and isinstance(estimator, (xgb.XGBRFClassifier, xgb.XGBRFRegressor))


def qualified_name(obj: Any) -> str:
    """``module.Class`` of an instance or class (the public module where one exists)."""
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def json_safe(params: dict[str, Any]) -> dict[str, Any]:
    """Keep the entries of ``params`` that survive a JSON round trip unchanged in meaning.

    Callables, arrays and other objects (XGBoost ``callbacks``, a custom ``eval_metric``) are
    dropped; tuples become lists.
    """
    safe: dict[str, Any] = {}
    for key, value in params.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            continue
        safe[key] = list(value) if isinstance(value, tuple) else value
    return safe


def num_threads(n_jobs: int | None) -> int:
    """implicit's ``num_threads`` for an ``n_jobs`` (``None``/-1: every core, which implicit
    spells 0)."""
    if n_jobs is None or n_jobs == -1:
        return 0
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, Integral) or n_jobs < 1:
        raise CandidateError(f"n_jobs must be a positive integer, -1 or None, got {n_jobs!r}")
    return int(n_jobs)


def check_positive(owner: object, **values: Any) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, Real) or not value > 0:
            raise CandidateError(f"{type(owner).__name__}: {name} must be a positive number, got {value!r}")
