"""The default feature pipeline: a scikit-learn ``ColumnTransformer`` built from the columns.

Numeric columns: median imputation and scaling; categorical (string, category, bool): most-frequent
imputation and one-hot encoding with unknown categories ignored. It is cloned and fitted inside
each cross-validation fold, never on data a fold validates on.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def feature_types(X: pd.DataFrame) -> dict[str, str]:
    """Column → ``numeric`` | ``categorical`` | ``datetime``."""
    out = {}
    for col in X.columns:
        dtype = X[col].dtype
        if pd.api.types.is_bool_dtype(dtype):
            out[str(col)] = "categorical"
        elif pd.api.types.is_numeric_dtype(dtype):
            out[str(col)] = "numeric"
        elif pd.api.types.is_datetime64_any_dtype(dtype):
            out[str(col)] = "datetime"
        else:
            out[str(col)] = "categorical"
    return out


def _as_categories(frame: Any) -> pd.DataFrame:
    # one dtype for the encoder (pandas 3 mixes StringDtype, bool and object); NaN is a category
    frame = pd.DataFrame(frame).astype("object")
    return frame.where(frame.notna(), "__missing__").astype(str)


def _date_parts(frame: Any) -> np.ndarray:
    frame = pd.DataFrame(frame)
    parts = []
    for col in frame.columns:
        s = pd.to_datetime(frame[col])
        parts += [s.dt.year, s.dt.month, s.dt.day, s.dt.dayofweek, s.dt.hour]
    return np.column_stack([p.to_numpy(dtype="float64", na_value=np.nan) for p in parts])


def build_preprocessor(X: pd.DataFrame, *, max_categories: int = 20) -> Any | None:
    """A ``ColumnTransformer`` for ``X``'s columns, or ``None`` when ``X`` is all numeric NumPy."""
    if not isinstance(X, pd.DataFrame):
        return None
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    types = feature_types(X)
    by = {t: [c for c, k in types.items() if k == t] for t in ("numeric", "categorical", "datetime")}
    steps = []
    if by["numeric"]:
        steps.append(("num", make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True),
                                           StandardScaler()), by["numeric"]))
    if by["categorical"]:
        steps.append(("cat", make_pipeline(
            FunctionTransformer(_as_categories, feature_names_out="one-to-one"),
            OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=max_categories,
                          sparse_output=False)), by["categorical"]))
    if by["datetime"]:
        steps.append(("date", make_pipeline(FunctionTransformer(_date_parts),
                                            SimpleImputer(strategy="median", keep_empty_features=True)),
                      by["datetime"]))
    return ColumnTransformer(steps, remainder="drop", verbose_feature_names_out=False)
