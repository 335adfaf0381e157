"""Held-out evaluation: metrics, bootstrap confidence intervals, threshold tuning, errors, report.

The stage takes plain arrays (labels integer-encoded ``0..k-1``, ``proba`` of shape ``(n, k)``,
or continuous ``pred``) and returns plain values: a flat ``name -> number`` dict ready for
``metrics.json``, a :class:`ThresholdChoice`, a JSON-able error analysis, PNG paths and the
markdown of ``evaluation.md``.

Point estimates are scikit-learn's. The bootstrap cannot afford scikit-learn per resample
(~35 ms a resample on 20k rows, 35 s for 1000), so it draws each resample as a row of counts
and computes the same metrics as weighted sums (:mod:`specweave_ray.evaluate._bootstrap`,
checked against scikit-learn on repeated rows); plots and the report are in
:mod:`specweave_ray.evaluate._plots`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from specweave_ray import problems
from specweave_ray.evaluate import _plots as _evaluate_plots
from specweave_ray.evaluate._bootstrap import (
    class_strata,
    resample_counts,
    row_log_loss,
    scored_classes,
    stratum_metrics,
)
from specweave_ray.evaluate._plots import render_report
from specweave_ray.evaluate._types import Prepared, ThresholdChoice
from specweave_ray.exceptions import ConfigError, DataError
from specweave_ray.metrics import get_metric
from specweave_ray.problems import ProblemType

if TYPE_CHECKING:
    import pandas as pd

    from specweave_ray.spec._grammar import Target

__all__ = [
    "ThresholdChoice", "bootstrap_ci", "error_analysis", "evaluate", "render_report", "score",
    "tune_threshold", "write_plots",
]

logger = logging.getLogger(__name__)

_THRESHOLD_DEFAULTS = ("f1", "fixed")
# Metrics whose value moves with the binary decision threshold.
_THRESHOLD_METRICS = ("precision", "recall", "f1", "accuracy", "balanced_accuracy")
_CHUNK_CELLS = 4_000_000  # resamples x rows held at once: ~32 MB of float64 per matrix


def _prepare(y_true: Any, problem_type: str | ProblemType, proba: Any, pred: Any,
             threshold: float) -> Prepared:
    problem = problems.get(problem_type)
    y = np.asarray(y_true).ravel()
    if y.size == 0:
        raise DataError("cannot evaluate on an empty test set (y_true has no rows)")
    if problem.output == "values":
        if pred is None:
            raise DataError(f"{problem.name} evaluation needs pred (continuous predictions)")
        y = _finite(y, "y_true").astype(float)
        return Prepared("continuous", y, pred=_finite(_rows(pred, y, "pred"), "pred").astype(float))
    return _prepare_classes(y, proba, pred, threshold)


def _prepare_classes(y: np.ndarray, proba: Any, pred: Any, threshold: float) -> Prepared:
    if not 0.0 <= float(threshold) <= 1.0:
        raise ConfigError(f"threshold must lie in [0, 1], got {threshold!r}")
    y = _integer_labels(y, "y_true")
    if proba is not None:
        p = _finite(np.asarray(proba, dtype=float), "proba")
        p = np.column_stack([1.0 - p, p]) if p.ndim == 1 else p
        if p.ndim != 2 or p.shape[1] < 2 or p.shape[0] != y.size:
            raise DataError(f"proba must have shape (n_rows={y.size}, n_classes>=2) or "
                            f"(n_rows,) for the positive class, got {np.shape(proba)}")
        if p.min() < 0.0 or p.max() > 1.0:
            raise DataError(f"proba must hold probabilities in [0, 1], got values in "
                            f"[{p.min():.4g}, {p.max():.4g}]; pass predict_proba output")
        k = p.shape[1]
        labels = (p[:, 1] >= threshold).astype(int) if k == 2 else p.argmax(axis=1)
    elif pred is not None:
        p, labels = None, _integer_labels(_rows(pred, y, "pred"), "pred")
        k = max(2, int(max(y.max(), labels.max())) + 1)
    else:
        raise DataError("classification evaluation needs proba (predict_proba output) or pred")
    if y.max() >= k:
        raise DataError(f"y_true holds label {int(y.max())} but proba has {k} columns; "
                        f"labels must be encoded 0..{k - 1}")
    classes = np.union1d(y, labels)
    return Prepared("binary" if k == 2 else "multiclass", y, p, labels, classes=classes)


def _rows(values: Any, y: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values).ravel()
    if arr.size != y.size:
        raise DataError(f"{name} has {arr.size} rows but y_true has {y.size}")
    return arr


def _finite(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype.kind not in "biuf" or not np.isfinite(arr).all():
        raise DataError(f"{name} must be numeric with no NaN or infinite values")
    return arr


def _integer_labels(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype.kind == "b":
        return arr.astype(int)
    if arr.dtype.kind not in "iuf" or not np.isfinite(arr).all() or (arr != np.round(arr)).any() \
            or (arr.size and arr.min() < 0):
        raise DataError(f"{name} must hold integer-encoded class labels 0..k-1 "
                        f"(encode string labels first), got dtype {arr.dtype}")
    return arr.astype(int)


# --- point estimates (scikit-learn) -------------------------------------------------------------
def score(y_true: Any, *, problem_type: str | ProblemType, proba: Any = None, pred: Any = None,
          threshold: float = 0.5) -> dict[str, float]:
    """Test-set metrics named as in ``metrics.json``.

    Args:
        y_true: true values; for classification integer-encoded labels ``0..k-1``.
        problem_type: a problem type or its name; its ``output`` says what is scored.
        proba: class probabilities ``(n, k)`` (or the positive class's, ``(n,)``).
        pred: continuous predictions (regression), or labels when ``proba`` is None.
        threshold: binary decision threshold on ``proba[:, 1]`` (predict 1 when ``>=``).

    Returns:
        Classification: accuracy, precision, recall, f1 (binary: class 1; multi-class: macro),
        roc_auc, pr_auc, log_loss (when ``proba`` is given); binary also tn, fp, fn, tp,
        positive_rate, predicted_positive_rate. Regression: rmse, mae, r2, mape (percent, over
        the ``mape_rows`` rows whose true value is not 0).

    Raises:
        ConfigError: unknown problem type or threshold outside [0, 1].
        DataError: empty, misaligned, non-finite or wrongly encoded inputs.

    Example:
        >>> score([0, 1, 1, 0], problem_type="classification", proba=[.2, .7, .4, .1])["recall"]
        0.5
    """
    return _score(_prepare(y_true, problem_type, proba, pred, threshold))


def _score(d: Prepared) -> dict[str, float]:
    import sklearn.metrics as skm

    if d.kind == "continuous":
        out = {name: get_metric(name)(d.y, d.pred) for name in ("rmse", "mae", "r2")}
        nonzero = d.y != 0
        out["mape"] = get_metric("mape")(d.y[nonzero], d.pred[nonzero]) if nonzero.any() else math.nan
        out["mape_rows"] = int(nonzero.sum())
        if not nonzero.all():
            logger.info("mape skips %d rows whose true value is 0", int((~nonzero).sum()))
        return out
    y, lab = d.y, d.labels
    avg: dict[str, Any] = ({"average": "binary"} if d.kind == "binary"
                           else {"average": "macro", "labels": d.classes})
    out = {"accuracy": float(skm.accuracy_score(y, lab))}
    for name in ("precision", "recall", "f1"):
        out[name] = float(getattr(skm, f"{name}_score")(y, lab, zero_division=0, **avg))
    if d.proba is not None:
        out["roc_auc"] = _per_class(skm.roc_auc_score, d)
        out["pr_auc"] = _per_class(skm.average_precision_score, d)
        out["log_loss"] = float(skm.log_loss(y, d.proba, labels=np.arange(d.proba.shape[1])))
    if d.kind == "binary":
        tn, fp, fn, tp = skm.confusion_matrix(y, lab, labels=[0, 1]).ravel()
        out.update(tn=int(tn), fp=int(fp), fn=int(fn), tp=int(tp), positive_rate=float(y.mean()),
                   predicted_positive_rate=float(lab.mean()))
    return out


def _per_class(fn: Any, d: Prepared) -> float:
    # One-vs-rest macro over the classes present, as scikit-learn's multi_class="ovr" does when
    # every class is present; a class missing from the test set would make it raise instead.
    values = [float(fn(d.y == c, d.proba[:, c])) for c in scored_classes(d)]
    return float(np.mean(values)) if values else math.nan


# --- bootstrap ----------------------------------------------------------------------------------
def bootstrap_ci(y_true: Any, *, problem_type: str | ProblemType, proba: Any = None, pred: Any = None,
                 threshold: float = 0.5, n_boot: int = 1000, alpha: float = 0.05,
                 seed: int = 0) -> dict[str, float]:
    """Percentile bootstrap confidence intervals for every metric of :func:`score`.

    Rows are resampled with replacement; for classification each class keeps its count in
    every resample (stratified), so a test set with a handful of positives never yields a
    resample without any. Confusion counts and ``mape_rows`` get no interval.

    Returns:
        ``{name}_ci_low`` and ``{name}_ci_high`` for each metric (NaN where undefined).

    Raises:
        ConfigError: ``n_boot < 1`` or ``alpha`` outside (0, 1), or as :func:`score`.

    Example:
        >>> ci = bootstrap_ci([0, 1] * 50, problem_type="classification",
        ...                   proba=[.3, .6] * 50, n_boot=200)
        >>> ci["accuracy_ci_low"], ci["accuracy_ci_high"]
        (1.0, 1.0)
    """
    if int(n_boot) < 1:
        raise ConfigError(f"n_boot must be at least 1, got {n_boot!r}")
    if not 0.0 < float(alpha) < 1.0:
        raise ConfigError(f"alpha must lie in (0, 1), got {alpha!r}; 0.05 gives 95% intervals")
    d = _prepare(y_true, problem_type, proba, pred, threshold)
    strata = class_strata(d)
    rng = np.random.default_rng(seed)
    chunk = max(1, min(int(n_boot), _CHUNK_CELLS // d.y.size))
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, int(n_boot), chunk):
        b = min(chunk, int(n_boot) - start)
        counts = [resample_counts(idx.size, b, rng) for idx in strata]
        for name, values in stratum_metrics(d, strata, counts).items():
            parts.setdefault(name, []).append(values)
    q = [100 * alpha / 2, 100 * (1 - alpha / 2)]
    out: dict[str, float] = {}
    for name, values in parts.items():
        finite = np.concatenate(values)
        finite = finite[~np.isnan(finite)]
        low, high = np.percentile(finite, q) if finite.size else (math.nan, math.nan)
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = float(low), float(high)
    return out


def evaluate(y_true: Any, *, problem_type: str | ProblemType, proba: Any = None, pred: Any = None,
             threshold: float = 0.5, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """:func:`score`, its 95% :func:`bootstrap_ci`, ``n_test`` and (classification) ``threshold``.

    Example:
        >>> m = evaluate([1.0, 2.0, 4.0], problem_type="regression", pred=[1.0, 2.5, 3.5])
        >>> m["mae"], m["n_test"]
        (0.3333333333333333, 3)
    """
    out = score(y_true, problem_type=problem_type, proba=proba, pred=pred, threshold=threshold)
    out.update(bootstrap_ci(y_true, problem_type=problem_type, proba=proba, pred=pred,
                            threshold=threshold, n_boot=n_boot, seed=seed))
    out["n_test"] = int(np.asarray(y_true).size)
    if problems.get(problem_type).output == "probabilities":
        out["threshold"] = float(threshold)
    return out


# --- threshold tuning ---------------------------------------------------------------------------
def tune_threshold(y_true: Any, proba_pos: Any, *, targets: Sequence[Target] = (),
                   default: str = "f1") -> ThresholdChoice:
    """Choose the decision threshold from the targets that depend on it, else by ``default``.

    Several threshold targets (any two of precision, recall, F1, accuracy, balanced accuracy):
    the threshold that maximises the smallest *relative slack* over all of them
    (``(measured - wanted) / wanted`` for ``>=``, the mirror for ``<=``), so no target sits at
    the edge while another has room to spare; ``slack`` reports that smallest slack. When no
    threshold meets them all, or there is only one, the single-target rule: a precision target
    picks the highest recall among the thresholds meeting it; else a recall target the highest
    precision; when none meets it, the best precision (resp. recall) is chosen and ``met`` is
    False. With no precision or recall target, ``default``: ``"f1"`` (max F1) or ``"fixed"``
    (0.5). Pass validation or out-of-fold predictions, never the test set.

    Raises:
        ConfigError: unknown ``default``.
        DataError: not binary 0/1 labels with both classes present, or misaligned scores.

    Example:
        >>> tune_threshold([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9]).threshold
        0.4
    """
    import pandas as pd
    from sklearn.metrics import precision_recall_curve

    if default not in _THRESHOLD_DEFAULTS:
        raise ConfigError(f"default must be one of {_THRESHOLD_DEFAULTS}, got {default!r}")
    y = _integer_labels(np.asarray(y_true).ravel(), "y_true")
    scores = np.asarray(proba_pos)
    if scores.ndim == 2 and scores.shape[1] == 2:  # a whole predict_proba output
        scores = scores[:, 1]
    s = _finite(_rows(scores, y, "proba_pos").astype(float), "proba_pos")
    if y.size == 0 or set(np.unique(y)) != {0, 1}:
        raise DataError(f"threshold tuning needs binary labels 0/1 with both present, got "
                        f"{np.unique(y).tolist()}")
    precision, recall, thresholds = precision_recall_curve(y, s)
    precision, recall = precision[:-1], recall[:-1]  # the last point (recall 0) has no threshold
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    flagged = 1 - np.searchsorted(np.sort(s), thresholds, side="left") / s.size
    curve = pd.DataFrame({"threshold": thresholds, "precision": precision, "recall": recall,
                          "f1": f1, "flagged_rate": flagged})
    own = [t for t in targets if t.relative_to is None]
    several = [t for t in own if t.metric in _THRESHOLD_METRICS]
    all_met = None
    if len(several) > 1:
        values = _threshold_metrics(y, precision, recall, f1, flagged)
        slack = np.min([_slack(t, values[t.metric]) for t in several], axis=0)
        curve["min_slack"] = slack
        all_met = np.array([all(t.is_met(values[t.metric][j]) for t in several) for j in range(slack.size)])
        if all_met.any():
            i = _best(np.where(all_met, slack, -np.inf), f1, thresholds)
            reason = (f"{', '.join(t.render() for t in several)}: the largest smallest relative slack "
                      f"({slack[i]:+.1%}) among the {int(all_met.sum())} of {all_met.size} thresholds "
                      f"meeting them all")
            return ThresholdChoice(float(thresholds[i]), float(precision[i]), float(recall[i]),
                                   float(f1[i]), True, reason, curve, float(slack[i]))
    by_metric = {m: [t for t in own if t.metric == m] for m in ("precision", "recall")}
    drive = "precision" if by_metric["precision"] else "recall" if by_metric["recall"] else None
    if drive is None and default == "fixed":
        fixed = _score(_prepare_classes(y, s, None, 0.5))
        return ThresholdChoice(0.5, fixed["precision"], fixed["recall"], fixed["f1"], True,
                               "no precision or recall target; kept the default threshold 0.5",
                               curve)
    if drive is None:
        i = _best(f1, precision, thresholds)
        met, reason = True, f"no precision or recall target; chose the maximum F1 ({f1[i]:.4f})"
    else:
        other = "recall" if drive == "precision" else "precision"
        values = {"precision": precision, "recall": recall}
        wanted = " and ".join(t.render() for t in by_metric[drive])
        ok = np.array([all(t.is_met(v) for t in by_metric[drive]) for v in values[drive]])
        met = bool(ok.any())
        if met:
            i = _best(np.where(ok, values[other], -np.inf), values[drive], thresholds)
            reason = (f"{wanted}: the highest {other} ({values[other][i]:.4f}) among the "
                      f"{int(ok.sum())} of {ok.size} thresholds meeting it")
        else:
            i = _best(values[drive], values[other], thresholds)
            reason = (f"no threshold reaches {wanted} on these {y.size} rows; chose the best "
                      f"{drive} ({values[drive][i]:.4f}, {other} {values[other][i]:.4f})")
        for t in by_metric[other]:
            reason += f"; {t.render()} {'is' if t.is_met(values[other][i]) else 'is NOT'} met there"
    slack_i = None
    if all_met is not None:  # several threshold targets, no threshold meeting them all
        reason += (f"; no threshold meets all of {', '.join(t.render() for t in several)}, "
                   f"so the single-target rule chose this one")
        met, slack_i = False, float(curve["min_slack"].iloc[i])
    return ThresholdChoice(float(thresholds[i]), float(precision[i]), float(recall[i]),
                           float(f1[i]), met, reason, curve, slack_i)


def _threshold_metrics(y: np.ndarray, precision: np.ndarray, recall: np.ndarray, f1: np.ndarray,
                       flagged: np.ndarray) -> dict[str, np.ndarray]:
    """Every threshold-dependent metric along the curve, from its confusion counts."""
    n, pos = y.size, float(y.sum())
    neg = n - pos
    tp = recall * pos
    fp = flagged * n - tp
    tn = neg - fp
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": (tp + tn) / n,
            "balanced_accuracy": (recall + tn / neg) / 2}


def _slack(target: Target, values: np.ndarray) -> np.ndarray:
    """How far each value is inside (> 0) or outside (< 0) the target, relative to its value."""
    scale = abs(target.value) or 1.0
    gap = values - target.value if target.op in (">", ">=") else target.value - values
    if target.op == "==":
        gap = -np.abs(values - target.value)
    return gap / scale


def _best(primary: np.ndarray, secondary: np.ndarray, thresholds: np.ndarray) -> int:
    """Index maximising ``primary``, then ``secondary``, then the threshold (fewest flagged)."""
    return int(np.lexsort((thresholds, secondary, primary))[-1])


# --- error analysis -----------------------------------------------------------------------------
def error_analysis(X: Any, y_true: Any, *, problem_type: str | ProblemType, proba: Any = None, pred: Any = None,
                   threshold: float = 0.5, top: int = 20, max_segments: int = 20) -> dict:
    """The worst-predicted rows and metrics per segment of each categorical column of ``X``.

    Worst means the highest log loss (classification with ``proba``), misclassified
    (labels only) or the largest absolute error (regression). Segments are the values of each
    string, category or bool column (missing values form their own segment, ``None``), the
    ``max_segments`` largest shown.

    Returns:
        JSON-able dict: ``worst_by``, ``worst`` (records: ``row`` index label, ``y_true``, the
        prediction, the error and the row's feature values), ``segments`` (column -> list of
        ``{segment, rows, ...metrics}``) and ``segment_counts`` (column -> number of segments).

    Raises:
        DataError: ``X`` has another number of rows than ``y_true``, or as :func:`score`.
    """
    import pandas as pd

    d = _prepare(y_true, problem_type, proba, pred, threshold)
    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
    if len(frame) != d.y.size:
        raise DataError(f"X has {len(frame)} rows but y_true has {d.y.size}")
    worst_by, loss, extra = _row_errors(d)
    order = np.argsort(-loss, kind="stable")[: max(0, int(top))]
    worst = []
    for i in order:
        record: dict[str, Any] = {"row": frame.index[i], worst_by: float(loss[i])}
        record.update({name: col[i] for name, col in extra.items()})
        record.update({k if k not in record else f"feature_{k}": v  # never hide a metric key
                       for k, v in frame.iloc[i].to_dict().items()})
        worst.append({str(k): _plain(v) for k, v in record.items()})
    segments, counts = {}, {}
    for col in frame.columns:
        if not _is_categorical(frame[col]):
            continue
        keys = frame[col].astype(object).where(frame[col].notna(), None).to_numpy()
        groups = pd.Series(np.arange(d.y.size)).groupby(keys, dropna=False, sort=False).indices
        ranked = sorted(groups.items(), key=lambda kv: (-kv[1].size, str(kv[0])))
        counts[str(col)] = len(ranked)
        segments[str(col)] = [{"segment": _plain(key), **_segment_metrics(d, rows)}
                              for key, rows in ranked[: max(0, int(max_segments))]]
    return {"worst_by": worst_by, "worst": worst, "segments": segments, "segment_counts": counts}


def _row_errors(d: Prepared) -> tuple[str, np.ndarray, dict[str, np.ndarray]]:
    if d.kind == "continuous":
        err = d.pred - d.y
        return "abs_error", np.abs(err), {"y_true": d.y, "pred": d.pred, "error": err}
    extra = {"y_true": d.y, "predicted": d.labels}
    if d.proba is None:
        return "misclassified", (d.y != d.labels).astype(float), extra
    extra["proba_true_class"] = d.proba[np.arange(d.y.size), d.y]
    if d.kind == "binary":
        extra["proba_positive"] = d.proba[:, 1]
    return "log_loss", row_log_loss(d), extra


def _segment_metrics(d: Prepared, rows: np.ndarray) -> dict[str, Any]:
    import sklearn.metrics as skm

    out: dict[str, Any] = {"rows": int(rows.size)}
    if d.kind == "continuous":
        y, p = d.y[rows], d.pred[rows]
        out.update(rmse=float(skm.root_mean_squared_error(y, p)),
                   mae=float(skm.mean_absolute_error(y, p)), bias=float(np.mean(p - y)))
        return out
    y, lab = d.y[rows], d.labels[rows]
    # multi-class: macro over the classes present in this segment, not the whole test set's
    avg = {"average": "binary" if d.kind == "binary" else "macro"}
    if d.kind == "binary":
        out.update(positives=int(y.sum()), flagged=int(lab.sum()))
    out["accuracy"] = float(skm.accuracy_score(y, lab))
    for name in ("precision", "recall", "f1"):
        out[name] = float(getattr(skm, f"{name}_score")(y, lab, zero_division=0, **avg))
    return out


def _is_categorical(series: pd.Series) -> bool:
    import pandas as pd

    dtype = series.dtype
    return (isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype)
            or pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype))


def _plain(value: Any) -> Any:
    """A JSON value for one cell: numpy scalars unwrapped, timestamps ISO, missing as None."""
    import pandas as pd

    if value is None or isinstance(value, (str, bool, int)):
        return value
    missing = pd.isna(value)
    if isinstance(missing, (bool, np.bool_)) and missing:  # NaN, None, NaT, pd.NA
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    return value if isinstance(value, (str, bool, int, float)) else str(value)


# --- plots --------------------------------------------------------------------------------------
def write_plots(directory: str | Path, y_true: Any, *, problem_type: str | ProblemType, proba: Any = None,
                pred: Any = None, threshold: float = 0.5,
                curve: pd.DataFrame | None = None) -> list[Path]:
    """Write the evaluation plots as PNG files into ``directory`` (created if missing).

    Binary: ``roc.png``, ``pr.png``, ``confusion_matrix.png``, ``calibration.png`` and, when the
    :class:`ThresholdChoice` ``curve`` is given, ``threshold.png``. Multi-class:
    ``confusion_matrix.png`` and ``roc.png`` (one curve per class). Regression:
    ``residuals.png``, ``predicted_vs_actual.png``. Uses matplotlib's Agg canvas; the global
    backend is left alone.

    Returns:
        The paths written, in that order.

    Raises:
        MissingDependencyError: matplotlib is not installed.
    """

    d = _prepare(y_true, problem_type, proba, pred, threshold)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return _evaluate_plots.write_all(directory, d, threshold=float(threshold), curve=curve)

