"""The bootstrap's arithmetic: the metrics of :func:`specweave_ray.evaluate._scores.score` under
many row-weight vectors at once.

Private to :mod:`specweave_ray.evaluate._scores`. A resample is a row of *counts* (how often each row
was drawn); every metric becomes a weighted sum over a ``(resamples, rows)`` matrix, and ROC AUC
and average precision come from cumulative weights in score order, tied scores sharing one
threshold as in scikit-learn's ``_binary_clf_curve``. With all counts 1 (or any integer
counts) the results equal scikit-learn's on the correspondingly repeated rows; the tests check
that for every problem type.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from specweave_ray.evaluate._types import Prepared


def scored_classes(d: Prepared) -> list[int]:
    """Classes with a defined one-vs-rest AUC: present in y_true, and not alone there."""
    present = np.unique(d.y)
    columns = [1] if d.kind == "binary" else list(present)
    return [int(c) for c in columns if len(present) > 1 and c in present]


def class_strata(d: Prepared) -> list[np.ndarray]:
    """Row indices resampled together: one stratum per class (binary: ordered by score)."""
    if d.kind == "continuous":
        return [np.arange(d.y.size)]
    strata = [np.flatnonzero(d.y == c) for c in np.unique(d.y)]
    if d.kind == "binary" and d.proba is not None:
        strata = [idx[np.argsort(d.proba[idx, 1], kind="stable")] for idx in strata]
    return strata


def resample_counts(m: int, b: int, rng: np.random.Generator) -> np.ndarray:
    """``(b, m)`` matrix: how often each of ``m`` rows appears in each of ``b`` resamples."""
    draws = rng.integers(0, m, size=(b, m)) + (np.arange(b) * m)[:, None]
    return np.bincount(draws.ravel(), minlength=b * m).reshape(b, m).astype(float)


def weighted_metrics(d: Prepared, w: np.ndarray) -> dict[str, np.ndarray]:
    """The metrics of ``score()`` (less counts) under each row of weights ``w`` ``(b, n)``."""
    strata = class_strata(d)
    return stratum_metrics(d, strata, [w[:, idx] for idx in strata])


def stratum_metrics(d: Prepared, strata: list[np.ndarray],
                    counts: list[np.ndarray]) -> dict[str, np.ndarray]:
    """As :func:`weighted_metrics`, the weights given per stratum (``(b, len(stratum))`` each)."""
    from scipy import sparse

    if d.kind == "binary":
        return _binary_metrics(d, strata, counts)
    w = np.zeros((counts[0].shape[0], d.y.size))
    for idx, c in zip(strata, counts, strict=True):
        w[:, idx] = c
    total = w.sum(axis=1)
    if d.kind == "continuous":
        err = d.pred - d.y
        centre = d.y.mean()  # shifted sums keep the variance numerically stable
        mean_y = w @ (d.y - centre) / total
        ss_tot = w @ (d.y - centre) ** 2 - total * mean_y**2
        ss_res = w @ err**2
        nz = d.y != 0
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.where(ss_res == 0, 1.0, 0.0))
            mape = 100 * (w[:, nz] @ (np.abs(err[nz]) / np.abs(d.y[nz]))) / w[:, nz].sum(axis=1)
        return {"rmse": np.sqrt(ss_res / total), "mae": w @ np.abs(err) / total, "r2": r2,
                "mape": mape}
    k = d.classes.max() + 1 if d.proba is None else d.proba.shape[1]
    cells = sparse.csr_matrix((np.ones(d.y.size), (np.arange(d.y.size), d.y * k + d.labels)),
                              shape=(d.y.size, k * k))  # row -> its (true, predicted) cell
    conf = np.asarray((cells.T @ w.T).T).reshape(-1, k, k)  # weighted confusion matrices
    tp = np.diagonal(conf, axis1=1, axis2=2)
    out = _label_metrics(tp, conf.sum(axis=2), conf.sum(axis=1), total)
    for name in ("precision", "recall", "f1"):
        out[name] = out[name][:, d.classes].mean(axis=1)
    if d.proba is not None:
        curves = []
        for c in scored_classes(d):
            pos, neg = (np.flatnonzero(mask) for mask in (d.y == c, d.y != c))
            pos, neg = (i[np.argsort(d.proba[i, c], kind="stable")] for i in (pos, neg))
            curves.append(_auc_ap(w[:, pos], d.proba[pos, c], w[:, neg], d.proba[neg, c]))
        nan = np.full(len(w), np.nan)
        out["roc_auc"] = np.mean([c[0] for c in curves], axis=0) if curves else nan
        out["pr_auc"] = np.mean([c[1] for c in curves], axis=0) if curves else nan
        out["log_loss"] = w @ row_log_loss(d) / total
    return out


def _binary_metrics(d: Prepared, strata: list[np.ndarray],
                    counts: list[np.ndarray]) -> dict[str, np.ndarray]:
    # Each class is its own stratum, in score order: the confusion counts are two dot products
    # and the curves need no re-sorting. A class absent from y_true is an empty stratum.
    b = counts[0].shape[0]
    by_class = {int(d.y[idx[0]]): (idx, c) for idx, c in zip(strata, counts, strict=True)}
    empty = (np.zeros(0, dtype=int), np.zeros((b, 0)))
    (neg, w_neg), (pos, w_pos) = by_class.get(0, empty), by_class.get(1, empty)
    n_neg, n_pos = w_neg.sum(axis=1), w_pos.sum(axis=1)
    flagged = d.labels.astype(float)
    tp, fp = w_pos @ flagged[pos], w_neg @ flagged[neg]
    conf_true = np.column_stack([n_neg, n_pos])
    conf_pred = np.column_stack([n_neg - fp + n_pos - tp, fp + tp])
    total = n_neg + n_pos
    out = _label_metrics(np.column_stack([n_neg - fp, tp]), conf_true, conf_pred, total)
    out = {name: v[:, 1] if name in ("precision", "recall", "f1") else v for name, v in out.items()}
    if d.proba is not None:
        p = d.proba[:, 1]
        out["roc_auc"], out["pr_auc"] = _auc_ap(w_pos, p[pos], w_neg, p[neg])
        loss = row_log_loss(d)
        out["log_loss"] = (w_pos @ loss[pos] + w_neg @ loss[neg]) / total
    out["positive_rate"] = conf_true[:, 1] / total
    out["predicted_positive_rate"] = conf_pred[:, 1] / total
    return out


def _label_metrics(tp: np.ndarray, true_n: np.ndarray, pred_n: np.ndarray,
                   total: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy and per-class precision/recall/F1 ``(b, k)`` from weighted confusion margins."""
    with np.errstate(divide="ignore", invalid="ignore"):  # zero_division=0, as in score()
        return {"accuracy": tp.sum(axis=1) / total,
                "precision": np.where(pred_n > 0, tp / pred_n, 0.0),
                "recall": np.where(true_n > 0, tp / true_n, 0.0),
                "f1": np.where(true_n + pred_n > 0, 2 * tp / (true_n + pred_n), 0.0)}


