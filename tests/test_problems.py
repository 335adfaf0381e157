"""The contract every registered problem type passes (as Optuna's ``BasicSamplerTestCase`` runs
over every sampler): folds never leak, baselines and default candidates fit and predict, metric
directions agree with ``Target.is_met``, scoring returns every metric the default criteria name.

A new problem type is added to ``problems.names()`` by registering it, and so runs through every
test here before anything else.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from specweave_ray import problems
from specweave_ray._fs import to_jsonable
from specweave_ray.candidates import configure
from specweave_ray.candidates.baselines import baseline_estimators
from specweave_ray.deploy.abtest import render_ab_plan
from specweave_ray.evaluate import score
from specweave_ray.exceptions import ConfigError, DataError
from specweave_ray.features import build_preprocessor
from specweave_ray.metrics import METRICS, find, get_metric
from specweave_ray.search import candidates_for
from specweave_ray.spec import ModelExperiment, default_targets

TYPES = problems.names()


def _interactions(problem: problems.ProblemType, n: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """``n`` interactions of 40 users with 60 items (users like items of their own group), a
    1-5 rating and a day, framed by the type itself."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(40), n // 40)
    items = (users % 4) * 15 + rng.integers(0, 15, size=len(users))
    df = pd.DataFrame({"uid": [f"u{u}" for u in users], "iid": [f"i{i}" for i in items],
                       "stars": rng.integers(1, 6, size=len(users)),
                       "day": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.permutation(len(users)), unit="D")})
    X, y = problem.frame(df, target="stars", columns={"user_column": "uid", "item_column": "iid",
                                                       "time_column": "day", "relevance_threshold": 3})
    return X, y.rename("target")


HORIZON = 10  # of the forecasting frame: 4 series of 60 days


