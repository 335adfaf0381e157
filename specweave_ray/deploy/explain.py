"""Explanations of a packaged model's predictions: SHAP values per row, summed to input columns.

* XGBoost and LightGBM: SHAP's ``TreeExplainer`` on the encoded features, in the model's raw
  margin (log-odds for a binary classifier). Exact and fast; rows are bounded by
  ``MAX_TREE_ROWS``.
* Every other model: Kernel SHAP over the *input columns* (a one-hot block moves as one), against
  at most ``KERNEL_BACKGROUND`` of the package's background rows, in probability (classifiers) or
  value (regressors) space, with at most ``KERNEL_SAMPLES`` coalitions per row and
  ``MAX_KERNEL_ROWS`` rows per call, so a call stays bounded in time.

Either way the contributions of all columns add up: ``base_value + sum == output_value``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from specweave_ray.deploy._package_read import read_background
from specweave_ray.exceptions import DataError, MissingDependencyError, require

__all__ = ["explain_rows"]

MAX_TREE_ROWS = 10_000
MAX_KERNEL_ROWS = 100
KERNEL_BACKGROUND = 20
KERNEL_SAMPLES = 512


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
    frame = predictor.validate(rows)
    tree = predictor.explainer_kind == "tree-shap"
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
        base, phi, output = _tree(predictor, X, explained)
        onehot = np.stack([groups == u for u in units], axis=1).astype(np.float64)
        contrib = phi @ onehot
    else:
        base, contrib, output = _kernel(predictor, X, explained, groups, units)
    predictions = predictor.predict(frame)
    out = []
    for i in range(len(X)):
        order = np.argsort(-np.abs(contrib[i]), kind="stable")
        item: dict[str, Any] = {"prediction": _plain(predictions[i])}
        if classes is not None:
            item["explained_class"] = _plain(classes[explained[i]])
            item["probability"] = float(proba[i, explained[i]])
        item.update({
            "method": predictor.explainer_kind, "output": output, "base_value": float(base[i]),
            "output_value": float(base[i] + contrib[i].sum()),
            "contributions": [{"feature": units[j], "value": _plain(frame.at[i, units[j]]) if units[j] in frame
                               else None, "contribution": float(contrib[i, j])} for j in order[:top]],
            "other": float(contrib[i, order[top:]].sum()),
        })
        out.append(item)
    return out


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
    """(base per row, SHAP per encoded feature per row, output space) from a TreeExplainer."""
    with predictor._lock:  # one explainer per Predictor, built once even under threads
        if predictor._explainer is None:
            predictor._explainer = _shap().TreeExplainer(predictor.raw_model)
        explainer = predictor._explainer
    values = explainer.shap_values(X)
    values = np.stack(values, axis=-1) if isinstance(values, list) else np.asarray(values)
    expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
    n = len(X)
    if values.ndim == 2:  # one output: a regressor's value or a binary classifier's log-odds
        output = "value" if explained is None else "log_odds"
        return np.full(n, expected[0]), values, output
    rows = np.arange(n)
    pick = explained if explained is not None else np.zeros(n, dtype=np.intp)
    output = "log_odds" if values.shape[2] == 2 else "margin"
    return expected[pick], values[rows, :, pick], output


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
