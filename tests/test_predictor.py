"""The Predictor: inputs, validation, the fast path, labels, thresholds, explanations, families."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from specweave_ray.deploy._fast_features import compile_encoder, feature_groups
from specweave_ray.deploy._rows import RowValidator
from specweave_ray.deploy.predictor import Predictor
from specweave_ray.exceptions import CandidateError, DataError, FastPathUnsupported
from specweave_ray.features import build_preprocessor


# -- the NumPy encoder against scikit-learn (fast, no pipeline run) ----------------------------
def _mixed_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cats = [f"c{i:02d}" for i in range(30)]  # 30 levels, max_categories=20: rare ones are infrequent
    frame = pd.DataFrame({
        "amount": rng.lognormal(3, 1, n),
        "count": rng.integers(0, 10, n),
        "shop": rng.choice(cats, n, p=np.r_[np.full(10, 0.08), np.full(20, 0.01)]),
        "device": rng.choice(["ios", "android", "web"], n),
        "member": rng.random(n) > 0.5,
        "seen": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 20_000, n), unit="h"),
    })
    frame.loc[rng.random(n) < 0.1, "amount"] = np.nan
    frame.loc[rng.random(n) < 0.1, "shop"] = None
    frame.loc[rng.random(n) < 0.05, "seen"] = pd.NaT
    return frame


def _records(frame: pd.DataFrame) -> list[dict]:
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def test_fast_encoder_equals_column_transformer(seed: int) -> None:
    train = _mixed_frame(3000, seed)
    ct = build_preprocessor(train).fit(train)
    encoder = compile_encoder(ct)
    rows = _mixed_frame(800, seed + 1)
    rows.loc[:19, "shop"] = "never-seen"       # unknown → the infrequent column
    rows.loc[20:39, "device"] = "smart-tv"     # unknown, no infrequent column → all zeros
    rows.loc[40:49, "count"] = np.nan          # missing in a column that had none
    infrequent = ct.named_transformers_["cat"][-1].infrequent_categories_[0]
    assert infrequent is not None and len(infrequent) > 0
    rows.loc[50:59, "shop"] = infrequent[0]
    fast = encoder.encode(_records(rows))
    slow = ct.transform(rows)
    assert fast.shape == slow.shape
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)
    one_by_one = np.array([encoder.encode_one(r) for r in _records(rows)])  # the single-row path
    np.testing.assert_allclose(one_by_one, slow, rtol=0, atol=1e-9)
    groups = feature_groups(ct, slow.shape[1], list(train.columns))
    assert groups.count("amount") == 1 and groups.count("seen") == 5 and groups.count("member") == 2
    assert set(groups) == set(train.columns)


def test_fast_encoder_frame_path_equals_column_transformer(seed: int) -> None:
    """The large-frame path reads columns straight from the frame: every dtype a validated
    column may come in, any column order, unseen and missing categories."""
    train = _mixed_frame(3000, seed)
    ct = build_preprocessor(train).fit(train)
    encoder = compile_encoder(ct)
    rows = _mixed_frame(500, seed + 1)
    rows.loc[:19, "shop"] = "never-seen"
    rows.loc[20:39, "device"] = "smart-tv"
    rows.loc[40:49, "amount"] = np.nan
    rows.loc[50:54, "shop"] = np.nan
    slow = ct.transform(rows)
    member = rows["member"].astype(object)
    member[:7] = None  # a boolean column with missing values: object dtype, Python bools
    variants = {
        "as is": rows,
        "shuffled columns": rows[list(reversed(rows.columns))],
        "categorical dtype": rows.astype({"shop": "category", "device": "category"}),
        "text dtype": rows.astype({"shop": "string", "device": "string"}),
        "pd.NA for missing": rows.assign(shop=rows["shop"].astype(object).where(rows["shop"].notna(), pd.NA)),
        "int count as float": rows.astype({"count": "float64"}),
        "nullable ints": rows.astype({"count": "Int64"}),
        "object bools with None": rows.assign(member=member),
    }
    for name, frame in variants.items():
        expected = slow if name != "object bools with None" else ct.transform(frame)
        np.testing.assert_allclose(encoder.encode_frame(frame), expected, rtol=0, atol=1e-9, err_msg=name)


def test_fast_encoder_refuses_steps_it_does_not_know() -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import MinMaxScaler

    train = _mixed_frame(200, 0)[["amount", "count"]].fillna(0.0)
    ct = ColumnTransformer([("num", MinMaxScaler(), ["amount", "count"])]).fit(train)
    with pytest.raises(FastPathUnsupported, match="MinMaxScaler"):
        compile_encoder(ct)


SCHEMA = {"amount": {"kind": "number", "dtype": "float64"}, "hour": {"kind": "number", "dtype": "int64"},
          "shop": {"kind": "string", "dtype": "str"}, "member": {"kind": "boolean", "dtype": "bool"},
          "seen": {"kind": "datetime", "dtype": "datetime64[ns]"}}
GOOD = {"amount": 12.5, "hour": 3, "shop": "c01", "member": True, "seen": "2024-05-01T10:00:00"}


@pytest.mark.parametrize(("row", "messages"), [
    ({**GOOD, "foo": 1}, ["unexpected field 'foo'"]),
    ({k: v for k, v in GOOD.items() if k != "amount"}, ["missing field 'amount'"]),
    ({**GOOD, "hour": "ten"}, ["field 'hour' must be a number, got 'ten'"]),
    ({**GOOD, "amount": float("inf")}, ["field 'amount' must be a finite number"]),
    ({**GOOD, "shop": 7}, ["field 'shop' must be a string, got 7"]),
    ({**GOOD, "member": "yes"}, ["field 'member' must be true or false, got 'yes'"]),
    ({**GOOD, "seen": "not a date"}, ["field 'seen' must be a date/time"]),
    ({k: v for k, v in {**GOOD, "foo": 1, "hour": "ten"}.items() if k != "amount"},
     ["missing field 'amount'", "unexpected field 'foo'", "field 'hour' must be a number, got 'ten'"]),
])
def test_validator_names_every_bad_field(row: dict, messages: list[str]) -> None:
    validator = RowValidator(SCHEMA)
    with pytest.raises(DataError) as err:
        validator.check_records([row])
    for message in messages:
        assert message in str(err.value)
    frame = pd.DataFrame([row])
    with pytest.raises(DataError) as err:
        validator.check_frame(frame)
    for message in messages:
        assert message.split(", got")[0] in str(err.value)


def test_validator_accepts_missing_values_and_types_the_frame() -> None:
    validator = RowValidator(SCHEMA)
    rows = [GOOD, {"amount": None, "hour": float("nan"), "shop": None, "member": np.bool_(False), "seen": None}]
    frame = validator.frame(validator.check_records(rows))
    assert list(frame.columns) == list(SCHEMA)
    assert frame["amount"].dtype == "float64" and frame["amount"].isna().sum() == 1
    assert pd.api.types.is_datetime64_any_dtype(frame["seen"])
    with pytest.raises(DataError, match=r"row 1: field 'hour'.*row 2: missing field 'shop'"):
        validator.check_records([GOOD, {**GOOD, "hour": "x"}, {k: v for k, v in GOOD.items() if k != "shop"}])


def test_one_row_frames_read_as_to_numpy_reads_them() -> None:
    from specweave_ray.deploy._rows import _first_row

    frame = _mixed_frame(50, 3).assign(flag=np.arange(50) % 2 == 0, small=np.float32(0.1), n=np.arange(50))
    frame.loc[3, "shop"] = np.nan
    forms = {"as is": frame, "shuffled": frame[list(reversed(frame.columns))],
             "dropped": frame.drop(columns=["count", "member"]), "every other": frame.iloc[:, ::2],
             "nullable": frame.astype({"count": "Int64"}), "categorical": frame.astype({"shop": "category"})}
    for name, form in forms.items():
        for i in (0, 3, 7):
            one = form.iloc[[i]]
            got, want = _first_row(one, one.shape[1]), one.to_numpy(dtype=object)[0].tolist()
            assert [type(v) for v in got] == [type(v) for v in want], name
            assert pd.Series(got, dtype=object).equals(pd.Series(want, dtype=object)), name


def test_torch_standardisation_is_the_estimators_arithmetic() -> None:
    from specweave_ray.deploy.predictor import _standardiser

    rng = np.random.default_rng(0)
    X = rng.normal(3.0, 40.0, (10_000, 7))  # more rows than one block
    mean64, scale32 = X.mean(axis=0), X.std(axis=0).astype(np.float32)
    for mean in (mean64, mean64.astype(np.float32)):
        expected = ((np.asarray(X, dtype=np.float32) - mean) / scale32).astype(np.float32)
        for given in (X, X.astype(np.float32), X[:3]):
            before = given.copy()
            got = _standardiser(mean, scale32)(given)
            assert got.dtype == np.float32 and np.array_equal(got, expected[:len(given)])
            assert np.array_equal(given, before)  # the caller's matrix is not written


# -- packages from real pipeline runs ------------------------------------------------------------
def _run_to_evaluation(cfg: dict, root: Path, increment=None):
    """Run the pipeline's tasks up to T-006 (the later ones build and benchmark packages
    themselves; these tests build theirs explicitly)."""
    from specweave_ray.pipeline._tasks import TASK_ORDER, ensure_increment, run_pipeline
    from specweave_ray.spec.config import parse_config

    config = parse_config(cfg, source="test")
    inc = increment or ensure_increment(config, root=root)
    for task in TASK_ORDER[TASK_ORDER.index("T-006") + 1:]:
        inc.tick(task)
    return run_pipeline(config, increment=inc).increment


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Fraud with string labels and missing values: an XGBoost package (v1), then a torch-MLP one
    (v2, the same increment rerun from T-004); an LTV regression with LightGBM. The three runs
    share one Ray (each would start and stop its own) and small data: these tests read packages."""
    import ray

    from specweave_ray.data.datasets import make_fraud, make_ltv
    from specweave_ray.search._ray.tune import ensure_ray

    tmp = tmp_path_factory.mktemp("predictor")
    root = tmp / "incs"
    fraud = make_fraud(2000, positive_rate=0.05, seed=1)
    fraud["label"] = np.where(fraud.pop("is_fraud") == 1, "fraud", "legit")
    fraud.loc[fraud.sample(frac=0.05, random_state=0).index, "customer_age"] = np.nan
    fraud.to_parquet(tmp / "fraud.parquet", index=False)
    make_ltv(1500, seed=2).to_parquet(tmp / "ltv.parquet", index=False)
    sweep = {"cv": 2, "stages": 1, "tuning_samples": 1, "num_cpus": 2}
    fraud_cfg = {"increment": "Fraud Labels", "problem_type": "classification", "seed": 3, "sweep": sweep,
                 "data": {"path": str(tmp / "fraud.parquet"), "target": "label"}}
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        for var in ("SPECWEAVE_ROOT", "MLFLOW_TRACKING_URI"):
            mp.delenv(var, raising=False)
        mp.setenv("SPECWEAVE_MLFLOW", "0")  # the registry is test_package's business
        mp.delenv("RAY_ADDRESS", raising=False)
        started = ensure_ray(num_cpus=2)
        try:
            out.update(_three_packages(fraud_cfg, sweep, tmp, root))
        finally:
            if started:
                ray.shutdown()
    return out


