"""The paired bootstrap behind lift CIs: a model and its references scored on the same resamples.

A lift compares two scores on one test split; resampling them independently (or resampling
only the model against a fixed baseline) ignores that both move with the rows drawn. Here each
resample is one row-count vector (stratified by class, as :func:`bootstrap_ci`), applied to the
model's outputs and to every reference's, so a lift per resample is a difference on the same
rows. A reference given several draws (a random baseline under several seeds) contributes the
mean over its draws per resample: its *expected* score, not one lucky draw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from specweave_ray.evaluate._bootstrap import resample_counts, weighted_metrics
from specweave_ray.evaluate._scores import _CHUNK_CELLS, _prepare
from specweave_ray.exceptions import ConfigError
from specweave_ray.problems import ProblemType

__all__ = ["paired_samples"]


def paired_samples(y_true: Any, *, problem_type: str | ProblemType, metric: str,
                   model: Mapping[str, Any], references: Mapping[str, Sequence[Mapping[str, Any]]],
                   n_boot: int = 1000, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """``metric`` of the model and of each reference under the same ``n_boot`` resamples.

    Args:
        y_true: The test labels (encoded ``0..k-1``) or values.
        problem_type: The problem type (what ``proba``/``pred`` mean).
        metric: A metric the bootstrap computes (``roc_auc``, ``f1``, ``rmse`` …).
        model: The model's outputs as :func:`evaluate` takes them (``proba`` and ``threshold``,
            or ``pred``).
        references: Reference name → one or more draws of its outputs (same keywords).
        n_boot: Resamples.
        seed: Seed of the resampling.

    Returns:
        ``(model_values, {name: expected_values})``, arrays of length ``n_boot`` (NaN where a
        resample leaves the metric undefined); None when the bootstrap has no ``metric``.

    Raises:
        ConfigError: ``n_boot < 1`` or a reference without draws.

    Example:
        >>> y = [0, 1] * 50
        >>> m, refs = paired_samples(y, problem_type="classification", metric="accuracy",
        ...                          model={"proba": [0.2, 0.9] * 50},
        ...                          references={"majority": [{"proba": [0.0] * 100}]}, n_boot=20)
        >>> bool((m == 1.0).all()), bool((refs["majority"] < 1.0).all())
        (True, True)
    """
    if int(n_boot) < 1:
        raise ConfigError(f"n_boot must be at least 1, got {n_boot!r}")
    empty = [name for name, draws in references.items() if not draws]
    if empty:
        raise ConfigError(f"references {empty} have no outputs to score")
    d = _prepare(y_true, problem_type, model.get("proba"), model.get("pred"), model.get("threshold", 0.5))
    refs = {name: [_prepare(y_true, problem_type, kw.get("proba"), kw.get("pred"), kw.get("threshold", 0.5))
                   for kw in draws] for name, draws in references.items()}
    # rows resampled within each class, so the pairs keep the test split's class counts
    strata = [np.arange(d.y.size)] if d.kind == "continuous" else [np.flatnonzero(d.y == c) for c in np.unique(d.y)]
    rng = np.random.default_rng(seed)
    chunk = max(1, min(int(n_boot), _CHUNK_CELLS // d.y.size))
    ours: list[np.ndarray] = []
    theirs: dict[str, list[np.ndarray]] = {name: [] for name in refs}
    for start in range(0, int(n_boot), chunk):
        b = min(chunk, int(n_boot) - start)
        w = np.zeros((b, d.y.size))
        for idx in strata:
            w[:, idx] = resample_counts(idx.size, b, rng)
        values = weighted_metrics(d, w)
        if metric not in values:
            return None
        ours.append(values[metric])
        for name, draws in refs.items():
            theirs[name].append(np.mean([weighted_metrics(r, w)[metric] for r in draws], axis=0))
    return np.concatenate(ours), {name: np.concatenate(v) for name, v in theirs.items()}
