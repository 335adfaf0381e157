"""Explanations (T-007): SHAP additivity for every candidate family, permutation and native
importance, the saved SHAP values and plots, LIME beside SHAP, the examples per problem type.

Each model is small (≤ 300 rows, a few trees) and packaged by hand as a :class:`Predictor` (the
same object ``Predictor.load`` builds from a package), so every test takes about a second.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from specweave_ray.deploy._explain_report import write_explainability
from specweave_ray.deploy.explain import explain_matrix
from specweave_ray.deploy.predictor import Predictor
from specweave_ray.exceptions import CandidateError
from specweave_ray.features import build_preprocessor

N = 240


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "amount": rng.lognormal(3, 1, n),
        "hour": rng.integers(0, 24, n).astype(np.int64),
        "score": rng.normal(size=n),
        "shop": rng.choice(["a", "b", "c", "d"], n),
    })


def _target(X: pd.DataFrame, kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    z = np.log(X["amount"]) - 3 + 1.5 * X["score"] + (X["shop"] == "a") * 1.0 + rng.normal(0, 0.5, len(X))
    if kind == "binary":
        return np.where(z > 0.3, "fraud", "legit")
    if kind == "multiclass":
        return np.digitize(z, [-0.5, 0.8])  # three classes 0, 1, 2
    return 10.0 + 5.0 * z


SCHEMA = {"amount": {"kind": "number", "dtype": "float64"}, "hour": {"kind": "number", "dtype": "int64"},
          "score": {"kind": "number", "dtype": "float64"}, "shop": {"kind": "string", "dtype": "str"}}


def _estimator(family: str, kind: str):
    import lightgbm
    import xgboost
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, Ridge

    from specweave_ray.candidates.torch_mlp import TorchMLPClassifier, TorchMLPRegressor

    clf = kind != "regression"
    return {
        "xgboost": lambda: (xgboost.XGBClassifier if clf else xgboost.XGBRegressor)(n_estimators=15, max_depth=3),
        "lightgbm": lambda: (lightgbm.LGBMClassifier if clf else lightgbm.LGBMRegressor)(
            n_estimators=15, num_leaves=7, min_child_samples=5, verbose=-1),
        "random-forest": lambda: (RandomForestClassifier if clf else RandomForestRegressor)(
            n_estimators=8, max_depth=4, random_state=0),
        "linear": lambda: LogisticRegression(max_iter=500) if clf else Ridge(alpha=1.0),
        "torch-mlp": lambda: (TorchMLPClassifier if clf else TorchMLPRegressor)(
            hidden_sizes=[8], epochs=3, device="cpu", random_state=0),
    }[family]()


def package(folder, family: str, kind: str, *, seed: int = 0) -> tuple[Predictor, pd.DataFrame, pd.Series]:
    """A fitted feature pipeline and model as a Predictor over ``folder``, with its held-out rows."""
    X = _frame(N, seed)
    y = pd.Series(_target(X, kind, seed), name="label")
    train, test = X.iloc[:180], X.iloc[180:]
    features = build_preprocessor(train).fit(train)
    codes, classes = (pd.factorize(y, sort=True) if kind != "regression" else (y.to_numpy(), None))
    model = _estimator(family, kind).fit(features.transform(train), codes[:180])
    folder.mkdir(parents=True, exist_ok=True)
    background = folder / "model-v1.background.parquet"
    train.head(50).reset_index(drop=True).to_parquet(background, index=False)
    meta = {"version": 1, "increment": "0001-explain", "problem_type": "regression" if kind == "regression"
            else "classification", "target": "label", "estimator": family,
            "classes": None if classes is None else [c.item() if hasattr(c, "item") else c for c in classes],
            "threshold": 0.5 if kind == "binary" else None, "input_schema": SCHEMA,
            "explainer_background": background.name,
            "files": {background.name: hashlib.sha256(background.read_bytes()).hexdigest()}}
    return Predictor(meta, folder, model=model, features=features), test.reset_index(drop=True), \
        y.iloc[180:].reset_index(drop=True)


def _model_output(predictor: Predictor, frame: pd.DataFrame, m) -> np.ndarray:
    """What the contributions must add up to, computed from the model directly."""
    X = np.asarray(predictor.encode(frame), dtype=np.float64)
    rows = np.arange(len(frame))
    if m.method == "tree-shap":
        if predictor.family == "xgboost":
            margin = predictor.raw_model.inplace_predict(X, predict_type="margin")
        else:
            margin = predictor.raw_model.predict(X, raw_score=True)
        margin = np.asarray(margin, dtype=np.float64)
        return margin if margin.ndim == 1 else margin[rows, m.explained]
    if predictor.classes is None:
        return np.asarray(predictor.model.predict(X), dtype=np.float64)
    return predictor.model.predict_proba(X)[rows, m.explained]


CASES = [("xgboost", "binary"), ("xgboost", "regression"), ("xgboost", "multiclass"), ("lightgbm", "regression"),
         ("lightgbm", "multiclass"), ("random-forest", "binary"), ("random-forest", "regression"),
         ("linear", "binary"), ("linear", "regression"), ("torch-mlp", "binary"), ("torch-mlp", "regression")]


@pytest.mark.parametrize(("family", "kind"), CASES)
def test_contributions_plus_base_equal_the_model_output(tmp_path, family: str, kind: str) -> None:
    predictor, test, _ = package(tmp_path, family, kind)
    frame = predictor.validate(test.head(4 if predictor.explainer_kind == "kernel-shap" else 60))
    m = explain_matrix(predictor, frame)
    assert m.features == list(SCHEMA) and m.values.shape == (len(frame), len(SCHEMA))
    assert m.method == ("tree-shap" if family in ("xgboost", "lightgbm") else "kernel-shap")
    expected = _model_output(predictor, frame, m)
    np.testing.assert_allclose(m.base + m.values.sum(axis=1), expected, rtol=1e-5, atol=1e-5)
    if kind == "multiclass":
        assert m.output == "margin" and set(m.explained) <= {0, 1, 2}


def _record(inc, record_id: str):
    from specweave_ray.workspace.records import read_record

    return read_record(inc.experiments_dir / record_id)


@pytest.fixture
def inc(tmp_path, monkeypatch):
    from specweave_ray.workspace.increment import Increment

    monkeypatch.setenv("SPECWEAVE_MLFLOW", "0")  # the MLflow mirror is test_records' business
    return Increment.create("Explain", problem_type="classification", root=tmp_path / "incs")


def test_record_has_permutation_importance_with_bands_beside_native_gain(tmp_path, inc) -> None:
    predictor, test, y = package(tmp_path / "pkg", "xgboost", "binary")
    record = _record(inc, write_explainability(inc, predictor, test, y, seed=0, n_repeats=4))
    table = pd.read_csv(record.path / "importance.csv", index_col="feature")
    assert set(table.index) == set(SCHEMA)
    assert {"permutation_mean", "permutation_std", "ci_low", "ci_high", "native_importance",
            "native_kind", "mean_abs_shap"} <= set(table.columns)
    assert (table["ci_low"] <= table["permutation_mean"]).all()
    assert (table["permutation_mean"] <= table["ci_high"]).all()
    assert list(table["permutation_mean"]) == sorted(table["permutation_mean"], reverse=True)
    assert set(table["native_kind"]) == {"total gain"}
    assert table["native_importance"].sum() == pytest.approx(1.0)
    # the signal lives in score and amount; the noise column hour matters less than either
    assert table.loc["score", "permutation_mean"] > table.loc["hour", "permutation_mean"]
    assert table.loc["score", "native_importance"] > table.loc["hour", "native_importance"]
    assert record.params["permutation_metric"] == "roc_auc" and record.params["permutation_repeats"] == 4
    assert (record.path / "importance.png").stat().st_size > 1000
    report = (record.path / "explainability.md").read_text()
    assert "Permutation importance" in report and "roc_auc" in report and "total gain" in report
    # the examples are the highest-risk test rows: the largest probabilities of the second class
    examples = json.loads((record.path / "examples.json").read_text())
    top = np.sort(predictor.predict_proba(test)[:, 1])[::-1][:5]
    np.testing.assert_allclose([e["probability"] for e in examples], top, rtol=1e-6)
    assert {e["explained_class"] for e in examples} == {"legit"} and "highest-risk" in report


@pytest.mark.parametrize(("family", "kind", "native"), [
    ("linear", "regression", "|coef|"), ("random-forest", "binary", "impurity decrease"),
    ("torch-mlp", "regression", None)])
def test_native_importance_per_family(tmp_path, family: str, kind: str, native: str | None) -> None:
    from specweave_ray.deploy._importance import native_importance

    predictor, _, _ = package(tmp_path, family, kind)
    values, found = native_importance(predictor)
    assert found == native
    if native is None:
        assert values is None
    else:
        assert list(values.index) == list(SCHEMA) and (values >= 0).all() and values["score"] > 0


@pytest.mark.parametrize(("family", "kind"), [("lightgbm", "regression"), ("linear", "binary")])
def test_record_saves_shap_values_portably_with_beeswarm_and_dependence(tmp_path, inc, family, kind) -> None:
    predictor, test, y = package(tmp_path / "pkg", family, kind)
    record = _record(inc, write_explainability(inc, predictor, test.head(30), y.head(30), seed=0, n_repeats=2))
    values = np.load(record.path / "shap_values.npy", allow_pickle=False)
    base = np.load(record.path / "shap_base_values.npy", allow_pickle=False)
    info = json.loads((record.path / "shap_features.json").read_text())
    rows = pd.read_parquet(record.path / "shap_rows.parquet")
    assert info["features"] == list(SCHEMA) and values.shape == (len(rows), len(SCHEMA)) == (30, 4)
    assert not list(record.path.glob("*.pkl")) and not list(record.path.glob("*.pickle"))
    m = explain_matrix(predictor, predictor.validate(rows))
    np.testing.assert_allclose(values, m.values, rtol=1e-6, atol=1e-9)  # what the files hold is re-derivable
    np.testing.assert_allclose(base + values.sum(axis=1), _model_output(predictor, rows, m), rtol=1e-5, atol=1e-5)
    if kind == "binary":
        assert info["output"] == "probability" and set(info["explained_class"]) == {"legit"}
    else:
        assert info["output"] == "value" and info["explained_class"] is None
    assert (record.path / "shap_beeswarm.png").stat().st_size > 1000
    dependence = sorted(p.name for p in record.path.glob("shap_dependence_*.png"))
    assert len(dependence) == 3
    report = (record.path / "explainability.md").read_text()
    assert "shap_beeswarm.png" in report and all(name in report for name in dependence)
    # LIME beside SHAP for each example row; a regressor's examples are its largest errors
    examples = json.loads((record.path / "examples.json").read_text())
    assert len(examples) == 5
    for e in examples:
        lime = e["lime"]
        assert 1 <= len(lime["weights"]) <= 5 and {w["feature"] for w in lime["weights"]} <= set(SCHEMA)
        assert all(isinstance(w["rule"], str) and np.isfinite(w["weight"]) for w in lime["weights"])
        explained = e["probability"] if kind == "binary" else e["prediction"]
        assert lime["model_output"] == pytest.approx(explained, rel=1e-6)  # LIME explains the package
        assert e["output_value"] == pytest.approx(e["base_value"] + sum(
            c["contribution"] for c in e["contributions"]) + e["other"], abs=1e-9)
    if kind == "regression":
        errors = np.abs(y.head(30).to_numpy() - predictor.predict(test.head(30)))
        found = [abs(e["actual"] - e["prediction"]) for e in examples]
        np.testing.assert_allclose(found, np.sort(errors)[::-1][:5], rtol=1e-9)
        assert "largest errors" in report
    assert "LIME rule" in report


def test_examples_hook_per_problem_type() -> None:
    from specweave_ray import problems

    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1], [0.9, 0.05, 0.05]])
    picks, why = problems.get("classification").explain_examples(np.array([0, 0, 1, 0]), proba, n=2)
    assert list(picks) == [1, 2] and "highest-risk" in why  # class 0 is the common one
    binary = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert list(problems.get("classification").explain_examples(np.array([0, 1, 0]), binary, n=2)[0]) == [1, 2]
    picks, why = problems.get("regression").explain_examples(np.array([1.0, 5.0, 3.0]), np.array([1.5, 1.0, 3.0]), n=2)
    assert list(picks) == [1, 0] and "largest errors" in why
    with pytest.raises(CandidateError, match="recommendation has no per-row examples"):
        problems.get("recommendation").explain_examples(np.zeros(2), np.zeros(2), n=1)


def test_lime_codec_round_trips_every_column_kind() -> None:
    from specweave_ray.deploy._lime import _Codec

    frame = pd.DataFrame({
        "amount": [1.5, np.nan, 3.0], "hour": np.array([1, 2, 3], dtype=np.int64),
        "shop": ["a", None, "b"], "member": [True, False, True],
        "seen": pd.to_datetime(["2024-01-01 10:00", "2024-02-01 00:00", "2024-03-01 00:00"]),
    })
    codec = _Codec(frame)
    assert [frame.columns[j] for j in codec.categorical] == ["shop", "member"]
    back = codec.decode(codec.encode(frame))
    assert back["amount"].tolist() == [1.5, 2.25, 3.0]  # a missing number as the median
    assert back["hour"].dtype == "int64" and back["hour"].tolist() == [1, 2, 3]
    assert [None if pd.isna(v) else v for v in back["shop"]] == ["a", None, "b"]
    assert back["member"].tolist() == [True, False, True]
    assert (back["seen"] == frame["seen"]).all()
    jittered = codec.decode(codec.encode(frame) + 0.3)  # LIME perturbs: integers and levels snap back
    assert jittered["hour"].tolist() == [1, 2, 3] and jittered["shop"].isna().tolist() == [False, True, False]