def _three_packages(fraud_cfg: dict, sweep: dict, tmp: Path, root: Path) -> dict:
    from specweave_ray.deploy.package import build_package

    out = {}
    inc = _run_to_evaluation({**fraud_cfg, "candidates": [
        {"name": "xgboost", "estimator": "xgboost", "num_samples": 2,
         "params": {"n_estimators": 30, "max_depth": {"randint": [2, 5]}}}]}, root)
    out["xgboost"] = (inc, build_package(inc))
    for task in ("T-004", "T-005", "T-006"):  # the same increment, another candidate
        inc.tick(task, done=False)
    _run_to_evaluation({**fraud_cfg, "candidates": [
        {"name": "torch-mlp", "estimator": "torch-mlp",
         "params": {"epochs": 4, "device": "cpu", "hidden_sizes": [16]}}]}, root, increment=inc)
    out["torch"] = (inc, build_package(inc))
    ltv = _run_to_evaluation({
        "increment": "LTV Package", "problem_type": "regression", "seed": 3, "sweep": sweep,
        "data": {"path": str(tmp / "ltv.parquet"), "target": "ltv"},
        "candidates": [{"name": "lightgbm", "estimator": "lightgbm",
                        "params": {"n_estimators": 40, "verbose": -1}}]}, root)
    out["lightgbm"] = (ltv, build_package(ltv))
    return out


