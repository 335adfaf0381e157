"""T-001 and T-002 as one call each: the data profile record and the feature pipeline record."""

from __future__ import annotations

import pandas as pd

from specweave_ray._fs import atomic_write_json
from specweave_ray.data._load import infer_schema, sample, write_schema
from specweave_ray.data._profile import profile, write_eda_report
from specweave_ray.features import feature_types
from specweave_ray.problems import ProblemType
from specweave_ray.workspace.increment import Increment
from specweave_ray.workspace.records import track_experiment

__all__ = ["record_data", "record_features", "record_interactions", "record_series"]


def record_data(inc: Increment, df: pd.DataFrame, *, target: str, problem: ProblemType, source: str,
                test_size: float, rows_train: int, rows_test: int, seed: int, fingerprint: str,
                split: dict | None = None) -> str:
    """Write ``data/profile.json``, ``data/schema.yaml`` (once), ``data/sample.parquet`` and the EDA
    report into a ``data-profile`` record; returns the record's id."""
    with track_experiment("data-profile", increment=inc, kind="data",
                          meta={"data_fingerprint": fingerprint}) as exp:
        prof = profile(df, target=target, problem_type=problem)
        atomic_write_json(inc.data_dir / "profile.json", prof)
        schema_path = inc.data_dir / "schema.yaml"
        if not schema_path.exists():
            write_schema(infer_schema(df, target=target), schema_path)
        sample(df, target=target, n=1000, problem_type=problem, seed=seed).to_parquet(
            inc.data_dir / "sample.parquet", index=False)
        exp.log_params({"source": source, "target": target, "test_size": test_size,
                        "rows_train": rows_train, "rows_test": rows_test,
                        "leakage_suspects": prof.get("leakage_suspects"), **({"split": split} if split else {})})
        exp.log_metrics({"rows": len(df), "columns": df.shape[1],
                         "missing_values": int(df.isna().sum().sum()),
                         "duplicate_rows": int(prof.get("duplicate_rows", 0))})
        write_eda_report(df, prof, exp.path, target=target, problem_type=problem)
    return exp.id


def record_features(inc: Increment, X_train: pd.DataFrame, *, fingerprint: str) -> tuple[str, int]:
    """T-002: the feature pipeline's column types and steps as a ``feature-pipeline`` record;
    returns ``(record id, number of input columns)``. The pipeline itself is fitted inside each
    CV fold by the sweep, never here."""
    with track_experiment("feature-pipeline", increment=inc, kind="features",
                          meta={"data_fingerprint": fingerprint}) as exp:
        types = feature_types(X_train)
        exp.log_params({"features": types, "numeric": "median impute + standard scale",
                        "categorical": "most-frequent impute + one-hot (max 20 levels, rare → infrequent)",
                        "datetime": "year, month, day, weekday, hour", "fitted": "inside each CV fold"})
        exp.log_metrics({"n_features": len(types),
                         "n_numeric": sum(t == "numeric" for t in types.values()),
                         "n_categorical": sum(t == "categorical" for t in types.values())})
    return exp.id, len(types)


def record_interactions(inc: Increment, X_train: pd.DataFrame, y_train: pd.Series, *,
                        fingerprint: str) -> tuple[str, int]:
    """T-002 for models that read interactions, not features: the users × items matrix the
    recommenders build (positives only) as a ``feature-pipeline`` record; returns ``(record id,
    number of columns)``."""
    positives = X_train[y_train.to_numpy() > 0]
    users, items = positives.iloc[:, 0].nunique(), positives.iloc[:, 1].nunique()
    with track_experiment("feature-pipeline", increment=inc, kind="features",
                          meta={"data_fingerprint": fingerprint}) as exp:
        exp.log_params({"features": {str(c): "id" for c in X_train.columns},
                        "matrix": "users x items, relevance weights of positive interactions",
                        "fitted": "inside each CV fold, on the fold's training interactions"})
        exp.log_metrics({"n_features": int(X_train.shape[1]), "users": int(users), "items": int(items),
                         "positives": len(positives),
                         "density": float(len(positives) / max(1, users * items))})
    return exp.id, int(X_train.shape[1])


def record_series(inc: Increment, X_train: pd.DataFrame, y_train: pd.Series, *,
                  fingerprint: str) -> tuple[str, int]:
    """T-002 for forecasters: what they read from the long frame (the series, the frequency and
    season, the exogenous columns; lags, rolling means and calendar features are computed inside
    each model from the past only) as a ``feature-pipeline`` record; returns ``(record id,
    number of columns)``."""
    info = dict(X_train.attrs.get("forecast") or {})
    exog = [str(c) for c in X_train.columns if c not in ("unique_id", "ds")]
    with track_experiment("feature-pipeline", increment=inc, kind="features",
                          meta={"data_fingerprint": fingerprint}) as exp:
        exp.log_params({"features": {"unique_id": "series id", "ds": "time", **{c: "exogenous (known in advance)"
                                                                                for c in exog}},
                        **info, "local models": "one per series (statsforecast), season from the frequency",
                        "global models": "lags, rolling means, calendar features, exogenous columns (mlforecast)",
                        "fitted": "inside each backtest window, on the points before it"})
        exp.log_metrics({"n_features": int(X_train.shape[1]), "series": int(X_train["unique_id"].nunique()),
                         "points": int(len(X_train)), "exogenous": len(exog)})
    return exp.id, int(X_train.shape[1])