def _series(problem: problems.ProblemType, n: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """4 daily series of ``n // 4`` days (level, weekly season, noise, a known promotion flag),
    framed by the type itself, ``HORIZON`` days ahead."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2026-01-01", periods=n // 4, freq="D")
    parts = []
    for s in range(4):
        promo = (rng.random(len(days)) < 0.1).astype(int)
        value = 50 + 10 * s + 8 * np.sin(2 * np.pi * days.dayofweek / 7) + 5 * promo + rng.normal(0, 1, len(days))
        parts.append(pd.DataFrame({"store": f"s{s}", "day": days, "promo": promo, "sales": value}))
    X, y = problem.frame(pd.concat(parts, ignore_index=True), target="sales",
                         columns={"time_column": "day", "series_column": "store", "horizon": HORIZON})
    return X, y.rename("target")


def _frame(problem: problems.ProblemType, n: int = 240, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """A small frame whose target this type accepts: a signal in x0, a categorical, a date (for
    a type that reads interactions: users, items, ratings and days; for forecasts: series)."""
    if problem.output == "forecasts":
        return _series(problem, n, seed)
    if not problem.uses_features:
        return _interactions(problem, n, seed)
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x0": rng.normal(size=n), "x1": rng.normal(size=n),
                      "city": rng.choice(["a", "b", "c"], size=n),
                      "day": pd.date_range("2026-01-01", periods=n, freq="D")})
    signal = X["x0"] + 0.3 * rng.normal(size=n)
    y = (signal > 0.8).astype(int) if problem.target_kind == "label" else 50 + 10 * signal
    return X, pd.Series(y, name="target")


@pytest.fixture(params=TYPES)
def problem(request: pytest.FixtureRequest) -> problems.ProblemType:
    return problems.get(request.param)


# -- declarations ---------------------------------------------------------------------------------
def _features(problem: problems.ProblemType, X: pd.DataFrame) -> pd.DataFrame | np.ndarray:
    """What the type's models train on: the encoded features, or the raw frame."""
    return build_preprocessor(X).fit_transform(X) if problem.uses_features else X


def test_declarations_name_the_one_vocabulary(problem: problems.ProblemType) -> None:
    assert problem.metrics and all(find(m) is not None and find(m).name == m for m in problem.metrics)
    assert all(find(m).scored for m in problem.metrics), "benchmark metrics are not scored"
    assert problem.default_metric in problem.metrics
    assert problem.target_kind in ("label", "value")
    assert problem.output in ("probabilities", "values", "rankings", "forecasts")
    assert problems.get(problem.name) is problem
    for alias in problem.aliases:
        assert problems.resolve(alias) == problem.name
        assert problems.resolve(alias.upper().replace(" ", "_")) == problem.name


def test_a_metric_of_no_type_is_refused(problem: problems.ProblemType) -> None:
    foreign = next(m for m in METRICS.values() if m.scored and m.name not in problem.metrics)
    with pytest.raises(ConfigError, match=f"does not apply to {problem.name}"):
        problem.metric(foreign.name)


def test_metric_directions_agree_with_target_is_met(problem: problems.ProblemType) -> None:
    for target in default_targets(problem.name):
        if target.relative_to is not None:
            assert target.is_met(target.value + 1) and not target.is_met(target.value - 1)
            continue
        metric = get_metric(target.metric)
        step = max(abs(target.value) * 0.1, 1e-3)
        better = target.value + step if metric.mode == "max" else target.value - step
        worse = target.value - step if metric.mode == "max" else target.value + step
        assert target.is_met(better), f"{target.render()}: a better {metric.name} fails it"
        assert not target.is_met(worse), f"{target.render()}: a worse {metric.name} meets it"


# -- target ---------------------------------------------------------------------------------------
def test_target_checks_refuse_missing_values_naming_the_column(problem: problems.ProblemType) -> None:
    _, y = _frame(problem)
    problem.check_target(y)
    with pytest.raises(DataError, match="target column 'target' has 1 missing"):
        problem.check_target(y.astype(float).mask(y.index == 3))


def test_encoding_gives_what_models_train_on(problem: problems.ProblemType) -> None:
    _, y = _frame(problem)
    classes, encoded = problem.encode_target(y)
    assert len(encoded) == len(y)
    if classes is not None:
        assert np.array_equal(classes[encoded], y.to_numpy())
        assert set(np.unique(encoded)) == set(range(len(classes)))
    # interactions are named by the user, never inferred from a target column
    assert problem.fits(y) is problem.uses_features


# -- splits ---------------------------------------------------------------------------------------
def test_folds_never_leak(problem: problems.ProblemType) -> None:
    X, y = _frame(problem)
    _, encoded = problem.encode_target(y)
    folds, description = problem.folds(X, encoded, cv=4, seed=0)
    assert len(folds) == 4 and description
    validated = np.concatenate([va for _, va in folds])
    assert len(set(validated)) == len(validated), "no row is validated twice"
    if not problem.time_aware(X):
        assert sorted(validated) == list(range(len(X))), "each row is validated exactly once"
    else:  # as TimeSeriesSplit: the earliest block trains every fold and is never validated
        assert len(validated) >= len(X) // 2
    for train, valid in folds:
        assert len(valid) and not set(train) & set(valid)
        if problem.time_ordered:
            assert train.max() < valid.min(), "time-ordered folds train only on the past"
        if problem.output == "forecasts":  # per series: only the series' past, never a random row
            latest = X.iloc[train].groupby("unique_id")["ds"].max()
            earliest = X.iloc[valid].groupby("unique_id")["ds"].min()
            assert (latest.reindex(earliest.index) < earliest).all()
            assert X.iloc[valid].groupby("unique_id").size().eq(HORIZON).all()
        elif problem.time_aware(X) and not problem.uses_features:  # per user: only the user's past
            latest = X.iloc[train].groupby("user")["timestamp"].max()
            earliest = X.iloc[valid].groupby("user")["timestamp"].min()
            assert (latest.reindex(earliest.index) < earliest).all()


def test_a_time_split_holds_out_the_latest_rows(problem: problems.ProblemType) -> None:
    X, y = _frame(problem)
    if problem.output == "forecasts":  # per series: its last horizon, whatever the row order
        X_tr, X_te, y_tr, y_te = problem.holdout_split(X.sample(frac=1, random_state=1),
                                                       y.sample(frac=1, random_state=1))
        latest = X_tr.groupby("unique_id")["ds"].max()
        assert (latest.reindex(X_te["unique_id"]).to_numpy() < X_te["ds"].to_numpy()).all()
        assert X_te.groupby("unique_id").size().eq(HORIZON).all() and len(X_tr) + len(X_te) == len(X)
        assert X_tr.index.equals(y_tr.index) and X_te.index.equals(y_te.index)
        return
    if not problem.uses_features:  # per user: each user's latest interactions
        X_tr, X_te, y_tr, y_te = problem.holdout_split(X.sample(frac=1, random_state=1),
                                                       y.sample(frac=1, random_state=1), test_size=0.25)
        latest = X_tr.groupby("user")["timestamp"].max()
        assert (latest.reindex(X_te["user"]).to_numpy() < X_te["timestamp"].to_numpy()).all()
        assert X_te.groupby("user").size().eq(1).all() and len(X_te) == 40  # floor(6 * 0.25) = 1
        assert X_tr.index.equals(y_tr.index) and X_te.index.equals(y_te.index)
        return
    X_tr, X_te, y_tr, y_te = problem.holdout_split(X.sample(frac=1, random_state=1), y.sample(frac=1, random_state=1),
                                                   test_size=0.25, time_column="day")
    assert X_tr["day"].max() < X_te["day"].min()
    assert len(X_te) == 60 and X_tr.index.equals(y_tr.index) and X_te.index.equals(y_te.index)


def test_random_split_and_sample_keep_every_row_once(problem: problems.ProblemType) -> None:
    X, y = _frame(problem)
    if problem.output == "forecasts":  # never random: every seed holds out the same last window
        splits = [problem.holdout_split(X, y, test_size=0.2, seed=s)[1].index for s in (0, 1)]
        assert splits[0].equals(splits[1]) and len(splits[0]) == 4 * HORIZON
        sample = problem.sample(X.assign(target=y), target="target", n=50, seed=0)
        assert len(sample) >= 50 and (sample.groupby("unique_id").size() == 60).all()  # whole series
        return
    X_tr, X_te, _, _ = problem.holdout_split(X.drop(columns=["timestamp", "day"], errors="ignore"), y,
                                             test_size=0.2, seed=0)
    assert len(X_te) == (48 if problem.uses_features else 40) and not set(X_tr.index) & set(X_te.index)
    assert len(X_tr) + len(X_te) == len(X)
    df = X.assign(target=y)
    sample = problem.sample(df, target="target", n=50, seed=0)
    assert sample.index.is_monotonic_increasing
    if problem.uses_features:
        assert len(sample) == 50
    else:  # whole users, so that each keeps its history
        assert len(sample) >= 50 and (sample.groupby("user").size() == 6).all()
    if problem.target_kind == "label":
        assert set(sample["target"]) == set(y), "every class keeps a row"


# -- models ---------------------------------------------------------------------------------------
def test_baselines_fit_and_predict_on_a_small_frame(problem: problems.ProblemType) -> None:
    X, y = _frame(problem)
    _, encoded = problem.encode_target(y)
    Xt = _features(problem, X)
    baselines = baseline_estimators(problem, random_state=0)
    assert baselines
    for name, est in baselines.items():
        if problem.output == "forecasts":  # the steps after the history
            X_tr, X_te, y_tr, _ = problem.holdout_split(X, y)
            outputs = problem.predict(est.fit(X_tr, y_tr), X_te)
            assert outputs.shape[0] == len(X_te) and np.isfinite(outputs).all(), name
            continue
        outputs = problem.predict(est.fit(Xt, encoded), Xt)
        if problem.uses_features:
            assert outputs.shape[0] == len(X) and np.isfinite(outputs).all(), name
        else:  # a list per user
            assert outputs.shape[0] == X["user"].nunique(), name


def test_default_candidates_resolve_fit_and_predict(problem: problems.ProblemType) -> None:
    X, y = _frame(problem)
    _, encoded = problem.encode_target(y)
    Xt = _features(problem, X)
    experiments = candidates_for(problem)
    assert [e.name for e in experiments] == [c["name"] for c in problem.default_candidates]
    for exp in experiments:
        assert isinstance(exp, ModelExperiment) and exp.has_search_space
        cls = __import__("specweave_ray.candidates", fromlist=["x"]).resolve_estimator(
            exp.estimator, problem_type=problem)
        # one point of each space (its low end), small, as a sweep would sample
        point = {k: (v.args[0][0] if v.kind == "choice" else v.args[0]) if hasattr(v, "kind") else v
                 for k, v in exp.params.items()}
        point.update({k: 5 for k in ("n_estimators", "epochs") if k in point})
        est = cls(**point)
        assert set(est.get_params()) >= set(exp.params), exp.name
        configure(est, cpus=1, gpu_ids=[])
        if problem.output == "forecasts":
            X_tr, X_te, y_tr, _ = problem.holdout_split(X, y)
            assert np.isfinite(problem.predict(est.fit(X_tr, y_tr), X_te)).all(), exp.name
            continue
        rows = len(X) if problem.uses_features else X["user"].nunique()
        assert problem.predict(est.fit(Xt, encoded), Xt).shape[0] == rows, exp.name


def test_scoring_returns_every_metric_the_default_criteria_name(problem: problems.ProblemType) -> None:
    X, y = _frame(problem)
    _, encoded = problem.encode_target(y)
    Xt = _features(problem, X)
    model = next(iter(baseline_estimators(problem).values()))
    if problem.output in ("rankings", "forecasts"):
        X_tr, X_te, y_tr, y_te = problem.holdout_split(X, y, test_size=0.3)
        model.fit(X_tr, y_tr)
        got = {m: problem.score_model(problem.metric(m), model, X_te, y_te) for m in problem.metrics}
        if problem.output == "rankings":
            assert all(0.0 <= v <= 1.0 for v in got.values())
        assert all(np.isfinite(v) for v in got.values())
    else:
        model.fit(Xt, encoded)
        outputs = problem.predict(model, Xt)
        got = score(encoded, problem_type=problem,
                    **({"proba": outputs} if problem.output == "probabilities" else {"pred": outputs}))
    wanted = {t.metric_key for t in default_targets(problem.name)
              if t.relative_to is None and get_metric(t.metric).scored}
    assert wanted and wanted <= set(got)
    assert problem.default_metric in got


# -- reports --------------------------------------------------------------------------------------
def test_report_sections_are_json_and_the_ab_plan_takes_them(problem: problems.ProblemType) -> None:
    X, y = _frame(problem)
    json.dumps(to_jsonable(problem.target_profile(y)), allow_nan=False)
    perfect, _ = problem.leakage_score(y.to_numpy(dtype=float), y)
    noise, name = problem.leakage_score(np.random.default_rng(3).normal(size=len(y)), y)
    assert perfect >= 0.98 > noise and name
    from sklearn.dummy import DummyClassifier, DummyRegressor

    from specweave_ray.evaluate import score

    _, codes = problem.encode_target(y)
    if problem.output == "forecasts":  # the control's held-out forecast metrics, as T-006 records them
        from specweave_ray.metrics import forecast_scores

        X_tr, X_te, y_tr, y_te = problem.holdout_split(X, y)
        model = next(iter(baseline_estimators(problem).values())).fit(X_tr, y_tr)
        control = {**forecast_scores(y_te, problem.predict(model, X_te), X_te["unique_id"], model.scales_),
                   "n_test": len(y_te)}
    elif problem.output == "rankings":  # the control's held-out ranking metrics, as T-006 records them
        from specweave_ray.evaluate._ranking import ranking_metrics
        from specweave_ray.problems.recommendation import relevant_sets

        X_tr, X_te, y_tr, y_te = problem.holdout_split(X, y, test_size=0.3)
        users, truth = relevant_sets(X_te, y_te)
        control, _, _ = ranking_metrics(next(iter(baseline_estimators(problem).values())).fit(X_tr, y_tr),
                                        users, truth, k=10, train=X_tr, test_items=list(X_te["item"]), n_boot=20)
        control["test_users"] = len(users)
    else:
        dummy = DummyClassifier() if problem.output == "probabilities" else DummyRegressor()
        outputs = problem.predict(dummy.fit(X, codes), X)
        control = {**score(codes, problem_type=problem,
                           **({"proba": outputs} if outputs.ndim == 2 else {"pred": outputs})),
                   "n_test": len(codes)}
    baseline, metric, lower = problem.ab_inputs(control, target="target")
    assert isinstance(lower, bool) and metric
    plan = render_ab_plan(increment_id="0001-x", problem_type=problem.name, control="c", candidate="m",
                          primary_metric=metric, mde_relative=-0.1 if lower else 0.1, **baseline)
    assert "sample size" in plan.lower() and ("decreases" if lower else "increases") in plan


def test_the_eda_report_names_the_type(problem: problems.ProblemType, tmp_path) -> None:
    from specweave_ray.data import profile, write_eda_report

    X, y = _frame(problem)
    df = X.assign(target=y)
    prof = profile(df, target="target", problem_type=problem)
    assert prof["problem_type"] == problem.name
    report = write_eda_report(df, prof, tmp_path, target="target", problem_type=problem).read_text()
    assert f"- problem type: {problem.name}; target: `target`" in report
    assert (tmp_path / "target-balance.png").stat().st_size > 0


# -- the registry ---------------------------------------------------------------------------------
def test_unknown_types_list_the_known_ones_and_their_aliases() -> None:
    with pytest.raises(ConfigError, match=r"unknown problem type 'clustering'; known: classification "
                                          r"\(also: binary.*\); regression"):
        problems.get("clustering")


@pytest.mark.parametrize(("name", "canonical"), [("timeseries", "timeseries"),
                                                 ("Time-series forecasting", "timeseries"),
                                                 ("Forecasting", "timeseries")])
def test_a_planned_type_that_lands_replaces_its_placeholder(name: str, canonical: str) -> None:
    assert canonical not in problems.planned()
    assert problems.get(name).name == canonical


def test_a_type_cannot_take_another_types_name() -> None:
    class Binary(problems.get("classification").__class__):
        name = "binary-v2"
        aliases = ("binary",)

    with pytest.raises(ConfigError, match="'binary' already names 'classification'"):
        problems.register(Binary())
    assert "binary-v2" not in problems.names()


def test_infer_picks_classification_for_labels_and_regression_for_values() -> None:
    assert problems.infer(["a", "b", "a"]).name == "classification"
    assert problems.infer(np.linspace(0, 1, 50)).name == "regression"
