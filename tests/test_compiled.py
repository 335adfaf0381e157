"""``Predictor.compile``: XGBoost and LightGBM scored through a TL2cgen library (real Treelite,
TL2cgen and gcc), only at the batch sizes where it is faster, with the booster's numbers."""

from __future__ import annotations

import numpy as np
import pytest
import tl2cgen
from predictor_helpers import tiny_predictors

from specweave_ray.deploy import predictor as predictor_mod
from specweave_ray.deploy._compiled import LGB_MIN_ROWS, XGB_MAX_ROWS
from specweave_ray.deploy.predictor import Predictor
from specweave_ray.exceptions import CandidateError

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def tiny():
    return tiny_predictors(n=3000, families=("xgboost", "lightgbm", "torch-mlp"))


def _fresh(p: Predictor) -> Predictor:
    return Predictor(p.metadata, p.folder, model=p.model, features=p.features)


def _booster(p: Predictor, X: np.ndarray) -> np.ndarray:
    if p.family == "xgboost":
        return p.raw_model.inplace_predict(X, iteration_range=predictor_mod._xgb_rounds(p.model),
                                           validate_features=False)
    return p.raw_model.predict(X)


@pytest.mark.parametrize("family", ["xgboost", "lightgbm"])
def test_compiled_scores_its_batch_sizes_and_the_booster_the_rest(tiny, tmp_path, family, monkeypatch):
    preds, rows = tiny
    plain = _fresh(preds[family])
    p = _fresh(preds[family]).compile(rows.head(200), folder=tmp_path)
    calls = []
    if family == "lightgbm":  # its library gives the booster's very bits: count the booster's calls
        own = p.raw_model.predict
        monkeypatch.setattr(p.raw_model, "predict", lambda X, **kw: calls.append(len(X)) or own(X, **kw))
    assert p.compiled is not None and p.compiled.parent == tmp_path and p.compiled.stat().st_size > 0
    lib = tl2cgen.Predictor(str(p.compiled), nthread=1)
    for n in (1, 64, XGB_MAX_ROWS + 1, LGB_MIN_ROWS, 2500):
        X = np.asarray(plain.encode(rows.head(n)), dtype=np.float64)
        calls.clear()
        got = p.raw_predict(X)[:, 1]
        assert family == "xgboost" or calls == ([] if n >= LGB_MIN_ROWS else [n]), (n, calls)
        compiled = lib.predict(tl2cgen.DMatrix(X)).reshape(n)
        uses_lib = n <= XGB_MAX_ROWS if family == "xgboost" else n >= LGB_MIN_ROWS
        # the row count picks the library or the booster, and each gives its own bits
        assert np.array_equal(got, compiled if uses_lib else _booster(p, X)), (family, n)
        # and the two agree to float32 rounding
        np.testing.assert_allclose(got, plain.raw_predict(X)[:, 1], rtol=1e-5, atol=1e-6)
    # every input path: a dict row, dict rows, a small and a large frame
    records = rows.head(40).to_dict("records")
    np.testing.assert_allclose(p.predict_proba(records[0]), plain.predict_proba(records[0]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p.predict_proba(records), plain.predict_proba(records), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p.predict_proba(rows.head(20)), plain.predict_proba(rows.head(20)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p.predict_proba(rows), plain.predict_proba(rows), rtol=1e-5, atol=1e-6)
    assert np.array_equal(p.predict(rows), plain.predict(rows)) or (
        np.mean(p.predict(rows) != plain.predict(rows)) < 1e-3)  # a threshold tie may flip by an ulp
    assert "compiled=True" in repr(p) and "compiled=False" in repr(plain)


def test_library_is_built_once_per_model(tiny, tmp_path):
    preds, rows = tiny
    first = _fresh(preds["xgboost"]).compile(rows.head(50), folder=tmp_path)
    built = first.compiled.stat().st_mtime_ns
    second = _fresh(preds["xgboost"]).compile(rows.head(50), folder=tmp_path)
    assert second.compiled == first.compiled and second.compiled.stat().st_mtime_ns == built
    assert sorted(f.name for f in tmp_path.iterdir()) == [first.compiled.name]  # no temporary left
    other = _fresh(preds["lightgbm"]).compile(rows.head(50), folder=tmp_path)
    assert other.compiled != first.compiled and other.compiled.name.startswith("lightgbm-")


def test_early_stopped_xgboost_compiles_the_trees_it_scores_with(tmp_path):
    import xgboost as xgb
    from sklearn.datasets import make_classification

    X, y = make_classification(1500, 8, flip_y=0.3, random_state=0)
    model = xgb.XGBClassifier(n_estimators=300, max_depth=4, learning_rate=0.3, early_stopping_rounds=5, n_jobs=1)
    model.fit(X[:1000], y[:1000], eval_set=[(X[1000:], y[1000:])], verbose=False)
    assert model.best_iteration + 1 < 300  # stopped early: the trees after it are not used
    names = [f"x{i}" for i in range(8)]
    meta = {"version": 1, "increment": "es", "classes": [0, 1], "threshold": 0.5, "input_schema":
            {c: {"dtype": "float64", "kind": "number", "nullable": True} for c in names}, "fast_path": True}
    p = Predictor(meta, tmp_path, model=model, features=None)
    import pandas as pd

    frame = pd.DataFrame(X, columns=names)
    p.compile(frame.head(100), folder=tmp_path)
    np.testing.assert_allclose(p.predict_proba(frame.head(200)), model.predict_proba(X[:200]), rtol=1e-5, atol=1e-6)


def test_regressor_and_multiclass_compile(tmp_path):
    import lightgbm as lgb
    import pandas as pd
    import xgboost as xgb
    from sklearn.datasets import make_classification, make_regression

    names = [f"x{i}" for i in range(6)]
    schema = {c: {"dtype": "float64", "kind": "number", "nullable": True} for c in names}
    Xr, yr = make_regression(2000, 6, noise=5.0, random_state=0)
    Xm, ym = make_classification(2000, 6, n_informative=4, n_classes=3, random_state=0)
    cases = [
        (xgb.XGBRegressor(n_estimators=30, max_depth=4, n_jobs=1).fit(Xr, yr), Xr, None),
        (lgb.LGBMRegressor(n_estimators=30, verbose=-1, n_jobs=1).fit(Xr, yr), Xr, None),
        (xgb.XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1).fit(Xm, ym), Xm, [0, 1, 2]),
        (lgb.LGBMClassifier(n_estimators=20, verbose=-1, n_jobs=1).fit(Xm, ym), Xm, [0, 1, 2]),
    ]
    for model, X, classes in cases:
        meta = {"version": 1, "increment": "shapes", "classes": classes, "threshold": None,
                "input_schema": schema, "fast_path": True}
        p = Predictor(meta, tmp_path, model=model, features=None)
        frame = pd.DataFrame(X, columns=names)
        p.compile(frame.head(100), folder=tmp_path)
        for n in (1, 100, 2000):
            expected = model.predict(X[:n]) if classes is None else model.predict_proba(X[:n])
            got = p.predict(frame.head(n)) if classes is None else p.predict_proba(frame.head(n))
            assert got.shape == expected.shape, (type(model).__name__, n)
            # regression values of a few hundred: float32 rounding is relative
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * float(np.abs(expected).max()))


def test_refusals_name_the_reason_and_change_nothing(tiny, tmp_path, monkeypatch):
    preds, rows = tiny
    with pytest.raises(CandidateError, match="torch-mlp model: only XGBoost and LightGBM"):
        _fresh(preds["torch-mlp"]).compile(rows.head(10), folder=tmp_path)
    with pytest.raises(CandidateError, match="no background rows"):
        _fresh(preds["xgboost"]).compile(folder=tmp_path)  # the tiny package has none

    real = predictor_mod.compile_trees

    def off_by_a_little(*args, **kwargs):
        lib, fn = real(*args, **kwargs)
        return lib, (lambda X: fn(X) + 1e-3)

    monkeypatch.setattr(predictor_mod, "compile_trees", off_by_a_little)
    p = _fresh(preds["lightgbm"])
    before = p.predict_proba(rows.head(5))
    with pytest.raises(CandidateError, match=r"disagrees with the booster on 10 rows \(largest difference 0.001\)"):
        p.compile(rows.head(10), folder=tmp_path)
    assert p.compiled is None and np.array_equal(p.predict_proba(rows.head(5)), before)
