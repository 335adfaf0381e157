"""Explanations of a packaged model's predictions: SHAP values per row, summed to input columns.

* XGBoost and LightGBM: exact tree SHAP on the encoded features, in the model's raw margin
  (log-odds for a binary classifier), computed by the booster itself (XGBoost
  ``predict(pred_contribs=True)``, LightGBM ``predict(pred_contrib=True)``). SHAP's
  ``TreeExplainer`` calls the very same methods for these models (same numbers, same C++), after
  reading every tree into its own arrays and before a second pass for its additivity check; the
  direct call skips both. ``benchmarks/bench_explain.py`` times the two. Rows are bounded by
  ``MAX_TREE_ROWS``.
* Every other model: Kernel SHAP over the *input columns* (a one-hot block moves as one), against
  at most ``KERNEL_BACKGROUND`` of the package's background rows, in probability (classifiers) or
  value (regressors) space, with at most ``KERNEL_SAMPLES`` coalitions per row and
  ``MAX_KERNEL_ROWS`` rows per call, so a call stays bounded in time.

Either way the contributions of all columns add up: ``base_value + sum == output_value``.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from specweave_ray.deploy._package_read import read_background
from specweave_ray.exceptions import DataError, MissingDependencyError, require

__all__ = ["ShapMatrix", "explain_matrix", "explain_rows", "tree_contributions"]

MAX_TREE_ROWS = 10_000
MAX_KERNEL_ROWS = 100
KERNEL_BACKGROUND = 20
KERNEL_SAMPLES = 512


@dataclass(frozen=True)
class ShapMatrix:
    """SHAP contributions of many rows, summed to input columns.

    Attributes:
        features: The input columns, in the order of ``values``' columns.
        values: ``(rows, features)`` contributions.
        base: ``(rows,)`` base values: ``base + values.sum(axis=1)`` is the explained output.
        output: ``log_odds`` | ``margin`` | ``probability`` | ``value``.
        method: ``tree-shap`` | ``kernel-shap``.
        explained: For a classifier, the class index each row's contributions explain (the second
            class of a binary model, the predicted class of a multiclass one); else None.
        proba: A classifier's probabilities of the rows, else None.
    """

    features: list[str]
    values: np.ndarray
    base: np.ndarray
    output: str
    method: str
    explained: np.ndarray | None
    proba: np.ndarray | None

    @property
    def output_value(self) -> np.ndarray:
        return self.base + self.values.sum(axis=1)


def explain_matrix(predictor: Any, frame: pd.DataFrame) -> ShapMatrix:
    """SHAP contributions of validated rows ``frame`` (``predictor.validate``), per input column.

    Raises:
        DataError: No rows, or more than the explainer takes per call.
    """
    tree = predictor.explainer_kind in ("tree-shap", "ensemble-tree-shap")
    limit = MAX_TREE_ROWS if tree else MAX_KERNEL_ROWS
    if len(frame) > limit:
        raise DataError(f"explain takes at most {limit} rows per call for this model, got {len(frame)}")
    if frame.empty:
        raise DataError("no rows given")
    X = np.asarray(predictor.encode(frame), dtype=np.float64)
    units = list(dict.fromkeys(predictor.feature_groups))
    groups = np.asarray(predictor.feature_groups)
    classes = predictor.classes
    proba = predictor.raw_predict(X) if classes is not None else None
    explained = None if classes is None else (
        np.ones(len(X), dtype=np.intp) if len(classes) == 2 else np.argmax(proba, axis=1))
    if tree:
        base, phi, output = (_ensemble_tree(predictor.model, X) if predictor.explainer_kind == "ensemble-tree-shap"
                             else _tree(predictor, X, explained))
        onehot = np.stack([groups == u for u in units], axis=1).astype(np.float64)
        contrib = phi @ onehot
    else:
        base, contrib, output = _kernel(predictor, X, explained, groups, units)
    return ShapMatrix(units, contrib, base, output, predictor.explainer_kind, explained, proba)


def explain_rows(predictor: Any, rows: Any, *, top: int = 5) -> list[dict[str, Any]]:
    """Explain each row's prediction (see :meth:`specweave_ray.deploy.predictor.Predictor.explain`).

    Returns:
        One dict per row: ``prediction``, ``probability`` and ``explained_class`` (classifiers),
        ``method``, ``output`` (``log_odds`` | ``margin`` | ``probability`` | ``value``),
        ``base_value``, ``output_value``, ``contributions`` (the ``top`` columns by absolute
        contribution: ``feature``, ``value``, ``contribution``) and ``other`` (the rest's sum).

    Raises:
        DataError: Invalid rows, too many rows, or ``top`` not a positive integer.
    """
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise DataError(f"top must be a positive integer, got {top!r}")
    frame = predictor.validate(rows).reset_index(drop=True)
    m = explain_matrix(predictor, frame)
    return rows_from_matrix(predictor, frame, m, top=top)


def rows_from_matrix(predictor: Any, frame: pd.DataFrame, m: ShapMatrix, *, top: int) -> list[dict[str, Any]]:
    """:func:`explain_rows`' dicts from an already computed :class:`ShapMatrix` of ``frame``."""
    units, contrib, base = m.features, m.values, m.base
    classes = predictor.classes
    predictions = predictor.predict(frame)
    out = []
    for i in range(len(frame)):
        order = np.argsort(-np.abs(contrib[i]), kind="stable")
        item: dict[str, Any] = {"prediction": _plain(predictions[i])}
        if classes is not None:
            item["explained_class"] = _plain(classes[m.explained[i]])
            item["probability"] = float(m.proba[i, m.explained[i]])
        item.update({
            "method": m.method, "output": m.output, "base_value": float(base[i]),
            "output_value": float(base[i] + contrib[i].sum()),
            "contributions": [{"feature": units[j], "value": _plain(frame.at[i, units[j]]) if units[j] in frame
                               else None, "contribution": float(contrib[i, j])} for j in order[:top]],
            "other": float(contrib[i, order[top:]].sum()),
        })
        out.append(item)
    return out


def tree_contributions(booster: Any, X: np.ndarray, *, family: str, iteration_range: tuple[int, int] = (0, 0),
                       missing: float = np.nan) -> tuple[np.ndarray, np.ndarray]:
    """Exact tree SHAP from the booster itself: ``(phi, bias)``.

    ``phi`` is ``(rows, features)`` for one output or ``(rows, features, outputs)`` for a
    multiclass model; ``bias`` is ``(rows,)`` or ``(rows, outputs)``; ``phi.sum(axis=1) + bias``
    is the raw margin. ``family`` is ``"xgboost"`` (an ``xgboost.Booster``) or ``"lightgbm"``
    (a ``lightgbm.Booster``).
    """
    n, f = X.shape
    if family == "xgboost":
        import xgboost

        dm = xgboost.DMatrix(X, missing=missing)
        raw = np.asarray(booster.predict(dm, pred_contribs=True, iteration_range=iteration_range,
                                         validate_features=False), dtype=np.float64)
        if raw.ndim == 3:  # (rows, outputs, features + 1)
            raw = raw.transpose(0, 2, 1)
            return raw[:, :-1, :], raw[:, -1, :]
        return raw[:, :-1], raw[:, -1]
    raw = np.asarray(booster.predict(X, pred_contrib=True), dtype=np.float64)
    k = raw.shape[1] // (f + 1)
    if k > 1:  # LightGBM lays the classes side by side: (rows, outputs * (features + 1))
        raw = raw.reshape(n, k, f + 1).transpose(0, 2, 1)
        return raw[:, :-1, :], raw[:, -1, :]
    return raw[:, :-1], raw[:, -1]


def _shap() -> Any:
    try:
        with warnings.catch_warnings():  # shap's import pokes at deprecated matplotlib colormap APIs
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            return require("shap", feature="model explanations")
    except MissingDependencyError:
        raise
    except Exception as err:  # noqa: BLE001 - shap imports numba & co.; say which package broke
        raise MissingDependencyError(f"model explanations need a working 'shap' install: {err}") from err


def _tree(predictor: Any, X: np.ndarray, explained: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, str]:
    """(base per row, SHAP per encoded feature per row, output space) from the booster."""
    model = predictor.model
    rounds, missing = (0, 0), np.nan
    if predictor.family == "xgboost":
        with contextlib.suppress(AttributeError):  # no early stopping: every tree
            rounds = (0, int(model.best_iteration) + 1)
        missing = np.nan if model.missing is None else model.missing
    phi, bias = tree_contributions(predictor.raw_model, X, family=predictor.family, iteration_range=rounds,
                                   missing=missing)
    n = len(X)
    if phi.ndim == 2:  # one output: a regressor's value or a binary classifier's log-odds
        return bias, phi, "value" if explained is None else "log_odds"
    rows = np.arange(n)
    pick = explained if explained is not None else np.zeros(n, dtype=np.intp)
    output = "log_odds" if phi.shape[2] == 2 else "margin"
    return bias[rows, pick], phi[rows, :, pick], output


def _ensemble_tree(model: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """A weighted regression ensemble of tree models (``EnsembleModel.tree_additive``): its output
    is ``Σ wᵢ fᵢ(x)``, so its exact SHAP values are ``Σ wᵢ φᵢ`` and its base ``Σ wᵢ bᵢ``."""
    base, phi = np.zeros(len(X)), np.zeros(X.shape)
    for weight, member in zip(model.weights_, model.members_, strict=True):
        if hasattr(member, "get_booster"):
            rounds = (0, 0)
            with contextlib.suppress(AttributeError):  # no early stopping: every tree
                rounds = (0, int(member.best_iteration) + 1)
            p, b = tree_contributions(member.get_booster(), X, family="xgboost", iteration_range=rounds,
                                      missing=np.nan if member.missing is None else member.missing)
        else:
            p, b = tree_contributions(member.booster_, X, family="lightgbm")
        phi += weight * p
        base += weight * b
    return base, phi, "value"


def _kernel(predictor: Any, X: np.ndarray, explained: np.ndarray | None, groups: np.ndarray,
            units: list[str]) -> tuple[np.ndarray, np.ndarray, str]:
    """Kernel SHAP with the input columns as players: a coalition takes each column's encoded
    features from the row or from a background row (the row ids are what KernelExplainer sees)."""

    shap = _shap()
    with predictor._lock:  # one explainer per Predictor, built once even under threads
        if predictor._explainer is None:
            frame = read_background(predictor.metadata, predictor.folder)
            if frame is None or frame.empty:
                raise DataError(f"model-v{predictor.version} has no explainer background rows")
            predictor._explainer = np.asarray(predictor.encode(frame.head(KERNEL_BACKGROUND)), dtype=np.float64)
        background = predictor._explainer
    members = [np.flatnonzero(groups == u) for u in units]
    n_units, n_bg = len(units), len(background)
    ids = np.tile(np.arange(1, n_bg + 1, dtype=np.float64)[:, None], (1, n_units))
    nsamples: Any = KERNEL_SAMPLES if n_units > 9 else "auto"
    base = np.empty(len(X))
    contrib = np.empty((len(X), n_units))
    for i, x in enumerate(X):
        table = np.vstack([x[None, :], background])
        column = None if explained is None else int(explained[i])

        def f(Z: np.ndarray, table: np.ndarray = table, column: int | None = column) -> np.ndarray:
            Z = np.asarray(Z).astype(np.intp)
            mixed = np.empty((len(Z), table.shape[1]))
            for g, cols in enumerate(members):
                mixed[:, cols] = table[Z[:, g][:, None], cols[None, :]]
            scores = predictor.raw_predict(mixed)
            return np.asarray(scores if column is None else scores[:, column], dtype=np.float64)

        explainer = shap.KernelExplainer(f, ids, link="identity")
        phi = explainer.shap_values(np.zeros((1, n_units)), nsamples=nsamples, silent=True, l1_reg=False)
        contrib[i] = np.asarray(phi, dtype=np.float64).reshape(-1)[:n_units]
        base[i] = float(np.atleast_1d(explainer.expected_value)[0])
    return base, contrib, "value" if explained is None else "probability"


def _plain(value: Any) -> Any:
    """A JSON scalar: numpy scalars unwrapped, missing values as None, timestamps as ISO text."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value