def _load(packages: dict, family: str) -> tuple[Predictor, pd.DataFrame, dict]:
    inc, path = packages[family]
    meta = json.loads(Path(path).read_text())
    predictor = Predictor.load(inc, version=meta["version"])
    rows = pd.read_parquet(inc.data_dir / "sample.parquet")[predictor.input_columns]
    return predictor, rows.reset_index(drop=True), meta


def _original(inc, meta: dict) -> tuple:
    """The evaluated trial's own model and feature pipeline, loaded the pipeline's way."""
    from specweave_ray.candidates.serialization import load_native
    from specweave_ray.workspace.records import read_record

    rec = read_record(inc.experiments_dir / meta["trial_record"])
    art = rec.meta["artifacts"]
    return load_native(rec.path, art["model"]), load_native(rec.path, art["features"])


@pytest.mark.slow
def test_xgboost_inputs_labels_threshold(packages: dict) -> None:
    predictor, rows, meta = _load(packages, "xgboost")
    assert predictor.family == "xgboost" and predictor.fast_path and meta["format"] == "xgboost-ubj"
    assert meta["classes"] == ["fraud", "legit"] and predictor.threshold == meta["threshold"]
    frame = rows.head(40)
    records = json.loads(frame.to_json(orient="records"))
    proba = predictor.predict_proba(frame)
    np.testing.assert_allclose(predictor.predict_proba(records), proba, rtol=0, atol=1e-7)
    np.testing.assert_allclose(predictor.predict_proba(records[3]), proba[3:4], rtol=0, atol=1e-7)
    labels = predictor.predict(frame)
    assert set(labels) <= {"fraud", "legit"}
    expected = np.where(proba[:, 1] >= predictor.threshold, "legit", "fraud")
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(predictor.predict(records), labels)
    assert predictor.predict(records[0])[0] == labels[0]
    predictor.threshold = 1.1  # the threshold decides, not argmax
    assert set(predictor.predict(frame)) == {"fraud"}
    model, features = _original(packages["xgboost"][0], meta)
    np.testing.assert_allclose(proba, model.predict_proba(features.transform(frame)), rtol=0, atol=1e-7)


