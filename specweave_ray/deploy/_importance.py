"""Global importance for T-007: permutation importance with confidence bands, and the model's own.

* Permutation importance (scikit-learn's ``permutation_importance``) on the held-out rows, over
  the *input columns* of the packaged :class:`Predictor` (a one-hot block is shuffled as one
  column): the drop of the run's metric when a column is shuffled, ``n_repeats`` times; the band
  is a 95% t-interval of the mean over the repeats.
* Native importance, summed from encoded features to input columns: total gain for XGBoost and
  LightGBM, impurity decrease for scikit-learn trees and forests, ``|coef|`` for linear models
  (coefficients of the encoded, standardised features); none for models without one (torch).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from specweave_ray.metrics import MetricDef, predict_for

__all__ = ["importance_table", "label_codes", "native_importance", "permutation_table"]


class _Packaged:
    """The already fitted package as scikit-learn's inspection tools expect an estimator to look
    (``permutation_importance`` checks for ``fit``; it never calls it)."""

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor

    def fit(self, X: Any, y: Any = None) -> _Packaged:
        return self


def label_codes(predictor: Any, labels: Any) -> np.ndarray:
    classes = list(predictor.classes)
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[v] for v in np.asarray(labels, dtype=object)], dtype=np.intp)


def permutation_table(predictor: Any, X: pd.DataFrame, y: pd.Series, *, metric: MetricDef,
                      n_repeats: int = 5, seed: int = 0) -> pd.DataFrame:
    """Permutation importance of each input column of ``X`` for ``metric`` (larger: more important).

    Returns:
        A frame indexed by column: ``permutation_mean``, ``permutation_std``, ``ci_low``,
        ``ci_high`` (95% t-interval over the repeats), in the metric's units, where a positive
        value is the metric getting *worse* when the column is shuffled.
    """
    from scipy import stats
    from sklearn.inspection import permutation_importance

    frame = predictor.validate(X).reset_index(drop=True)
    classes = predictor.classes
    truth = label_codes(predictor, y) if classes is not None else np.asarray(y, dtype=np.float64)
    sign = 1.0 if metric.mode == "max" else -1.0

    def score(_est: Any, rows: pd.DataFrame, target: np.ndarray) -> float:
        out = predict_for(metric, predictor, rows)
        if classes is not None and metric.needs == "labels":
            out = label_codes(predictor, out)
        return sign * metric(target, out)

    result = permutation_importance(_Packaged(predictor), frame, truth, scoring=score, n_repeats=n_repeats,
                                    random_state=seed, n_jobs=1)
    mean, std = result.importances_mean, result.importances_std
    half = stats.t.ppf(0.975, n_repeats - 1) * result.importances.std(axis=1, ddof=1) / np.sqrt(n_repeats) \
        if n_repeats > 1 else np.zeros_like(mean)
    return pd.DataFrame({"permutation_mean": mean, "permutation_std": std, "ci_low": mean - half,
                         "ci_high": mean + half}, index=pd.Index(list(frame.columns), name="feature"))


def native_importance(predictor: Any) -> tuple[pd.Series | None, str | None]:
    """``(importance per input column, its kind)`` from the model itself, or ``(None, None)``."""
    n = len(predictor.feature_groups)
    model, raw = predictor.model, predictor.raw_model
    values: np.ndarray | None = None
    kind = None
    if predictor.family == "xgboost":
        scores = raw.get_score(importance_type="total_gain")
        names = raw.feature_names or [f"f{i}" for i in range(n)]
        values = np.array([float(scores.get(name, 0.0)) for name in names])
        kind = "total gain"
    elif predictor.family == "lightgbm":
        values, kind = np.asarray(raw.feature_importance(importance_type="gain"), dtype=np.float64), "total gain"
    elif hasattr(model, "feature_importances_"):
        values, kind = np.asarray(model.feature_importances_, dtype=np.float64), "impurity decrease"
    elif hasattr(model, "coef_"):
        coef = np.abs(np.atleast_2d(np.asarray(model.coef_, dtype=np.float64)))
        values, kind = coef.mean(axis=0), "|coef|"
    if values is None or len(values) != n:
        return None, None
    summed = pd.Series(values).groupby(np.asarray(predictor.feature_groups), sort=False).sum()
    return summed.reindex(list(dict.fromkeys(predictor.feature_groups))), kind


def importance_table(permutation: pd.DataFrame, mean_abs_shap: pd.Series, native: pd.Series | None,
                     native_kind: str | None) -> pd.DataFrame:
    """One row per input column, by permutation importance: the permutation columns, mean
    |SHAP|, and the native importance (normalised to sum to 1, so models compare) and its kind."""
    table = permutation.copy()
    table["mean_abs_shap"] = mean_abs_shap.reindex(table.index).fillna(0.0)
    if native is not None:
        total = float(native.sum())
        table["native_importance"] = (native / total if total > 0 else native).reindex(table.index).fillna(0.0)
        table["native_kind"] = native_kind
    else:
        table["native_importance"] = np.nan
        table["native_kind"] = "none (the model has no built-in importance)"
    return table.sort_values("permutation_mean", ascending=False)
