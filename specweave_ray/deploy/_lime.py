"""LIME (the ``lime`` package) for T-007's example rows, beside their SHAP contributions.

LIME fits a weighted linear surrogate around one row from perturbed copies of it. It perturbs a
numeric matrix, so the input columns are coded: numbers as they are (a missing number as the
column's median: LIME's statistics cannot hold NaN), integers rounded back, dates as seconds,
booleans and strings as categories (a missing one as its own category). Each perturbed matrix
is decoded to rows and scored by the packaged :class:`Predictor`, so what LIME explains is what
ships: probabilities of the explained class for a classifier, values for a regressor.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from specweave_ray.exceptions import require

__all__ = ["lime_explanations"]

_MISSING = "<missing>"


class _Codec:
    """Input rows ↔ the numeric matrix LIME perturbs."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.columns = list(frame.columns)
        self.kinds: dict[str, str] = {}
        self.levels: dict[str, list[Any]] = {}
        self.fill: dict[str, float] = {}
        for c in self.columns:
            s = frame[c]
            if pd.api.types.is_bool_dtype(s) or not (pd.api.types.is_numeric_dtype(s)
                                                     or pd.api.types.is_datetime64_any_dtype(s)):
                self.kinds[c] = "category"
                self.levels[c] = [_MISSING, *sorted({str(v) for v in s.dropna()})]
            else:
                self.kinds[c] = ("datetime" if pd.api.types.is_datetime64_any_dtype(s)
                                 else "integer" if pd.api.types.is_integer_dtype(s) else "number")
                values = self._numbers(c, s)
                self.fill[c] = float(np.nanmedian(values)) if np.isfinite(values).any() else 0.0
        self.dtypes = frame.dtypes

    def _numbers(self, c: str, s: pd.Series) -> np.ndarray:
        if self.kinds[c] == "datetime":
            return ((s - pd.Timestamp("1970-01-01")).dt.total_seconds()).to_numpy(dtype=np.float64)
        return pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)

    @property
    def categorical(self) -> list[int]:
        return [j for j, c in enumerate(self.columns) if self.kinds[c] == "category"]

    @property
    def names(self) -> dict[int, list[str]]:
        return {j: [str(v) for v in self.levels[c]] for j, c in enumerate(self.columns) if c in self.levels}

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(frame), len(self.columns)))
        for j, c in enumerate(self.columns):
            s = frame[c]
            if c in self.levels:
                index = {v: i for i, v in enumerate(self.levels[c])}
                out[:, j] = [index.get(_MISSING if pd.isna(v) else str(v), 0) for v in s.astype(object)]
            else:
                values = self._numbers(c, s)
                out[:, j] = np.where(np.isnan(values), self.fill[c], values)
        return out

    def decode(self, Z: np.ndarray) -> pd.DataFrame:
        data: dict[str, Any] = {}
        for j, c in enumerate(self.columns):
            z = Z[:, j]
            if c in self.levels:
                labels = [self.levels[c][int(i)] for i in np.clip(np.rint(z), 0, len(self.levels[c]) - 1)]
                if pd.api.types.is_bool_dtype(self.dtypes[c]):
                    data[c] = pd.array([None if v == _MISSING else v == "True" for v in labels], dtype="boolean")
                else:
                    data[c] = [None if v == _MISSING else v for v in labels]
            elif self.kinds[c] == "datetime":
                data[c] = pd.to_datetime(z, unit="s")
            elif self.kinds[c] == "integer":
                data[c] = np.rint(z).astype(np.int64)
            else:
                data[c] = z
        return pd.DataFrame(data, columns=self.columns)


def lime_explanations(predictor: Any, background: pd.DataFrame, rows: pd.DataFrame, *,
                      explained: list[int | None], num_features: int = 5, num_samples: int = 1000,
                      seed: int = 0) -> list[dict[str, Any]]:
    """LIME for each of ``rows`` against ``background`` (the rows its statistics come from).

    Args:
        explained: Per row, the class index explained (classifiers) or None (regressors).

    Returns:
        Per row: ``weights`` (the ``num_features`` largest: ``feature``, ``rule``, ``weight``),
        ``intercept``, ``local_prediction`` (the surrogate at the row), ``model_output`` (the
        model at the row, what the surrogate approximates) and ``score`` (the surrogate's R² on
        the perturbed rows).
    """
    lime_tabular = require("lime.lime_tabular", feature="LIME explanations")
    columns = predictor.input_columns
    codec = _Codec(background[columns])
    classifier = predictor.classes is not None

    def score(Z: np.ndarray) -> np.ndarray:
        frame = codec.decode(np.asarray(Z, dtype=np.float64))
        return predictor.predict_proba(frame) if classifier else np.asarray(predictor.predict(frame), dtype=np.float64)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's notices about LIME's ridge fits
        explainer = lime_tabular.LimeTabularExplainer(
            codec.encode(background[columns]), mode="classification" if classifier else "regression",
            feature_names=columns, categorical_features=codec.categorical, categorical_names=codec.names,
            discretize_continuous=True, random_state=seed)
        out = []
        coded = codec.encode(rows[columns])
        for x, label in zip(coded, explained, strict=True):
            key = int(label) if classifier and label is not None else 1  # LIME files a regression under 1
            exp = explainer.explain_instance(x, score, labels=(key,) if classifier else (1,),
                                             num_features=num_features, num_samples=num_samples)
            pairs = zip(exp.as_map()[key], exp.as_list(label=key), strict=True)
            local = exp.local_pred
            model = exp.predict_proba[key] if classifier else exp.predicted_value
            out.append({
                "weights": [{"feature": columns[j], "rule": rule, "weight": float(w)} for (j, w), (rule, _) in pairs],
                "intercept": float(exp.intercept[key]),
                "local_prediction": None if local is None else float(np.ravel(local)[0]),
                "model_output": float(model), "score": float(exp.score if np.isscalar(exp.score) else exp.score[key]),
            })
    return out