@pytest.mark.slow
def test_fast_path_equals_sklearn_path_on_odd_rows(packages: dict) -> None:
    predictor, rows, _ = _load(packages, "xgboost")
    odd = rows.head(300).copy()
    odd.loc[:29, "merchant_category"] = "never-seen"
    odd.loc[30:59, "customer_age"] = np.nan
    odd.loc[60:69, "merchant_category"] = None
    records = _records(odd)
    fast = predictor.encode(records)
    slow = predictor.features.transform(predictor.validate(odd))
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)
    np.testing.assert_allclose(predictor.predict_proba(records), predictor.predict_proba(odd), rtol=0, atol=1e-7)
    off = Predictor(predictor.metadata | {"fast_path": False}, predictor.folder, model=predictor.model,
                    features=predictor.features)
    assert not off.fast_path
    np.testing.assert_allclose(off.predict_proba(records), predictor.predict_proba(records), rtol=0, atol=1e-7)


@pytest.mark.slow
def test_validation_errors_name_every_field(packages: dict) -> None:
    predictor, rows, _ = _load(packages, "xgboost")
    row = _records(rows.head(1))[0]
    bad = {k: v for k, v in row.items() if k != "amount"} | {"foo": 1, "hour": "ten"}
    for call in (predictor.predict, predictor.predict_proba, predictor.validate):
        with pytest.raises(DataError) as err:
            call(bad)
        for part in ("missing field 'amount'", "unexpected field 'foo'", "field 'hour' must be a number, got 'ten'"):
            assert part in str(err.value)
    frame = rows.head(3).drop(columns=["amount"]).assign(foo=1)
    frame["hour"] = frame["hour"].astype(object)
    frame.loc[1, "hour"] = "ten"
    with pytest.raises(DataError, match=r"missing field 'amount'; unexpected field 'foo'; field 'hour' must be a number"):
        predictor.predict(frame)
    with pytest.raises(DataError, match="row 1: field 'merchant_category' must be a string"):
        predictor.predict([row, {**row, "merchant_category": 4}])
    with pytest.raises(DataError, match=r"unexpected field 'label' \(the target"):
        predictor.predict(rows.head(2).assign(label="fraud"))
    with pytest.raises(DataError, match="no rows"):
        predictor.predict([])
    with pytest.raises(DataError, match="rows must be"):
        predictor.predict("amount=3")


