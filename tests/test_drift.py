"""Tests for the monitoring baseline and drift report (``specweave_ray.deploy.drift``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from specweave_ray.deploy.drift import (
    OTHER,
    DriftReport,
    compare,
    drift_command,
    load_reference,
    reference_profile,
    save_reference,
)
from specweave_ray.exceptions import ConfigError, DataError


def _frame(rng: np.random.Generator, n: int = 3000) -> pd.DataFrame:
    return pd.DataFrame({
        "amount": rng.normal(100.0, 20.0, n),
        "age": rng.integers(18, 80, n).astype("float64"),
        "country": pd.Series(rng.choice(["fr", "de", "es"], n, p=[0.6, 0.3, 0.1]), dtype="string"),
        "is_new": rng.random(n) < 0.3,
    })


@pytest.fixture
def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.fixture
def ref_frame(rng: np.random.Generator) -> pd.DataFrame:
    return _frame(rng)


@pytest.fixture
def ref_preds(rng: np.random.Generator, ref_frame: pd.DataFrame) -> np.ndarray:
    return rng.beta(2, 5, len(ref_frame))


@pytest.fixture
def profile(ref_frame: pd.DataFrame, ref_preds: np.ndarray) -> dict:
    return reference_profile(ref_frame, ref_preds)


def test_profile_is_json_and_well_formed(profile: dict, ref_frame: pd.DataFrame) -> None:
    back = json.loads(json.dumps(profile, allow_nan=False))
    assert back == profile
    amount = profile["features"]["amount"]
    assert amount["kind"] == "numeric"
    assert amount["cuts"] == sorted(set(amount["cuts"])) and len(amount["cuts"]) == 9
    assert sum(amount["proportions"]) + amount["missing"] == pytest.approx(1.0)
    assert len(amount["sample"]) == 2000 and amount["sample"] == sorted(amount["sample"])
    country = profile["features"]["country"]
    assert country["kind"] == "categorical" and set(country["categories"]) == {"fr", "de", "es", OTHER}
    assert profile["features"]["is_new"]["kind"] == "categorical"
    assert profile["prediction"]["kind"] == "numeric"
    assert profile["columns"] == list(ref_frame.columns)


def test_identical_data_has_zero_psi_and_no_drift(profile: dict, ref_frame: pd.DataFrame,
                                                   ref_preds: np.ndarray) -> None:
    report = compare(profile, ref_frame, ref_preds)
    assert report.passed and report.drifted == []
    assert all(r.psi == pytest.approx(0.0, abs=1e-12) for r in report.rows)
    assert report.prediction is not None and report.prediction.psi == pytest.approx(0.0, abs=1e-12)
    assert not report.prediction.drifted


def test_shifted_numeric_and_category_mix_are_flagged(profile: dict, rng: np.random.Generator) -> None:
    new = _frame(rng)
    new["amount"] = new["amount"] + 20.0  # mean + 1 std
    new["country"] = pd.Series(rng.choice(["fr", "de", "es"], len(new), p=[0.2, 0.3, 0.5]),
                               dtype="string")
    report = compare(profile, new)
    by = {r.feature: r for r in report.rows}
    assert set(report.drifted) == {"amount", "country"} and not report.passed
    assert by["amount"].psi > 0.2 and by["amount"].ks_stat > 0.3 and by["amount"].ks_pvalue < 1e-6
    assert by["country"].ks_stat is None and by["country"].psi > 0.2
    assert not by["age"].drifted and by["age"].psi < 0.05 and not by["is_new"].drifted
    assert report.prediction is None


def test_unseen_category_goes_to_other(profile: dict, rng: np.random.Generator) -> None:
    new = _frame(rng)
    new["country"] = pd.Series(["xx"] * len(new), dtype="string")
    report = compare(profile, new)
    assert "country" in report.drifted
    # few unseen values: counted, not an error, and below the alarm
    new2 = _frame(rng)
    new2.loc[:9, "country"] = "yy"
    row = next(r for r in compare(profile, new2).rows if r.feature == "country")
    assert np.isfinite(row.psi) and not row.drifted


def test_small_significant_shift_is_not_drift_on_large_data(rng: np.random.Generator) -> None:
    ref = pd.DataFrame({"x": rng.normal(size=20_000)})
    profile = reference_profile(ref)
    new = pd.DataFrame({"x": rng.normal(0.15, 1.0, size=200_000)})
    row = compare(profile, new).rows[0]
    assert row.ks_pvalue < 0.01 and row.ks_stat < 0.1 and not row.drifted


def test_missing_share_surge_is_drift(profile: dict, rng: np.random.Generator) -> None:
    new = _frame(rng)
    new.loc[: len(new) // 2, "age"] = np.nan
    row = next(r for r in compare(profile, new).rows if r.feature == "age")
    assert row.missing_ref == 0 and row.missing_new == pytest.approx(0.5, abs=0.01) and row.drifted


def test_missing_columns_are_named(profile: dict, ref_frame: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"lacks 2 column\(s\).*'amount'.*'country'"):
        compare(profile, ref_frame.drop(columns=["amount", "country"]))


def test_prediction_drift_flagged(profile: dict, ref_frame: pd.DataFrame,
                                  rng: np.random.Generator) -> None:
    report = compare(profile, ref_frame, rng.beta(5, 2, len(ref_frame)))
    assert report.drifted == [] and report.prediction.drifted and not report.passed
    assert "predictions" in report.to_markdown()


def test_multiclass_predictions_are_categorical(ref_frame: pd.DataFrame,
                                                rng: np.random.Generator) -> None:
    probs = rng.dirichlet([1, 1, 1], len(ref_frame))
    profile = reference_profile(ref_frame, probs)
    assert profile["prediction"]["kind"] == "categorical"
    assert compare(profile, ref_frame, probs).prediction.psi == pytest.approx(0.0, abs=1e-12)
    labels = np.array(["a", "b", "c"])[probs.argmax(axis=1)]
    assert reference_profile(ref_frame, labels)["prediction"]["kind"] == "categorical"


def test_report_json_round_trips(profile: dict, rng: np.random.Generator) -> None:
    new = _frame(rng)
    new["amount"] += 20.0
    report = compare(profile, new, rng.beta(2, 5, len(new)))
    text = json.dumps(report.to_json(), allow_nan=False)
    back = DriftReport.from_json(json.loads(text))
    assert back == report and back.passed == report.passed
    md = report.to_markdown()
    assert "DRIFT DETECTED" in md and "| amount | numeric |" in md


def test_profile_file_round_trip_and_command(tmp_path, profile: dict, ref_frame: pd.DataFrame,
                                             ref_preds: np.ndarray) -> None:
    path = save_reference(profile, tmp_path / "reference.json")
    assert load_reference(path) == profile
    data = tmp_path / "new.parquet"
    ref_frame.to_parquet(data)
    seen = {}

    def predict(frame: pd.DataFrame) -> np.ndarray:
        seen["cols"] = list(frame.columns)
        return ref_preds

    report, status = drift_command(path, data, predict=predict, out_dir=tmp_path / "out")
    assert status == 0 and report.passed and seen["cols"] == list(ref_frame.columns)
    assert (tmp_path / "out" / "drift-report.md").read_text().startswith("# Drift report")
    written = json.loads((tmp_path / "out" / "drift-report.json").read_text())
    assert DriftReport.from_json(written) == report
    shifted = ref_frame.assign(amount=ref_frame["amount"] * 2)
    assert drift_command(profile, shifted)[1] == 1


def test_edge_columns(rng: np.random.Generator) -> None:
    ref = pd.DataFrame({
        "const": np.ones(500), "gappy": np.where(rng.random(500) < 0.2, np.nan, rng.normal(size=500)),
        "empty": np.full(500, np.nan), "when": pd.date_range("2024-01-01", periods=500, freq="h"),
        "many": [f"c{i}" for i in range(500)],
    })
    profile = reference_profile(ref, max_categories=5)
    json.dumps(profile, allow_nan=False)
    assert profile["skipped"] == {"when": "datetime"} and "when" not in profile["features"]
    assert len(profile["features"]["many"]["categories"]) == 6
    assert profile["features"]["empty"]["missing"] == 1.0
    report = compare(profile, ref)
    assert report.passed and "when (datetime)" in report.to_markdown()


def test_bad_inputs(profile: dict, ref_frame: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="bins"):
        reference_profile(ref_frame, bins=1)
    with pytest.raises(DataError, match="0 row"):
        reference_profile(ref_frame.iloc[:0])
    with pytest.raises(DataError, match="predictions have 3"):
        reference_profile(ref_frame, np.zeros(3))
    with pytest.raises(ConfigError, match="ks_alpha"):
        compare(profile, ref_frame, ks_alpha=2)
    with pytest.raises(DataError, match="not a reference profile"):
        compare({"features": {}}, ref_frame)
    with pytest.raises(DataError, match="holds non-numeric"):
        compare(profile, ref_frame.assign(amount="a lot"))
    with pytest.raises(DataError, match="reference profile has none"):
        compare(reference_profile(ref_frame), ref_frame, np.zeros(len(ref_frame)))
