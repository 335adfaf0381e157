"""The one metric vocabulary: every name a spec, a config, a record or a report may use.

Each :class:`MetricDef` gives the canonical lower-snake-case name (DESIGN.md's ``metrics.json``
keys), the spellings people write (``auc``, ``logloss``, ``p@10`` …), its direction, the units a
spec target may carry, whether it is a fraction in [0, 1], and what it needs to be computed:

``labels``         hard predictions (``estimator.predict``)
``probabilities``  class probabilities (``estimator.predict_proba``)
``values``         continuous predictions
``rankings``       a ranked list per user (``precision@k`` …; ``k`` is part of the name)
``forecasts``      point forecasts with each series' in-sample history (MASE's scale)
``benchmark``      measured on the packaged model (latency, throughput), not scored

The spec parser, the gate, the sweep, the comparison and the reports all read this table; which
metrics fit which problem is each problem type's declaration (:mod:`specweave_ray.problems`).
Computation is scikit-learn's, imported on first use.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from specweave_ray.exceptions import ConfigError

__all__ = ["AT_K", "FORECAST_METRICS", "METRICS", "NEEDS", "MetricDef", "canonical", "find",
           "forecast_scores", "get_metric", "known_text", "per_user", "predict_for", "seasonal_scale"]

NEEDS = ("labels", "probabilities", "values", "rankings", "forecasts", "benchmark")


@dataclass(frozen=True)
class MetricDef:
    """One metric: name, direction (``mode``), what it needs, units and spellings.

    Example:
        >>> m = get_metric("AUC")
        >>> m.name, m.mode, m.needs, m.better(0.9, 0.8)
        ('roc_auc', 'max', 'probabilities', True)
    """

    name: str
    mode: str                        # "max" or "min"
    needs: str                       # one of NEEDS
    fn: Callable[..., float] | None = None
    aliases: tuple[str, ...] = ()
    units: tuple[str, ...] = ("",)   # units a spec target may give its value in
    ratio: bool = False              # a fraction in [0, 1]: "99%" reads as 0.99
    display: str | None = None       # how spec lines write it (RMSE, precision@10)

    def __post_init__(self) -> None:
        if self.mode not in ("max", "min") or self.needs not in NEEDS:
            raise ConfigError(f"metric {self.name!r}: mode must be max/min and needs one of "
                              f"{NEEDS}, got {self.mode!r}, {self.needs!r}")

    def __call__(self, y_true: Any, y_pred: Any) -> float:
        if self.fn is None:
            raise ConfigError(f"{self.name} is measured by the benchmark, not computed from predictions")
        return float(self.fn(y_true, y_pred))

    @property
    def lower_is_better(self) -> bool:
        return self.mode == "min"

    @property
    def scored(self) -> bool:
        """Whether it is computed from predictions (not measured by the benchmark)."""
        return self.fn is not None

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


def _smape(y_true: Any, y_pred: Any) -> float:
    """sMAPE as the M4 competition defines it: 200 · mean(|y − ŷ| / (|y| + |ŷ|)), in [0, 200];
    a point where both are 0 counts as 0 (as utilsforecast does)."""
    t, p = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    denom = np.abs(t) + np.abs(p)
    return float(200.0 * np.mean(np.where(denom == 0, 0.0, np.abs(t - p) / np.where(denom == 0, 1.0, denom))))


def _bias(y_true: Any, y_pred: Any) -> float:
    """Mean forecast error ŷ − y (positive: over-forecasts)."""
    return float(np.mean(np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)))


def _mase_needs_history(y_true: Any, y_pred: Any) -> float:
    raise ConfigError("mase is scaled by each series' in-sample seasonal-naive error: compute it with "
                      "metrics.forecast_scores (the timeseries problem type does)")


def seasonal_scale(history: Any, season_length: int) -> float:
    """MASE's scale for one series: the mean absolute in-sample error of the seasonal-naive
    forecast, mean |y_t − y_{t−m}| (Hyndman & Koehler 2006; falls back to m = 1 when the
    history is no longer than one season). NaN when it is 0 (a constant history)."""
    y = np.asarray(history, dtype=np.float64)
    m = season_length if len(y) > season_length else 1
    if len(y) <= m:
        return float("nan")
    scale = float(np.mean(np.abs(y[m:] - y[:-m])))
    return scale if scale > 0 else float("nan")


def forecast_scores(y_true: Any, y_pred: Any, series: Any, scales: Any) -> dict[str, float]:
    """Every forecast metric of point forecasts ``y_pred`` against ``y_true``.

    Args:
        series: Each point's series id.
        scales: Series id → :func:`seasonal_scale` of its training history (a mapping).

    mape, smape, rmse, mae and bias pool every point (every series forecasts the same number of
    steps, so the pooled mean is the mean of the per-series means); mase is the mean over series
    of each series' MAE over its scale (the M4 definition), series with an undefined scale left
    out. mape is in percent; a point whose actual is 0 is left out of mape.
    """
    t, p = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    ids = np.asarray(series)
    nonzero = t != 0
    out = {"mape": float(100.0 * np.mean(np.abs((t - p)[nonzero] / t[nonzero]))) if nonzero.any() else float("nan"),
           "smape": _smape(t, p), "rmse": float(np.sqrt(np.mean((t - p) ** 2))),
           "mae": float(np.mean(np.abs(t - p))), "bias": _bias(t, p)}
    per_series = []
    for sid in dict.fromkeys(ids.tolist()):
        scale = scales.get(sid, float("nan"))
        if np.isfinite(scale):
            mask = ids == sid
            per_series.append(float(np.mean(np.abs(t[mask] - p[mask]))) / scale)
    out["mase"] = float(np.mean(per_series)) if per_series else float("nan")
    return out


def _latency(pct: str) -> MetricDef:
    return MetricDef(f"latency_{pct}", "min", "benchmark", units=("ms",))


METRICS: dict[str, MetricDef] = {m.name: m for m in (
    MetricDef("accuracy", "max", "labels", lambda t, p: _sk("accuracy_score")(t, p),
              aliases=("acc",), ratio=True),
    MetricDef("balanced_accuracy", "max", "labels", lambda t, p: _sk("balanced_accuracy_score")(t, p),
              ratio=True),
    MetricDef("precision", "max", "labels", _avg("precision_score"), ratio=True),
    MetricDef("recall", "max", "labels", _avg("recall_score"), aliases=("sensitivity",), ratio=True),
    MetricDef("f1", "max", "labels", _avg("f1_score"), aliases=("f_1", "fscore", "f"), ratio=True),
    MetricDef("roc_auc", "max", "probabilities", _binary_or_ovr("roc_auc_score"),
              aliases=("auc", "auroc", "auc_roc"), ratio=True),
    MetricDef("pr_auc", "max", "probabilities", _binary_or_ovr("average_precision_score"),
              aliases=("auprc", "auc_pr", "average_precision"), ratio=True),
    MetricDef("log_loss", "min", "probabilities", _log_loss, aliases=("logloss", "cross_entropy")),
    MetricDef("rmse", "min", "values", lambda t, p: _sk("root_mean_squared_error")(t, p),
              aliases=("root_mean_squared_error",), units=("", "$"), display="RMSE"),
    MetricDef("mae", "min", "values", lambda t, p: _sk("mean_absolute_error")(t, p),
              aliases=("mean_absolute_error",), units=("", "$"), display="MAE"),
    MetricDef("r2", "max", "values", lambda t, p: _sk("r2_score")(t, p),
              aliases=("r_squared", "r^2"), ratio=True),
    MetricDef("mape", "min", "values", _mape, aliases=("mean_absolute_percentage_error",),
              units=("", "%"), display="MAPE"),
    MetricDef("smape", "min", "values", _smape, aliases=("symmetric_mape", "s_mape"),
              units=("", "%"), display="sMAPE"),
    # scored with each series' history (forecast_scores), never from (y, ŷ) alone
    MetricDef("mase", "min", "forecasts", _mase_needs_history, aliases=("mean_absolute_scaled_error",),
              display="MASE"),
    # signed (ŷ − y): "lower is better" holds only for over-forecasts; a target on bias reads
    # the signed value, so it is reported beside the scored metrics, not swept on
    MetricDef("bias", "min", "values", _bias, aliases=("mean_error", "forecast_bias")),
    _latency("p50"), _latency("p95"), _latency("p99"),
    MetricDef("throughput", "max", "benchmark", units=("req/s",),
              aliases=("qps", "rps", "throughput_rps", "requests_per_second")),
)}

FORECAST_METRICS = ("mape", "smape", "mase", "rmse", "mae")

# Ranking metrics at a cut-off k: "precision_at_10" (spec lines write precision@10).
AT_K: dict[str, MetricDef] = {m.name: m for m in (
    MetricDef("precision", "max", "rankings", ratio=True),
    MetricDef("recall", "max", "rankings", ratio=True),
    MetricDef("ndcg", "max", "rankings", ratio=True),
    MetricDef("map", "max", "rankings", ratio=True),
    MetricDef("hit_rate", "max", "rankings", ratio=True),
)}
_AT_K = re.compile(rf"({'|'.join(AT_K)})_at_([1-9]\d*)")
_ALIASES = {alias: m.name for m in METRICS.values() for alias in m.aliases}


def canonical(key: str) -> str | None:
    """The canonical name for a snake-case key or alias (``auc`` → ``roc_auc``), or None."""
    key = _ALIASES.get(key, key)
    return key if key in METRICS or _AT_K.fullmatch(key) else None


def find(name: str) -> MetricDef | None:
    """The metric a canonical name or alias means, or None when the vocabulary lacks it."""
    key = canonical(re.sub(r"\s*@\s*", "_at_", str(name).strip().lower()))
    if key is None:
        return None
    if key in METRICS:
        return METRICS[key]
    base, k = _AT_K.fullmatch(key).groups()
    return MetricDef(key, AT_K[base].mode, "rankings", lambda truth, lists: float(np.mean(per_user(key, truth, lists))),
                     ratio=True, display=f"{base}@{k}")


def per_user(name: str, truth: Sequence[Collection[Any]], lists: Any) -> np.ndarray:
    """One value of the ranking metric ``name`` (``ndcg_at_10``) per user.

    Args:
        truth: Each user's relevant items (a set, or any collection).
        lists: ``(n_users, k')`` recommended items, best first; only the first ``k`` count.

    The definitions are the usual ones (Microsoft Recommenders, RecBole): precision = hits / k;
    recall = hits / |relevant|; NDCG with binary gains and the ideal DCG of min(|relevant|, k)
    hits; MAP = the mean of precision at each hit over min(|relevant|, k); hit rate = any hit.
    """
    match = _AT_K.fullmatch(name)
    if match is None:
        raise ConfigError(f"{name!r} is not a ranking metric at k (e.g. ndcg_at_10)")
    base, k = match.group(1), int(match.group(2))
    lists = np.asarray(lists, dtype=object)[:, :k] if len(truth) else np.empty((0, k), dtype=object)
    hits = np.array([[item in rel for item in row] for row, rel in zip(lists, truth, strict=True)],
                    dtype=np.float64).reshape(len(truth), -1)
    n_rel = np.array([len(rel) for rel in truth], dtype=np.float64)
    if base == "precision":
        return hits.sum(axis=1) / k
    if base == "recall":
        return hits.sum(axis=1) / np.maximum(n_rel, 1)
    if base == "hit_rate":
        return (hits.sum(axis=1) > 0).astype(np.float64)
    ranks = np.arange(1, hits.shape[1] + 1)
    if base == "ndcg":
        discount = 1.0 / np.log2(ranks + 1)
        dcg = hits @ discount
        ideal = np.cumsum(1.0 / np.log2(np.arange(1, k + 1) + 1))
        return dcg / ideal[np.clip(np.minimum(n_rel, k).astype(int) - 1, 0, k - 1)]
    precision_at = np.cumsum(hits, axis=1) / ranks
    return (precision_at * hits).sum(axis=1) / np.maximum(np.minimum(n_rel, k), 1)


def get_metric(name: str) -> MetricDef:
    """Look a metric up by name or alias.

    Raises:
        ConfigError: the name is not in the vocabulary; the message lists it.
    """
    metric = find(name)
    if metric is None:
        raise ConfigError(f"unknown metric {name!r}; known: {known_text()}")
    return metric


def known_text() -> str:
    return ", ".join(sorted(METRICS)) + ", " + ", ".join(f"{m}@k" for m in AT_K)


def predict_for(metric: MetricDef, estimator: Any, X: Any) -> Any:
    """What ``metric`` scores: probabilities for probability metrics, else predictions."""
    if metric.needs == "probabilities":
        return estimator.predict_proba(X)
    return estimator.predict(X)
