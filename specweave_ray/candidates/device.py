"""Fit an estimator to the resources a trial was given: its CPU count and its GPUs.

Threads are always set explicitly (one library's thread setting can cap another's in the same
process: ``torch.set_num_threads(1)`` halves XGBoost's speed). A GPU is used only where a CUDA
device is really usable; otherwise the estimator stays on CPU and the caller gets a warning to
record, never a crash.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from collections.abc import Sequence
from numbers import Integral
from typing import Any

from specweave_ray.candidates._common import family_of, qualified_name
from specweave_ray.exceptions import CandidateError

__all__ = ["configure", "torch_cuda_usable", "xgboost_cuda_usable"]

# Estimators whose n_jobs does nothing and warns when set (scikit-learn >= 1.8).
_N_JOBS_IGNORED = frozenset({"sklearn.linear_model._logistic.LogisticRegression"})


def configure(estimator: Any, *, cpus: int, gpu_ids: Sequence[str]) -> list[str]:
    """Set an estimator's threads to ``cpus`` and move it to CUDA when a GPU is usable.

    Args:
        estimator: Unfitted estimator; changed in place through ``set_params``.
        cpus: CPUs the trial holds (``n_jobs``/``num_threads``).
        gpu_ids: GPU ids the trial holds (e.g. ``ray.get_gpu_ids()``); empty for CPU trials.

    Returns:
        Warnings to record (empty when none), e.g. ``"a GPU was assigned
        (CUDA_VISIBLE_DEVICES=0) but no CUDA device is usable; xgboost ran on CPU"``.

    Raises:
        CandidateError: ``cpus`` is not a positive integer.

    Example:
        >>> from sklearn.ensemble import RandomForestClassifier
        >>> rf = RandomForestClassifier()
        >>> configure(rf, cpus=2, gpu_ids=[])
        []
        >>> rf.n_jobs
        2
    """
    if isinstance(cpus, bool) or not isinstance(cpus, Integral) or cpus < 1:
        raise CandidateError(f"cpus must be a positive integer, got {cpus!r}")
    gpus = [str(gpu) for gpu in gpu_ids]
    family = family_of(estimator)
    params = estimator.get_params()
    if family == "torch-mlp":
        estimator.set_params(num_threads=int(cpus))
    elif "n_jobs" in params and qualified_name(estimator) not in _N_JOBS_IGNORED:
        estimator.set_params(n_jobs=int(cpus))
    if not gpus:
        return []
    assigned = f"a GPU was assigned (CUDA_VISIBLE_DEVICES={','.join(gpus)})"
    if family == "xgboost":
        if xgboost_cuda_usable():
            estimator.set_params(device="cuda")
            return []
        return [f"{assigned} but no CUDA device is usable; xgboost ran on CPU"]
    if family == "torch-mlp":
        if torch_cuda_usable():
            estimator.set_params(device="cuda")
            return []
        estimator.set_params(device="cpu")
        return [f"{assigned} but no CUDA device is usable; the torch MLP ran on CPU"]
    if getattr(estimator, "supports_gpu", False) and "device" in params:  # the GPU recommenders
        if estimator.cuda_usable():
            estimator.set_params(device="cuda")
            return []
        estimator.set_params(device="cpu")
        return [f"{assigned} but no CUDA device is usable; {type(estimator).__name__} ran on CPU"]
    if family == "lightgbm":
        return [f"{assigned} but LightGBM's pip build has no CUDA path; lightgbm ran on CPU"]
    return [f"{assigned} but {type(estimator).__name__} has no GPU path; it ran on CPU"]


def torch_cuda_usable() -> bool:
    """Whether torch sees a usable CUDA device (``False`` when torch is not installed)."""
    return _torch_cuda_usable(os.environ.get("CUDA_VISIBLE_DEVICES"))


def xgboost_cuda_usable() -> bool:
    """Whether XGBoost can train on CUDA here; probed once per ``CUDA_VISIBLE_DEVICES`` value.

    XGBoost silently falls back to CPU when it finds no GPU, so one boosting round on a tiny
    matrix tells us which device it really used (a few milliseconds).
    """
    return _xgboost_cuda_usable(os.environ.get("CUDA_VISIBLE_DEVICES"))


@functools.lru_cache(maxsize=8)
def _torch_cuda_usable(visible: str | None) -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@functools.lru_cache(maxsize=8)
def _xgboost_cuda_usable(visible: str | None) -> bool:
    try:
        import numpy as np
        import xgboost as xgb
    except ImportError:
        return False
    if not xgb.build_info().get("USE_CUDA", False):
        return False
    features = np.arange(8, dtype=np.float32).reshape(4, 2)
    labels = np.array([0.0, 1.0, 0.0, 1.0], dtype=np.float32)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            booster = xgb.train(
                {"device": "cuda", "tree_method": "hist", "verbosity": 0},
                xgb.DMatrix(features, label=labels),
                num_boost_round=1,
            )
        config = json.loads(booster.save_config())
    except Exception:  # any failure of the probe means "do not use CUDA"
        return False
    return str(config["learner"]["generic_param"].get("device", "cpu")).startswith("cuda")
