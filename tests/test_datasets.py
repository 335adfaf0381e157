"""Tests for the synthetic data sets (specweave_ray.data.datasets)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier

from specweave_ray.data.datasets import DATASETS, generate, make_fraud, make_ltv
from specweave_ray.exceptions import DataError

FRAUD_COLUMNS = {
    "amount", "merchant_category", "hour", "day_of_week", "customer_age", "account_age_days",
    "distance_from_home_km", "n_tx_last_24h", "card_present", "foreign", "is_fraud",
}


@pytest.fixture(scope="module")
def fraud_100k() -> pd.DataFrame:
    return make_fraud(100_000, seed=0)


def _as_model_input(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for name in out.columns:
        if pd.api.types.is_string_dtype(out[name]):
            out[name] = out[name].astype("category")
    return out


def test_fraud_shape_columns_and_speed() -> None:
    start = time.perf_counter()
    df = make_fraud(100_000, seed=0)
    assert time.perf_counter() - start < 1.0
    assert df.shape == (100_000, len(FRAUD_COLUMNS))
    assert set(df.columns) == FRAUD_COLUMNS
    assert df.columns[-1] == "is_fraud"
    assert set(df["is_fraud"].unique()) == {0, 1}
    assert df["hour"].between(0, 23).all() and df["day_of_week"].between(0, 6).all()
    assert {"grocery", "electronics", "travel", "gaming"} <= set(df["merchant_category"])
    assert df["amount"].skew() > 2  # log-normal amounts


def test_fraud_has_about_one_percent_missing_in_numeric_columns(fraud_100k: pd.DataFrame) -> None:
    shares = fraud_100k.isna().mean()
    assert set(shares[shares > 0].index) == {"customer_age", "distance_from_home_km"}
    assert shares[shares > 0].between(0.005, 0.02).all()


@pytest.mark.parametrize("rate", [0.003, 0.01, 0.05])
def test_fraud_positive_rate_within_20_percent(rate: float) -> None:
    df = make_fraud(100_000, positive_rate=rate, seed=3)
    assert abs(df["is_fraud"].mean() - rate) <= 0.2 * rate


@pytest.mark.parametrize("maker", [make_fraud, make_ltv])
def test_generators_are_deterministic_by_seed(maker) -> None:
    a, b, c = maker(2_000, seed=7), maker(2_000, seed=7), maker(2_000, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_fraud_is_learnable_but_not_trivial(fraud_100k: pd.DataFrame) -> None:
    # A 30k-row sample keeping every fraud (negative downsampling, as fraud teams do).
    positives = fraud_100k[fraud_100k["is_fraud"] == 1]
    negatives = fraud_100k[fraud_100k["is_fraud"] == 0].sample(
        30_000 - len(positives), random_state=0
    )
    df = _as_model_input(pd.concat([positives, negatives]))
    y = df.pop("is_fraud")
    X_train, X_test, y_train, y_test = train_test_split(
        df, y, test_size=0.3, stratify=y, random_state=0
    )
    model = HistGradientBoostingClassifier(
        categorical_features="from_dtype", max_iter=100, random_state=0
    ).fit(X_train, y_train)
    auc = roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])
    assert 0.85 <= auc <= 0.98


def test_no_single_fraud_feature_separates_the_classes(fraud_100k: pd.DataFrame) -> None:
    y = fraud_100k["is_fraud"]
    for name in fraud_100k.columns.drop("is_fraud"):
        col = fraud_100k[name]
        if pd.api.types.is_string_dtype(col):
            col = col.astype("category").cat.codes
        x = col.to_numpy(dtype=float).reshape(-1, 1)
        tree = DecisionTreeClassifier(max_depth=4, random_state=0).fit(x, y)
        auc = roc_auc_score(y, tree.predict_proba(x)[:, 1])
        assert auc < 0.95, f"{name} alone gives ROC AUC {auc:.3f}"


def test_ltv_shape_skew_and_learnability() -> None:
    start = time.perf_counter()
    df = make_ltv(20_000, seed=0)
    assert time.perf_counter() - start < 1.0
    assert df.shape[0] == 20_000 and df.columns[-1] == "ltv"
    assert {"signup_month", "acquisition_channel", "country", "first_order_value",
            "orders_first_90d", "avg_days_between_orders", "support_tickets",
            "is_subscriber"} <= set(df.columns)
    assert (df["ltv"] > 0).all()
    assert df["ltv"].skew() > 1
    assert df["signup_month"].str.fullmatch(r"20\d\d-\d\d").all()
    X = _as_model_input(df)
    y = X.pop("ltv")
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
    model = HistGradientBoostingRegressor(
        categorical_features="from_dtype", max_iter=100, random_state=0
    ).fit(X_train, np.log(y_train))
    r2 = r2_score(y_test, np.exp(model.predict(X_test)))
    assert 0.6 <= r2 <= 0.85


def test_generate_dispatches_and_passes_arguments() -> None:
    assert set(DATASETS) == {"fraud", "ltv", "interactions", "sales"}
    pd.testing.assert_frame_equal(generate("ltv", n_rows=100, seed=1), make_ltv(100, seed=1))
    assert len(generate("fraud", n_rows=500)) == 500


def test_generate_unknown_name_lists_known_names() -> None:
    with pytest.raises(DataError, match=r"unknown data set 'churn'.*fraud, interactions, ltv, sales"):
        generate("churn")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_rows": 0}, "n_rows"),
        ({"n_rows": 100, "positive_rate": 0.0}, "positive_rate"),
        ({"n_rows": 100, "positive_rate": 0.9}, "positive_rate"),
        ({"n_rows": 100, "colour": "red"}, "invalid arguments.*fraud"),
    ],
)
def test_fraud_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(DataError, match=match):
        generate("fraud", **kwargs)
