"""Training in stages, so a scheduler (ASHA) can score a trial part-way and stop it early.

Boosted trees grow their trees in parts by continuing from the previous booster (XGBoost
``xgb_model=``, LightGBM ``init_model=``); the torch MLPs continue with ``partial_fit``. After the
last stage the estimator holds its full budget and its parameters are those it started with.

With deterministic settings the staged model equals a single full fit. With row or column
subsampling (``subsample``, ``colsample_*``, LightGBM bagging) the boosting libraries reseed
their sampler at every continuation, so the staged model is an equally valid draw with the same
number of trees, not a bit-identical one. The torch MLPs carry their random stream over, so
they match a full fit exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from numbers import Integral
from typing import Any

from specweave_ray.candidates._common import family_of, is_xgboost_random_forest
from specweave_ray.exceptions import CandidateError

__all__ = ["budget_of", "split_budget", "staged_fit"]


def budget_of(estimator: Any) -> tuple[str, int] | None:
    """The parameter that measures an estimator's training budget, and its value.

    Returns:
        ``("n_estimators", N)`` for XGBoost/LightGBM boosters, ``("epochs", N)`` for the torch
        MLPs, ``None`` for estimators that train in one go.

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> budget_of(LogisticRegression()) is None
        True
    """
    family = family_of(estimator)
    if family in ("xgboost", "lightgbm") and not is_xgboost_random_forest(estimator):
        value = estimator.get_params().get("n_estimators")
        return ("n_estimators", _positive(value, "n_estimators", estimator))
    if family == "torch-mlp":
        return ("epochs", _positive(estimator.get_params()["epochs"], "epochs", estimator))
    return None


def split_budget(total: int, stages: int) -> list[int]:
    """``total`` split into ``stages`` near-equal parts, larger first.

    When there are more stages than budget (5 trees, 8 stages) the last parts are 0.

    Example:
        >>> split_budget(10, 3)
        [4, 3, 3]
        >>> split_budget(2, 3)
        [1, 1, 0]
    """
    if isinstance(stages, bool) or not isinstance(stages, Integral) or stages < 1:
        raise CandidateError(f"stages must be a positive integer, got {stages!r}")
    count = int(stages)
    base, extra = divmod(total, count)
    return [base + (1 if i < extra else 0) for i in range(count)]


def staged_fit(
    estimator: Any, X: Any, y: Any, *, stages: int, sample_weight: Any = None
) -> Iterator[Any]:
    """Fit ``estimator`` in ``stages`` parts of its budget, yielding it after each part.

    The same estimator object is trained throughout; score it between yields. Closing the
    generator early (an early-stopped trial) leaves a usable model trained on part of its
    budget, with its original parameters restored.

    Args:
        estimator: An unfitted or fitted estimator; it is refitted from scratch.
        X: Training features.
        y: Training labels/targets.
        stages: Number of parts, hence of yields. With more stages than budget (5 trees, 10
            stages) the extra stages train nothing and yield the finished model again.
        sample_weight: Optional weights, passed to every part.

    Yields:
        ``estimator`` after each stage; once only for estimators without a budget.

    Raises:
        CandidateError: ``stages`` is not a positive integer or the budget is invalid.

    Example:
        >>> from sklearn.linear_model import Ridge
        >>> import numpy as np
        >>> X, y = np.eye(3), np.arange(3.0)
        >>> [type(m).__name__ for m in staged_fit(Ridge(), X, y, stages=4)]
        ['Ridge']
    """
    budget = budget_of(estimator)
    if budget is None:
        split_budget(1, stages)  # validate stages even when there is nothing to split
        weights = {} if sample_weight is None else {"sample_weight": sample_weight}
        yield estimator.fit(X, y, **weights)
        return
    param, total = budget
    parts = split_budget(total, stages)
    fit_part = {"xgboost": _xgboost_part, "lightgbm": _lightgbm_part, "torch-mlp": _torch_part}[
        family_of(estimator)
    ]
    try:
        for index, part in enumerate(parts):
            if part > 0:
                estimator.set_params(**{param: part})
                fit_part(estimator, X, y, sample_weight, first=index == 0, part=part)
                estimator.set_params(**{param: total})
            yield estimator
    finally:
        estimator.set_params(**{param: total})


def _xgboost_part(est: Any, X: Any, y: Any, weight: Any, *, first: bool, part: int) -> None:
    previous = None if first else est.get_booster()
    est.fit(X, y, sample_weight=weight, xgb_model=previous, verbose=False)


def _lightgbm_part(est: Any, X: Any, y: Any, weight: Any, *, first: bool, part: int) -> None:
    previous = None if first else est.booster_
    est.fit(X, y, sample_weight=weight, init_model=previous)


def _torch_part(est: Any, X: Any, y: Any, weight: Any, *, first: bool, part: int) -> None:
    if first:
        est.fit(X, y, sample_weight=weight)  # epochs was set to this part
    else:
        est.partial_fit(X, y, epochs=part, sample_weight=weight)


def _positive(value: Any, name: str, estimator: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        # XGBoost leaves n_estimators=None to mean its default of 100 rounds.
        if value is None and name == "n_estimators" and family_of(estimator) == "xgboost":
            return 100
        raise CandidateError(
            f"{type(estimator).__name__}.{name} must be a positive integer to train in stages, "
            f"got {value!r}"
        )
    return int(value)
