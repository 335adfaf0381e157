"""Regression: a number per row (lifetime value, demand, price)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from specweave_ray.exceptions import DataError
from specweave_ray.problems._base import ProblemType
from specweave_ray.problems._candidates import MLP, SHARED_CANDIDATES


class Regression(ProblemType):
    name = "regression"
    aliases = ("regressor", "linear regression")
    summary = "a number per row; RMSE, MAE, R², MAPE"
    target_kind = "value"
    output = "values"
    metrics = ("rmse", "mae", "r2", "mape")
    default_metric = "rmse"
    default_criteria = ("RMSE < 10", "MAE < 5", "r2 >= 0.7", "latency_p99 < 100 ms",
                        "throughput >= 1000 req/s", "lift over best baseline >= 20%")
    estimators = {
        "xgboost": "xgboost.XGBRegressor",
        "lightgbm": "lightgbm.LGBMRegressor",
        "linear": "sklearn.linear_model.LinearRegression",
        "ridge": "sklearn.linear_model.Ridge",
        "random-forest": "sklearn.ensemble.RandomForestRegressor",
        "torch-mlp": f"{MLP}.TorchMLPRegressor",
        "mlp": f"{MLP}.TorchMLPRegressor",
        "dummy": "sklearn.dummy.DummyRegressor",
    }
    default_candidates = (
        {"name": "ridge", "estimator": "ridge", "params": {"alpha": {"loguniform": [1e-3, 100.0]}}},
        *SHARED_CANDIDATES,
    )

    def fits(self, y: Any) -> bool:
        return pd.api.types.is_numeric_dtype(pd.Series(np.asarray(y)))

    def _check_values(self, y: pd.Series) -> None:
        if not pd.api.types.is_numeric_dtype(y):
            raise DataError(f"regression target {y.name!r} must be numeric, got dtype {y.dtype}")

    def encode_target(self, y: Any) -> tuple[None, np.ndarray]:
        return None, np.asarray(y)

    def splitter(self, n_splits: int, *, seed: int) -> Any:
        from sklearn.model_selection import KFold

        return KFold(n_splits, shuffle=True, random_state=seed)

    def baselines(self, *, rule: str | None = None, seed: int = 0) -> dict[str, tuple[str, dict[str, Any]]]:
        self._no_rule(rule)
        dummy = "sklearn.dummy.DummyRegressor"
        return {"mean": (dummy, {"strategy": "mean"}), "median": (dummy, {"strategy": "median"})}

    def explain_examples(self, y_true: np.ndarray, outputs: np.ndarray, *, n: int) -> tuple[np.ndarray, str]:
        """The largest errors: ``|y - prediction|``, largest first."""
        error = np.abs(np.asarray(y_true, dtype=np.float64) - np.asarray(outputs, dtype=np.float64))
        return np.argsort(-error, kind="stable")[:n], "the largest errors: largest |actual - predicted|"

    def target_profile(self, y: pd.Series) -> dict[str, Any]:
        if not pd.api.types.is_numeric_dtype(y):
            return {}
        q = y.quantile([0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0])
        return {"quantiles": {f"q{round(k * 100):02d}": v for k, v in q.items()},
                "mean": y.mean(), "std": y.std(), "skew": y.skew()}

    def leakage_score(self, values: np.ndarray, y: pd.Series) -> tuple[float, str]:
        from sklearn.metrics import r2_score
        from sklearn.tree import DecisionTreeRegressor

        target = y.to_numpy(dtype=np.float64)
        tree = DecisionTreeRegressor(max_depth=6, min_samples_leaf=5, random_state=0)
        tree.fit(values.reshape(-1, 1), target)
        score = float(r2_score(target, tree.predict(values.reshape(-1, 1))))
        finite = ~np.isnan(values)
        if finite.sum() > 2 and np.std(values[finite]) > 0 and np.std(target[finite]) > 0:
            score = max(score, abs(float(np.corrcoef(values[finite], target[finite])[0, 1])))
        return score, "max_abs_corr_or_r2"

    def ab_inputs(self, control: Mapping[str, float], *, target: str) -> tuple[dict[str, Any], str, bool]:
        """The control's mean absolute error per unit (to decrease); its per-unit standard
        deviation from the recorded RMSE and MAE (``sqrt(rmse² - mae²)``)."""
        mae, rmse = float(control["mae"]), float(control["rmse"])
        std = math.sqrt(max(rmse**2 - mae**2, 0.0)) or max(mae, 1e-12)
        return ({"baseline_rate": None, "baseline_mean": mae, "baseline_std": std},
                f"absolute error of the {target} prediction per unit", True)