def row_log_loss(d: Prepared) -> np.ndarray:
    """Each row's log loss (``log_loss`` is their mean)."""
    eps = np.finfo(float).eps  # scikit-learn clips to [eps, 1 - eps] for the dtype
    return -np.log(np.clip(d.proba[np.arange(d.y.size), d.y], eps, 1 - eps))


def _auc_ap(w_pos: np.ndarray, s_pos: np.ndarray, w_neg: np.ndarray,
            s_neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC AUC and average precision under each row of weights; rows sorted by score.

    AUC: each positive counts the negatives scored below it plus half the tied ones. AP, as
    scikit-learn's step sum: each positive's weight share times the precision at its own
    score taken as threshold (ties share one threshold, like ``_binary_clf_curve``).
    """
    b = w_pos.shape[0]
    cum_neg = np.zeros((b, s_neg.size + 1))
    np.cumsum(w_neg, axis=1, out=cum_neg[:, 1:])
    cum_pos = np.zeros((b, s_pos.size + 1))
    np.cumsum(w_pos, axis=1, out=cum_pos[:, 1:])
    below, upto = (np.searchsorted(s_neg, s_pos, side=side) for side in ("left", "right"))
    n_pos, n_neg = cum_pos[:, -1:], cum_neg[:, -1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (w_pos * (cum_neg[:, below] + cum_neg[:, upto])).sum(axis=1)
        auc /= 2 * (n_pos * n_neg)[:, 0]
        hits = n_pos - cum_pos[:, np.searchsorted(s_pos, s_pos, side="left")]
        flagged = hits + n_neg - cum_neg[:, below]
        precision = np.divide(hits, flagged, out=np.zeros_like(hits), where=flagged > 0)
        ap = (w_pos * precision).sum(axis=1) / n_pos[:, 0]
    defined = n_pos[:, 0] > 0
    return np.where(defined & (n_neg[:, 0] > 0), auc, np.nan), np.where(defined, ap, np.nan)