@pytest.mark.slow
def test_tree_explanations_add_up_to_the_margin(packages: dict) -> None:
    predictor, rows, _ = _load(packages, "xgboost")
    records = _records(rows.head(5))
    explanations = predictor.explain(records, top=3)
    margin = predictor.raw_model.inplace_predict(predictor.encode(records), predict_type="margin")
    proba = predictor.predict_proba(records)
    for e, m, p in zip(explanations, margin, proba, strict=True):
        assert e["method"] == "tree-shap" and e["output"] == "log_odds" and e["explained_class"] == "legit"
        assert len(e["contributions"]) == 3
        assert {c["feature"] for c in e["contributions"]} <= set(predictor.input_columns)
        total = e["base_value"] + sum(c["contribution"] for c in e["contributions"]) + e["other"]
        assert total == pytest.approx(e["output_value"], abs=1e-6)
        assert e["output_value"] == pytest.approx(float(m), abs=1e-4)
        assert e["probability"] == pytest.approx(float(p[1]), abs=1e-6)
        assert abs(e["contributions"][0]["contribution"]) >= abs(e["contributions"][-1]["contribution"])
    one = predictor.explain(records[0])
    assert len(one) == 1 and len(one[0]["contributions"]) == 5
    with pytest.raises(DataError, match="top"):
        predictor.explain(records[0], top=0)


