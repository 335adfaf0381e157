"""Candidate declarations more than one problem type shares (plain data; resolved by
``candidates.registry`` through each type's ``estimators`` table)."""

from __future__ import annotations

from typing import Any

__all__ = ["MLP", "SHARED_CANDIDATES"]

MLP = "specweave_ray.candidates.torch_mlp"
_BOOSTING_RATE = {"loguniform": [0.01, 0.3]}
# Tree counts and leaves on a log scale from small models up (FLAML's spaces start from tiny
# boosters too): on small, noisy data (fraud at 4,000 rows, 60 positives) the best models are
# often a few dozen shallow trees, which ``randint(100, 300)`` x ``randint(15, 64)`` never drew.
# Measured for LightGBM on that data, 20 draws each, the pick by 3-fold CV scored on 60,000
# fresh rows (average precision, 3 seeds): 0.322/0.255/0.320 from this space against
# 0.283/0.248/0.286 from the narrow one; XGBoost's is widened the same way (benchmarks/bench_budget.py
# compares both against FLAML). At most 400 trees: candidates sized for a laptop with two cores.
_TREES = {"lograndint": [20, 400]}
_L2 = {"loguniform": [1e-3, 10.0]}
SHARED_CANDIDATES: tuple[dict[str, Any], ...] = (
    {"name": "xgboost", "estimator": "xgboost",
     "params": {"n_estimators": _TREES, "max_depth": {"randint": [2, 9]},
                "learning_rate": _BOOSTING_RATE, "min_child_weight": {"loguniform": [0.5, 20.0]},
                "subsample": {"uniform": [0.6, 1.0]}, "colsample_bytree": {"uniform": [0.5, 1.0]},
                "reg_lambda": _L2, "tree_method": "hist"}},
    {"name": "lightgbm", "estimator": "lightgbm",
     "params": {"num_leaves": {"lograndint": [4, 64]}, "learning_rate": _BOOSTING_RATE,
                "n_estimators": _TREES, "min_child_samples": {"lograndint": [5, 60]},
                "colsample_bytree": {"uniform": [0.5, 1.0]}, "reg_lambda": _L2, "verbose": -1}},
    {"name": "torch-mlp", "estimator": "torch-mlp",
     "params": {"hidden_sizes": {"choice": [[64], [64, 32], [128, 64]]},
                "lr": {"loguniform": [1e-4, 1e-2]}, "epochs": 20}},
)
