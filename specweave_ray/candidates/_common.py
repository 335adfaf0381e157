"""Helpers shared by the candidate modules: problem families and estimator families.

Nothing here imports XGBoost, LightGBM or torch: an estimator can only belong to one of those
families when its library is already imported, so ``sys.modules`` tells us without paying for
an import.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Literal

from specweave_ray.exceptions import CandidateError

ProblemFamily = Literal["classification", "regression"]
EstimatorFamily = Literal["xgboost", "lightgbm", "torch-mlp", "sklearn"]

# Spec/config spellings of a problem type, folded onto the two families the candidates know.
_PROBLEM_ALIASES: dict[str, ProblemFamily] = {
    "classification": "classification",
    "binary": "classification",
    "binary-classification": "classification",
    "multiclass": "classification",
    "multiclass-classification": "classification",
    "multi-class-classification": "classification",
    "regression": "regression",
}

TORCH_MLP_MODULE = "specweave_ray.candidates.torch_mlp"


def problem_family(problem_type: str) -> ProblemFamily:
    """Fold a problem type onto ``"classification"`` or ``"regression"``.

    Args:
        problem_type: As written in a spec or config, e.g. ``"binary"`` or ``"regression"``.

    Returns:
        The candidate family the problem type belongs to.

    Raises:
        CandidateError: The problem type has no candidates.

    Example:
        >>> problem_family("Binary_Classification")
        'classification'
    """
    key = str(problem_type).strip().lower().replace("_", "-").replace(" ", "-")
    try:
        return _PROBLEM_ALIASES[key]
    except KeyError as err:
        known = ", ".join(sorted(_PROBLEM_ALIASES))
        raise CandidateError(
            f"no candidates for problem type {problem_type!r}; use one of: {known}"
        ) from err


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