@pytest.mark.slow
def test_torch_package_predicts_like_the_model_and_explains(packages: dict) -> None:
    predictor, rows, meta = _load(packages, "torch")
    assert meta["version"] == 2 and meta["format"] == "torch-state-dict" and predictor.family == "torch-mlp"
    model, features = _original(packages["torch"][0], meta)
    frame = rows.head(200)
    expected = model.predict_proba(features.transform(frame))
    np.testing.assert_allclose(predictor.predict_proba(frame), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(predictor.predict_proba(_records(frame)), expected, rtol=0, atol=1e-6)
    assert set(predictor.predict(frame)) <= {"fraud", "legit"}
    explanations = predictor.explain(_records(frame.head(2)), top=4)
    for e, p in zip(explanations, predictor.predict_proba(frame.head(2)), strict=True):
        assert e["method"] == "kernel-shap" and e["output"] == "probability"
        assert e["output_value"] == pytest.approx(float(p[1]), abs=1e-5)
        assert e["base_value"] + sum(c["contribution"] for c in e["contributions"]) + e["other"] == pytest.approx(
            e["output_value"], abs=1e-9)


@pytest.mark.slow
def test_lightgbm_regression_package(packages: dict) -> None:
    predictor, rows, meta = _load(packages, "lightgbm")
    assert meta["format"] == "lightgbm-txt" and meta["classes"] is None and meta["threshold"] is None
    assert predictor.family == "lightgbm" and predictor.fast_path and "ltv" not in predictor.input_columns
    model, features = _original(packages["lightgbm"][0], meta)
    frame = rows.head(200)
    expected = model.predict(features.transform(frame))
    np.testing.assert_allclose(predictor.predict(frame), expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(predictor.predict(_records(frame)), expected, rtol=0, atol=1e-9)
    with pytest.raises(CandidateError, match="regression"):
        predictor.predict_proba(frame)
    e = predictor.explain(_records(frame.head(1)))[0]
    assert e["output"] == "value" and "explained_class" not in e
    assert e["output_value"] == pytest.approx(float(expected[0]), rel=1e-6)


# -- every input form gives the same numbers (in-process predictors, no pipeline run) ----------
def test_dataframe_and_dict_paths_give_the_same_numbers_for_every_family() -> None:
    from predictor_helpers import odd_rows, tiny_predictors

    predictors, rows = tiny_predictors()
    frame = odd_rows(rows.head(100))  # > the small-frame cut: encoded a column at a time
    records = _records(frame)
    for family, p in predictors.items():
        slow = p.raw_predict(p.features.transform(p.validate(frame)))  # the scikit-learn path
        forms = {"frame": p.predict_proba(frame), "dicts": p.predict_proba(records),
                 "small frame": p.predict_proba(frame.head(20)),
                 "one-row frames": np.vstack([p.predict_proba(frame.iloc[[i]]) for i in range(0, 100, 7)]),
                 "one dicts": np.vstack([p.predict_proba(records[i]) for i in range(0, 100, 7)])}
        expected = {"frame": slow, "dicts": slow, "small frame": slow[:20], "one-row frames": slow[::7],
                    "one dicts": slow[::7]}
        for form, got in forms.items():
            np.testing.assert_allclose(got, expected[form], rtol=0, atol=1e-6, err_msg=f"{family} {form}")
        assert (p.predict(frame) == p.predict(records)).all()
        typed = frame.astype({"hour": "float64", "merchant_category": "category"})  # other dtypes, same values
        np.testing.assert_allclose(p.predict_proba(typed), slow, rtol=0, atol=1e-6, err_msg=family)


def test_frame_paths_read_any_column_order_and_dtype() -> None:
    """Large frames (read a column at a time) and one-row frames (read block by block) give the
    scikit-learn path's numbers with the columns shuffled and with extension dtypes."""
    from predictor_helpers import odd_rows, tiny_predictors

    predictors, rows = tiny_predictors()
    frame = odd_rows(rows.head(100))
    shuffled = frame[list(reversed(frame.columns))]
    typed = frame.astype({"merchant_category": "category", "hour": "Int64"})
    for family, p in predictors.items():
        slow = p.raw_predict(p.features.transform(p.validate(frame)))
        if family == "xgboost":  # scored from a float32 matrix: XGBoost's own rounding, same bits
            assert np.array_equal(p.predict_proba(frame), p.raw_predict(p.encode(frame)))
        for name, form in (("shuffled", shuffled), ("typed", typed)):
            np.testing.assert_allclose(p.predict_proba(form), slow, rtol=0, atol=1e-6, err_msg=f"{family} {name}")
            one = np.vstack([p.predict_proba(form.iloc[[i]]) for i in (0, 12, 22, 60)])
            np.testing.assert_allclose(one, slow[[0, 12, 22, 60]], rtol=0, atol=1e-6, err_msg=f"{family} {name} one row")


def test_large_frames_refuse_what_dict_rows_refuse() -> None:
    from predictor_helpers import tiny_predictors

    predictors, rows = tiny_predictors(families=("xgboost",))
    p = predictors["xgboost"]
    frame = rows.head(100).copy()
    for bad, message in (
            (frame.assign(amount=np.r_[np.inf, frame["amount"].to_numpy()[1:]]), "'amount' must be a finite number"),
            (frame.assign(merchant_category=[7, *frame["merchant_category"][1:]]), "'merchant_category' must be a string, got 7"),
            (frame.assign(hour=frame["hour"].astype(object).where(frame.index != 0, "x")), "'hour' must be a number, got 'x'"),
            # XGBoost's large frames are encoded in float32: the message still names the value
            (frame.assign(amount=np.r_[1e308, frame["amount"].to_numpy()[1:]]),
             r"row 0: a value is too large for the model: encoded feature '#0' is \d\.\d+e\+\d+, beyond float32"),
            (frame.drop(columns=["hour"]), "missing field 'hour'"),
            (frame.assign(is_fraud=0), "unexpected field 'is_fraud' \\(the target")):
        for form in (bad, bad.head(1)):
            with pytest.raises(DataError, match=message):
                p.predict_proba(form)


def test_dataframe_path_names_bad_columns_and_values() -> None:
    from predictor_helpers import tiny_predictors

    predictors, rows = tiny_predictors(families=("xgboost",))
    p = predictors["xgboost"]
    for frame in (rows.head(50), rows.head(3)):  # the columnar and the small-frame path
        bad = frame.drop(columns=["amount"]).assign(extra=1, hour="x")
        with pytest.raises(DataError, match=r"missing field 'amount'.*unexpected field 'extra'.*'hour' must be a number"):
            p.predict_proba(bad)
        with pytest.raises(DataError, match="'foreign' must be a number, got True"):
            p.predict_proba(frame.assign(foreign=True))
    with pytest.raises(DataError, match="no rows"):
        p.predict_proba(rows.head(0))
