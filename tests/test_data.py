"""Tests for the data stage (specweave_ray.data._load)."""

from __future__ import annotations

import gzip
import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa_arrow
import pyarrow.parquet as pq
import pytest

from specweave_ray import data as data
from specweave_ray.data.datasets import make_fraud, make_ltv
from specweave_ray.exceptions import DataError


@pytest.fixture(scope="module")
def fraud() -> pd.DataFrame:
    return make_fraud(5_000, positive_rate=0.02, seed=0)


def _write_csv(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=False)
    return path


# ------------------------------------------------------------------------------------- loading
@pytest.mark.parametrize("name", ["fraud.csv", "fraud.csv.gz", "fraud.parquet"])
def test_load_table_round_trip(fraud: pd.DataFrame, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.endswith(".parquet"):
        fraud.to_parquet(path, index=False)
    else:
        fraud.to_csv(path, index=False)
    loaded = data.load_table(path)
    pd.testing.assert_frame_equal(loaded, fraud, check_dtype=False)
    assert data.fingerprint(loaded) == data.fingerprint(fraud)


def test_load_table_tsv(tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("a\tb\n1\tx\n2\ty\n")
    df = data.load_table(path)
    assert list(df.columns) == ["a", "b"] and df["a"].tolist() == [1, 2]


def test_load_table_all_empty_column_becomes_float_nan(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("a,b\n1,\n2,\n")
    df = data.load_table(path)
    assert df["b"].dtype == np.float64 and df["b"].isna().all()


def test_load_table_reads_numbers_with_thousands_separators(tmp_path: Path) -> None:
    from specweave_ray.features import feature_types

    path = tmp_path / "prices.csv"
    lines = ['price,units,code,city', '"1,234.50","1,000",A-1,"Paris, FR"', '12.00,25,B-2,Rome',
             '"-3,000.25","12,345",C-3,Oslo', ',7,D-4,Bern']
    path.write_text("\n".join(lines) + "\n")
    df = data.load_table(path)
    assert df["price"].dtype == "float64" and df["units"].dtype == "int64"
    np.testing.assert_allclose(df["price"].to_numpy(), [1234.5, 12.0, -3000.25, np.nan])
    assert df["units"].tolist() == [1000, 25, 12345, 7]
    assert df["city"].tolist()[0] == "Paris, FR" and not pd.api.types.is_numeric_dtype(df["code"])
    types = feature_types(df)  # numbers for the feature pipeline, not categories to one-hot encode
    assert types["price"] == types["units"] == "numeric" and types["city"] == "categorical"


def test_load_table_refuses_thousands_separated_numbers_with_stray_text(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    rows = [f'"{1000 + i:,}.50"' for i in range(30)] + ["n/a"]
    path.write_text("price\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"column 'price' holds numbers except 1 row\(s\) of text \(line 32: 'n/a'\)"):
        data.load_table(path)


def test_profile_warns_of_numbers_in_a_notation_read_as_text(tmp_path: Path, caplog) -> None:
    path = tmp_path / "prices.csv"
    rows = [f'"{i},50","${i * 1000:,}",{"ab"[i % 2]},{i % 2}' for i in range(1, 40)]
    path.write_text("eu_price,usd,shop,y\n" + "\n".join(rows) + "\n")
    df = data.load_table(path)
    assert not pd.api.types.is_numeric_dtype(df["eu_price"]) and not pd.api.types.is_numeric_dtype(df["usd"])
    with caplog.at_level("WARNING", logger="specweave_ray.data._profile"):
        prof = data.profile(df, target="y", problem_type="classification")
    found = {w["column"]: w for w in prof["numbers_as_text"]}
    assert set(found) == {"eu_price", "usd"} and found["eu_price"]["example"] == "1,50"
    assert '"1,234.50"' in found["usd"]["fix"] and "eu_price" in caplog.text
    md = data.write_eda_report(df, prof, tmp_path / "eda", target="y", problem_type="classification")
    assert "numbers stored as text**: `usd` (e.g. `$1,000`)" in md.read_text()


def test_load_table_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data file not found: .*nowhere\.csv"):
        data.load_table(tmp_path / "nowhere.csv")


def test_load_table_unknown_extension(tmp_path: Path) -> None:
    path = tmp_path / "table.xlsx"
    path.write_bytes(b"x")
    with pytest.raises(DataError, match=r"table\.xlsx.*unknown file extension '\.xlsx'.*\.parquet"):
        data.load_table(path)


def test_load_table_corrupt_parquet(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 this is not really parquet" * 20)
    with pytest.raises(DataError, match=r"cannot read .*broken\.parquet"):
        data.load_table(path)


@pytest.mark.parametrize("content", ["", "a,b,c\n"])
def test_load_table_empty_csv(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=r"empty\.csv"):
        data.load_table(path)


def test_load_table_ragged_csv_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(DataError, match=r"ragged\.csv.*Expected 2 columns"):
        data.load_table(path)


def test_load_table_mixed_types_column_names_column_and_line(tmp_path: Path) -> None:
    values = [str(i) for i in range(500)]
    values[321] = "n/a?"
    path = tmp_path / "mixed.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("id,amount\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values)))
    with pytest.raises(DataError, match=r"mixed\.csv\.gz.*column 'amount'.*line 323: 'n/a\?'"):
        data.load_table(path)


def test_load_table_text_column_is_not_mistaken_for_mixed(tmp_path: Path) -> None:
    path = _write_csv(pd.DataFrame({"code": ["A1", "B2", "7", "C3"] * 10}), tmp_path / "c.csv")
    assert data.load_table(path)["code"].tolist()[:3] == ["A1", "B2", "7"]


# ----------------------------------------------------------------------------------- fingerprint
def test_fingerprint_stable_fast_and_sensitive() -> None:
    df = make_fraud(100_000, seed=1)
    start = time.perf_counter()
    fp = data.fingerprint(df)
    assert time.perf_counter() - start < 0.1
    assert re.fullmatch(r"sha256:[0-9a-f]{16,}", fp)
    assert data.fingerprint(df.copy()) == fp
    assert data.fingerprint(df.reset_index(drop=True).set_axis(range(5, 100_005))) == fp
    changed = df.copy()
    changed.loc[12_345, "amount"] += 0.01
    assert data.fingerprint(changed) != fp
    assert data.fingerprint(df.rename(columns={"hour": "hr"})) != fp
    assert data.fingerprint(df.astype({"hour": "float64"})) != fp


# ---------------------------------------------------------------------------------------- schema
def test_schema_infer_write_read_validate_round_trip(fraud: pd.DataFrame, tmp_path: Path) -> None:
    schema = data.infer_schema(fraud, target="is_fraud")
    path = data.write_schema(schema, tmp_path / "schema.yaml")
    assert path.read_text().startswith("schema_type: dataframe")
    assert not list(tmp_path.glob(".*tmp"))  # no temp file left behind
    loaded = data.read_schema(path)
    out = data.validate(fraud, loaded, source="fraud.csv")
    assert out.shape == fraud.shape
    # the target is optional: prediction inputs validate without it
    data.validate(fraud.drop(columns=["is_fraud"]), loaded)
    assert loaded.columns["customer_age"].nullable and not loaded.columns["amount"].nullable


def test_validate_lists_every_violation_in_one_error(fraud: pd.DataFrame) -> None:
    schema = data.infer_schema(fraud, target="is_fraud")
    bad = fraud.head(200).copy()
    bad = bad.drop(columns=["foreign"])
    bad["hour"] = bad["hour"].astype(object)
    bad.loc[bad.index[7], "hour"] = "noon"  # wrong dtype
    bad.loc[bad.index[3], "amount"] = 1e9  # out of range
    bad.loc[bad.index[5], "merchant_category"] = "casino"  # unseen category
    with pytest.raises(DataError) as info:
        data.validate(bad, schema, source="batch.parquet")
    message = str(info.value)
    assert message.startswith("batch.parquet does not match its schema (4 violation(s))")
    assert re.search(r"column 'foreign': missing", message)
    assert re.search(r"column 'hour': coerce_dtype\('int64'\).*'noon'.*rows \[7\]", message)
    assert re.search(r"column 'amount': less_than_or_equal_to.*1 row\(s\).*1000000000.0", message)
    assert re.search(r"column 'merchant_category': isin.*'casino'.*rows \[5\]", message)


def test_validate_tolerates_rare_unseen_categories(fraud: pd.DataFrame) -> None:
    schema = data.infer_schema(fraud)
    batch = fraud.head(1_000).copy()
    batch.loc[batch.index[:5], "merchant_category"] = "casino"  # 0.5% of the rows
    with pytest.raises(DataError, match="casino"):
        data.validate(batch, schema)
    data.validate(batch, schema, unseen_category_limit=0.01)
    with pytest.raises(DataError, match="casino"):
        data.validate(batch, schema, unseen_category_limit=0.001)


def test_infer_schema_skips_isin_for_high_cardinality() -> None:
    df = pd.DataFrame({"id": [f"u{i}" for i in range(100)], "x": np.arange(100.0)})
    schema = data.infer_schema(df, max_categories=50)
    assert schema.columns["id"].checks == []
    assert [c.name for c in schema.columns["x"].checks] == [
        "greater_than_or_equal_to", "less_than_or_equal_to"
    ]


def test_read_schema_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"schema file not found: .*absent\.yaml"):
        data.read_schema(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("columns: [unclosed\n")
    with pytest.raises(DataError, match=r"cannot read the schema .*broken\.yaml"):
        data.read_schema(broken)


# --------------------------------------------------------------------------------------- profile
def test_profile_flags_leakage_and_constant_columns(fraud: pd.DataFrame) -> None:
    df = fraud.copy()
    rng = np.random.default_rng(0)
    df["chargeback_flag"] = df["is_fraud"] * rng.uniform(0.5, 1.0, len(df))  # planted leak
    df["currency"] = "EUR"
    df["all_missing"] = np.nan
    df["user_id"] = [f"u{i}" for i in range(len(df))]
    df = pd.concat([df, df.head(3)], ignore_index=True)
    result = data.profile(df, target="is_fraud", problem_type="classification")
    json.dumps(result, allow_nan=False)
    assert [s["column"] for s in result["leakage_suspects"]] == ["chargeback_flag"]
    assert result["leakage_suspects"][0]["score"] >= 0.98
    assert set(result["constant_columns"]) == {"currency", "all_missing"}
    assert result["all_nan_columns"] == ["all_missing"]
    assert result["high_cardinality_columns"] == ["user_id"]
    assert result["duplicate_rows"] == 3
    assert result["rows"] == len(df) and result["fingerprint"] == data.fingerprint(df)
    assert result["target"]["class_counts"]["1"] == int(df["is_fraud"].sum())
    assert result["missing"]["customer_age"] > 0
    assert set(result["numeric"]["amount"]) >= {"mean", "std", "min", "median", "max"}


def test_profile_regression_target_and_leak() -> None:
    df = make_ltv(3_000, seed=0)
    df["ltv_cents"] = df["ltv"] * 100 + 1
    result = data.profile(df, target="ltv", problem_type="regression")
    assert [s["column"] for s in result["leakage_suspects"]] == ["ltv_cents"]
    assert result["target"]["quantiles"]["q50"] > 0 and result["target"]["skew"] > 1


def test_profile_is_fast_on_100k_rows() -> None:
    df = make_fraud(100_000, seed=0)
    start = time.perf_counter()
    result = data.profile(df, target="is_fraud", problem_type="classification")
    assert time.perf_counter() - start < 5.0
    assert result["leakage_suspects"] == []


def test_write_eda_report(fraud: pd.DataFrame, tmp_path: Path) -> None:
    prof = data.profile(fraud, target="is_fraud", problem_type="classification")
    md = data.write_eda_report(
        fraud.head(2_000), prof, tmp_path / "eda", target="is_fraud",
        problem_type="classification",
    )
    assert md.name == "eda-summary.md"
    text = md.read_text()
    for png in ("numeric-histograms.png", "target-balance.png", "correlation-heatmap.png"):
        assert (md.parent / png).read_bytes().startswith(b"\x89PNG")
        assert f"]({png})" in text
    assert prof["fingerprint"] in text and "## Leakage suspects" in text
    assert prof["numbers_as_text"] == [] and "numbers stored as text" not in text


# ------------------------------------------------------------------------------ sample and split
def test_stratified_sample_keeps_a_rare_class() -> None:
    y = np.zeros(20_000, dtype=np.int64)
    y[:20] = 2  # 0.1%
    y[20:2_020] = 1
    df = pd.DataFrame({"x": np.arange(20_000), "y": y})
    out = data.sample(df, target="y", n=1_000, problem_type="classification", seed=0)
    assert len(out) == 1_000
    assert out["y"].value_counts().to_dict() == {0: 899, 1: 100, 2: 1}
    assert out.index.is_monotonic_increasing
    again = data.sample(df, target="y", n=1_000, problem_type="classification", seed=0)
    pd.testing.assert_frame_equal(out, again)


def test_random_sample_for_regression() -> None:
    df = make_ltv(5_000, seed=0)
    out = data.sample(df, target="ltv", n=300, problem_type="regression", seed=1)
    assert len(out) == 300 and not out.index.duplicated().any()
    assert len(data.sample(df, target="ltv", n=10_000, problem_type="regression")) == 5_000


def test_split_xy_and_target_errors(fraud: pd.DataFrame) -> None:
    X, y = data.split_xy(fraud, target="is_fraud", problem_type="classification")
    assert "is_fraud" not in X.columns and y.name == "is_fraud" and len(X) == len(y)
    with pytest.raises(DataError, match=r"target column 'label' is not in the data.*amount"):
        data.split_xy(fraud, target="label")
    single = fraud.assign(is_fraud=0)
    with pytest.raises(DataError, match=r"target column 'is_fraud' has a single class"):
        data.split_xy(single, target="is_fraud", problem_type="classification")
    with pytest.raises(DataError, match=r"'is_fraud' has a single class"):
        data.check_target(single["is_fraud"], "classification")
    with pytest.raises(DataError, match=r"feature column\(s\) 'empty' are entirely missing"):
        data.split_xy(fraud.assign(empty=np.nan), target="is_fraud")
    with pytest.raises(DataError, match=r"regression target 'c' must be numeric"):
        data.check_target(pd.Series(["a", "b"], name="c"), "regression")


def test_holdout_split_stratified(fraud: pd.DataFrame) -> None:
    X, y = data.split_xy(fraud, target="is_fraud")
    X_train, X_test, y_train, y_test = data.holdout_split(
        X, y, problem_type="classification", test_size=0.2, seed=0
    )
    assert len(X_test) == 1_000 and len(X_train) == 4_000
    assert abs(y_test.mean() - y.mean()) < 0.002
    assert X_train.index.equals(y_train.index)


def test_holdout_split_time_based() -> None:
    df = pd.DataFrame({"t": pd.date_range("2024-01-01", periods=100)[::-1], "x": range(100)})
    y = pd.Series(np.arange(100.0), name="y")
    X_train, X_test, _, y_test = data.holdout_split(
        df, y, problem_type="regression", test_size=0.1, time_column="t"
    )
    assert len(X_test) == 10 and X_test["t"].min() > X_train["t"].max()
    assert y_test.tolist() == list(range(9, -1, -1))
    with pytest.raises(DataError, match=r"time column 'when' is not in X.*t, x"):
        data.holdout_split(df, y, problem_type="regression", time_column="when")


def test_holdout_split_rejects_unstratifiable_class() -> None:
    X = pd.DataFrame({"x": range(10)})
    y = pd.Series([0] * 9 + [1], name="label")
    with pytest.raises(DataError, match=r"class 1 of 'label' has a single row"):
        data.holdout_split(X, y, problem_type="classification")
    with pytest.raises(DataError, match="test_size"):
        data.holdout_split(X, y, problem_type="regression", test_size=1.5)


def test_arrow_parquet_written_by_pyarrow_loads(tmp_path: Path) -> None:
    table = pa_arrow.table({"a": [1, 2, None], "s": ["x", None, "z"]})
    pq.write_table(table, tmp_path / "t.pq")
    df = data.load_table(tmp_path / "t.pq")
    assert df["a"].isna().sum() == 1 and df["s"].isna().sum() == 1
