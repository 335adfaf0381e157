"""Cross-validation of one configuration, the work inside every trial (runs on the worker).

It knows nothing of Ray: the sweep passes a ``report`` function (Ray Tune's ``tune.report``) and
the sequential benchmark passes a plain one, so both measure the same work. Iterative learners
(boosting rounds, epochs) train in ``stages`` and report the fold-mean score after each, so an
ASHA scheduler can stop a poor configuration early.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from specweave_ray import problems
from specweave_ray.candidates._ensemble import OUTPUTS
from specweave_ray.candidates.device import configure
from specweave_ray.candidates.staged import budget_of, staged_fit
from specweave_ray.metrics import get_metric, predict_for

INFO_PREFIX = "info_"   # result keys that are facts about the trial, not metrics
ERROR_KEY = "_trial_error"  # a failed trial's last result: its error text (the sweep's runner reports it)
# the final result's out-of-fold outputs (an array, not a metric): the coordinator takes it out of
# Tune's result before Tune stores it, and keeps it beside the candidate's best record
OOF_KEY = "_oof"


def _take(data: Any, idx: np.ndarray) -> Any:
    return data.iloc[idx] if hasattr(data, "iloc") else data[idx]


def run_cv(
    estimator_cls: type,
    params: Mapping[str, Any],
    X: Any,
    y: Any,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    metric: str,
    preprocessor: Any | None = None,
    stages: int = 1,
    cpus: int = 1,
    gpu_ids: Sequence[str] = (),
    report: Callable[[dict[str, Any]], None] | None = None,
    node: str | None = None,
    problem_type: str | None = None,
    keep_oof: bool = False,
) -> dict[str, Any]:
    """Fit and score ``estimator_cls(**params)`` on every fold; return the last result.

    Args:
        estimator_cls: scikit-learn-compatible class.
        params: Concrete keyword arguments.
        X, y: Training data (``y`` label-encoded for classification).
        folds: ``(train_idx, valid_idx)`` pairs, computed once on the driver.
        metric: Name from :mod:`specweave_ray.metrics`.
        preprocessor: Unfitted transformer, cloned and fitted per fold on the fold's train part.
        stages: Report this many times (only for estimators with a boosting/epoch budget).
        cpus, gpu_ids: The trial's share; sets thread counts and the CUDA switch.
        report: Called with each intermediate/final result.
        node: Node id to record (the sweep passes Ray's node id).
        problem_type: The problem type that scores a fold (ranking metrics read each user's
            relevant items); default: the metric scores the model's predictions.
        keep_oof: Add the validation rows' outputs (the problem type's probabilities or values,
            float32, NaN for rows no fold validates) to the final result under :data:`OOF_KEY`,
            for the ensemble; only for a ``problem_type`` whose outputs are probabilities or values.
    """
    from sklearn.base import clone


    scorer = get_metric(metric)
    problem = problems.get(problem_type) if problem_type else None
    estimator = estimator_cls(**params)
    warnings = configure(estimator, cpus=max(1, int(cpus)), gpu_ids=list(gpu_ids))
    staged = stages > 1 and budget_of(estimator) is not None
    n_stages = stages if staged else 1

    t0 = time.perf_counter()
    prepared = []
    for train_idx, valid_idx in folds:
        X_tr, X_va = _take(X, train_idx), _take(X, valid_idx)
        y_tr, y_va = _take(y, train_idx), _take(y, valid_idx)
        if preprocessor is not None:
            pre = clone(preprocessor).fit(X_tr, y_tr)
            X_tr, X_va = pre.transform(X_tr), pre.transform(X_va)
        prepared.append((X_tr, X_va, np.asarray(y_tr), np.asarray(y_va)))
    prep_time = time.perf_counter() - t0

    if staged:
        runs = [staged_fit(clone(estimator), X_tr, y_tr, stages=n_stages) for X_tr, _, y_tr, _ in prepared]
    fit_time = predict_time = 0.0
    result: dict[str, Any] = {}
    fitted: list[Any] = [None] * len(prepared)
    for stage in range(1, n_stages + 1):
        scores = []
        for i, (X_tr, X_va, y_tr, y_va) in enumerate(prepared):
            t = time.perf_counter()
            if staged:
                fitted[i] = next(runs[i])
            elif problem is not None:
                fitted[i] = problem.fit_fold(clone(estimator), X_tr, y_tr, X_va)
            else:
                fitted[i] = clone(estimator).fit(X_tr, y_tr)
            fit_time += time.perf_counter() - t
            t = time.perf_counter()
            if problem is not None:
                scores.append(problem.score_model(scorer, fitted[i], X_va, y_va))
            else:
                scores.append(scorer(y_va, predict_for(scorer, fitted[i], X_va)))
            predict_time += time.perf_counter() - t
        mean, std = float(np.mean(scores)), float(np.std(scores))
        # what a model counts while fitting (a local forecaster's series fallbacks, timeouts), over the folds
        counts: dict[str, float] = {}
        for model in fitted:
            for key, value in (getattr(model, "fit_counts_", None) or {}).items():
                counts[key] = counts.get(key, 0) + value
        result = {
            metric: mean, "cv_mean": mean, "cv_std": std,
            **{f"cv_fold_{i + 1}": s for i, s in enumerate(scores)},
            "fit_time_s": fit_time, "predict_time_s": predict_time, "preprocess_time_s": prep_time,
            "stage": stage, "n_stages": n_stages, "n_folds": len(prepared),
            f"{INFO_PREFIX}node": node or socket.gethostname(),
            f"{INFO_PREFIX}hostname": socket.gethostname(),
            f"{INFO_PREFIX}gpu_ids": ",".join(map(str, gpu_ids)),
            f"{INFO_PREFIX}cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
            f"{INFO_PREFIX}device_warnings": " | ".join(warnings),
            **counts,
        }
        if keep_oof and problem is not None and problem.output in OUTPUTS and stage == n_stages:
            result[OOF_KEY] = _oof(problem, fitted, prepared, folds, n_rows=len(y))
        if report is not None:
            report(result)
    return result


def _oof(problem: Any, fitted: list[Any], prepared: list[Any], folds: Sequence[tuple[np.ndarray, np.ndarray]],
         *, n_rows: int) -> np.ndarray:
    """Each fold's validation outputs, at their rows (one more predict per fold, on the last stage
    only; float32 halves what travels back and what the coordinator holds)."""
    out: np.ndarray | None = None
    for model, (_, X_va, _, _), (_, valid_idx) in zip(fitted, prepared, folds, strict=True):
        part = problem.predict(model, X_va).astype(np.float32)
        if out is None:
            out = np.full((n_rows, *part.shape[1:]), np.nan, dtype=np.float32)
        out[np.asarray(valid_idx)] = part
    return out if out is not None else np.empty(0, dtype=np.float32)


def refit(
    estimator_cls: type,
    params: Mapping[str, Any],
    X: Any,
    y: Any,
    *,
    preprocessor: Any | None = None,
    cpus: int = 1,
    gpu_ids: Sequence[str] = (),
) -> tuple[Any, Any | None, list[str]]:
    """Fit the chosen configuration on all of ``X``; returns (model, fitted preprocessor, warnings)."""
    from sklearn.base import clone


    estimator = estimator_cls(**params)
    warnings = configure(estimator, cpus=max(1, int(cpus)), gpu_ids=list(gpu_ids))
    pre = None
    if preprocessor is not None:
        pre = clone(preprocessor).fit(X, y)
        X = pre.transform(X)
    return estimator.fit(X, np.asarray(y)), pre, warnings
