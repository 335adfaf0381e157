"""Candidate declarations more than one problem type shares (plain data; resolved by
``candidates.registry`` through each type's ``estimators`` table)."""

from __future__ import annotations

from typing import Any

__all__ = ["MLP", "SHARED_CANDIDATES"]

MLP = "specweave_ray.candidates.torch_mlp"
_BOOSTING_RATE = {"loguniform": [0.01, 0.3]}
_TREES = {"randint": [100, 300]}
# Candidates sized for a laptop with two cores: a few hundred trees at most, 20 epochs.
SHARED_CANDIDATES: tuple[dict[str, Any], ...] = (
    {"name": "xgboost", "estimator": "xgboost",
     "params": {"n_estimators": _TREES, "max_depth": {"randint": [3, 9]},
                "learning_rate": _BOOSTING_RATE, "subsample": {"uniform": [0.7, 1.0]},
                "tree_method": "hist"}},
    {"name": "lightgbm", "estimator": "lightgbm",
     "params": {"num_leaves": {"randint": [15, 64]}, "learning_rate": _BOOSTING_RATE,
                "n_estimators": _TREES, "verbose": -1}},
    {"name": "torch-mlp", "estimator": "torch-mlp",
     "params": {"hidden_sizes": {"choice": [[64], [64, 32], [128, 64]]},
                "lr": {"loguniform": [1e-4, 1e-2]}, "epochs": 20}},
)
