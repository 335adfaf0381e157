"""Metric names (DESIGN.md's lower snake case) → how to compute them and which way is better.

Shared by the sweep (cross-validation scores) and evaluation. Computation is scikit-learn's;
this module only fixes the names, the direction and what each metric needs (labels or scores).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from specweave_ray.exceptions import ConfigError


@dataclass(frozen=True)
class MetricDef:
    name: str
    mode: str            # "max" or "min"
    needs: str           # "label" (hard predictions), "score" (probability / continuous)
    problem_types: tuple[str, ...]
    fn: Callable[..., float]

    def __call__(self, y_true: Any, y_pred: Any) -> float:
        return float(self.fn(y_true, y_pred))

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return a > b if self.mode == "max" else a < b


def _sk(name: str) -> Callable[..., float]:
    import sklearn.metrics as skm

    return getattr(skm, name)


def _binary_or_ovr(fn_name: str) -> Callable[..., float]:
    def score(y_true: Any, proba: Any) -> float:
        proba = np.asarray(proba)
        if proba.ndim == 2 and proba.shape[1] == 2:
            proba = proba[:, 1]
        if proba.ndim == 2:
            return _sk(fn_name)(y_true, proba, multi_class="ovr") if fn_name == "roc_auc_score" else \
                _sk(fn_name)(y_true, proba, average="macro")
        return _sk(fn_name)(y_true, proba)
    return score


def _avg(fn_name: str) -> Callable[..., float]:
    def score(y_true: Any, y_pred: Any) -> float:
        binary = len(np.unique(y_true)) <= 2
        return _sk(fn_name)(y_true, y_pred, average="binary" if binary else "macro", zero_division=0)
    return score


def _log_loss(y_true: Any, proba: Any) -> float:
    return _sk("log_loss")(y_true, proba, labels=np.arange(np.asarray(proba).shape[1]))


def _mape(y_true: Any, y_pred: Any) -> float:
    # percent, as spec targets write it ("MAPE < 10%"); scikit-learn returns a fraction
    return 100.0 * _sk("mean_absolute_percentage_error")(y_true, y_pred)


_C, _R = ("classification",), ("regression", "timeseries")
METRICS: dict[str, MetricDef] = {m.name: m for m in (
    MetricDef("accuracy", "max", "label", _C, lambda t, p: _sk("accuracy_score")(t, p)),
    MetricDef("balanced_accuracy", "max", "label", _C, lambda t, p: _sk("balanced_accuracy_score")(t, p)),
    MetricDef("precision", "max", "label", _C, _avg("precision_score")),
    MetricDef("recall", "max", "label", _C, _avg("recall_score")),
    MetricDef("f1", "max", "label", _C, _avg("f1_score")),
    MetricDef("roc_auc", "max", "score", _C, _binary_or_ovr("roc_auc_score")),
    MetricDef("pr_auc", "max", "score", _C, _binary_or_ovr("average_precision_score")),
    MetricDef("log_loss", "min", "score", _C, _log_loss),
    MetricDef("rmse", "min", "score", _R, lambda t, p: _sk("root_mean_squared_error")(t, p)),
    MetricDef("mae", "min", "score", _R, lambda t, p: _sk("mean_absolute_error")(t, p)),
    MetricDef("r2", "max", "score", _R, lambda t, p: _sk("r2_score")(t, p)),
    MetricDef("mape", "min", "score", _R, _mape),
)}

DEFAULT_METRIC = {"classification": "roc_auc", "regression": "rmse", "timeseries": "mape"}


def get_metric(name: str, *, problem_type: str | None = None) -> MetricDef:
    """Look a metric up by name, checking it fits the problem type.

    Raises:
        ConfigError: unknown name, or a metric of another problem type.
    """
    metric = METRICS.get(name.lower())
    if metric is None:
        raise ConfigError(f"unknown metric {name!r}; choose one of {', '.join(METRICS)}")
    if problem_type is not None and problem_type not in metric.problem_types:
        fitting = [m for m, d in METRICS.items() if problem_type in d.problem_types]
        raise ConfigError(f"metric {name!r} does not apply to {problem_type}; use one of {', '.join(fitting)}")
    return metric


def predict_for(metric: MetricDef, estimator: Any, X: Any) -> Any:
    """What ``metric`` scores: probabilities for score-based classification metrics, else predictions."""
    if metric.needs == "score" and "classification" in metric.problem_types:
        return estimator.predict_proba(X)
    return estimator.predict(X)
