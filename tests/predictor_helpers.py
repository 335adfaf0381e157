"""Predictors built in process over a fitted feature pipeline (no pipeline run, no Ray): for
the tests of the Predictor's input paths and of the serving limits."""

from __future__ import annotations

import tempfile
from typing import Any

import numpy as np
import pandas as pd

from specweave_ray.data.datasets import make_fraud
from specweave_ray.deploy.predictor import Predictor
from specweave_ray.features import build_preprocessor, feature_types


def tiny_predictors(n: int = 600, seed: int = 0, families: tuple[str, ...] = ("xgboost", "lightgbm", "torch-mlp"),
                    nullable: bool = True) -> tuple[dict[str, Predictor], pd.DataFrame]:
    """({family: Predictor}, training rows without the target). The input schema records each
    column's kind, ``nullable`` and numeric ``min``/``max`` as a package's does."""
    import lightgbm as lgb
    import xgboost as xgb

    data = make_fraud(n, seed=seed)
    y = data.pop("is_fraud").to_numpy()
    features = build_preprocessor(data).fit(data)
    Xe = features.transform(data)
    makers = {
        "xgboost": lambda: xgb.XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1),
        "lightgbm": lambda: lgb.LGBMClassifier(n_estimators=10, num_leaves=7, verbose=-1, n_jobs=1),
        "torch-mlp": lambda: _torch_mlp(seed),
    }
    schema: dict[str, Any] = {}
    for c, t in feature_types(data).items():
        spec: dict[str, Any] = {"dtype": str(data[c].dtype), "kind": "number" if t == "numeric" else "string",
                                "nullable": nullable}
        if t == "numeric":
            spec.update(min=float(data[c].min()), max=float(data[c].max()))
        schema[c] = spec
    folder = tempfile.mkdtemp(prefix="tiny-predictor-")
    out = {}
    for family in families:
        model = makers[family]().fit(Xe, y)
        meta = {"version": 1, "increment": "tiny", "classes": [0, 1], "threshold": 0.5, "target": "is_fraud",
                "input_schema": schema, "fast_path": True}
        out[family] = Predictor(meta, folder, model=model, features=features)
    return out, data.reset_index(drop=True)


def odd_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows with an unseen category, missing numbers and missing categories."""
    odd = rows.copy()
    odd.loc[:9, "merchant_category"] = "never-seen"
    odd.loc[10:19, "customer_age"] = np.nan
    odd.loc[20:24, "merchant_category"] = None
    return odd


def _torch_mlp(seed: int) -> Any:
    from specweave_ray.candidates.torch_mlp import TorchMLPClassifier  # torch only when asked

    return TorchMLPClassifier(hidden_sizes=(8,), epochs=2, device="cpu", random_state=seed)
