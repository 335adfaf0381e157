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
from specweave_ray.metrics import METRICS, get_metric
from specweave_ray.search import candidates_for
from specweave_ray.spec import ModelExperiment, default_targets

TYPES = problems.names()


def _frame(problem: problems.ProblemType, n: int = 240, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """A small frame whose target this type accepts: a signal in x0, a categorical, a date."""
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
def test_declarations_name_the_one_vocabulary(problem: problems.ProblemType) -> None:
    assert problem.metrics and set(problem.metrics) <= set(METRICS)
    assert all(METRICS[m].scored for m in problem.metrics), "benchmark metrics are not scored"
    assert problem.default_metric in problem.metrics
    assert problem.target_kind in ("label", "value") and problem.output in ("probabilities", "values")
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
    assert problem.fits(y)


# -- splits ---------------------------------------------------------------------------------------
def test_folds_never_leak(problem: problems.ProblemType) -> None:
    X, y = _frame(problem)
    _, encoded = problem.encode_target(y)
    folds, description = problem.folds(X, encoded, cv=4, seed=0)
    assert len(folds) == 4 and description
    validated = np.concatenate([va for _, va in folds])
    assert sorted(validated) == list(range(len(X))), "each row is validated exactly once"
    for train, valid in folds:
        assert not set(train) & set(valid)
        if problem.time_ordered:
            assert train.max() < valid.min(), "time-ordered folds train only on the past"


def test_a_time_split_holds_out_the_latest_rows(problem: problems.ProblemType) -> None:
    X, y = _frame(problem)
    X_tr, X_te, y_tr, y_te = problem.holdout_split(X.sample(frac=1, random_state=1), y.sample(frac=1, random_state=1),
                                                   test_size=0.25, time_column="day")
    assert X_tr["day"].max() < X_te["day"].min()
    assert len(X_te) == 60 and X_tr.index.equals(y_tr.index) and X_te.index.equals(y_te.index)


def test_random_split_and_sample_keep_every_row_once(problem: problems.ProblemType) -> None:
    X, y = _frame(problem)
    X_tr, X_te, _, _ = problem.holdout_split(X, y, test_size=0.2, seed=0)
    assert len(X_te) == 48 and not set(X_tr.index) & set(X_te.index)
    df = X.assign(target=y)
    sample = problem.sample(df, target="target", n=50, seed=0)
    assert len(sample) == 50 and sample.index.is_monotonic_increasing
    if problem.target_kind == "label":
        assert set(sample["target"]) == set(y), "every class keeps a row"


# -- models ---------------------------------------------------------------------------------------
def test_baselines_fit_and_predict_on_a_small_frame(problem: problems.ProblemType) -> None:
    X, y = _frame(problem)
    _, encoded = problem.encode_target(y)
    Xt = build_preprocessor(X).fit_transform(X)
    baselines = baseline_estimators(problem, random_state=0)
    assert baselines
    for name, est in baselines.items():
        outputs = problem.predict(est.fit(Xt, encoded), Xt)
        assert outputs.shape[0] == len(X) and np.isfinite(outputs).all(), name


def test_default_candidates_resolve_fit_and_predict(problem: problems.ProblemType) -> None:
    X, y = _frame(problem)
    _, encoded = problem.encode_target(y)
    Xt = build_preprocessor(X).fit_transform(X)
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
        assert problem.predict(est.fit(Xt, encoded), Xt).shape[0] == len(X), exp.name


def test_scoring_returns_every_metric_the_default_criteria_name(problem: problems.ProblemType) -> None:
    X, y = _frame(problem)
    _, encoded = problem.encode_target(y)
    Xt = build_preprocessor(X).fit_transform(X)
    model = next(iter(baseline_estimators(problem).values())).fit(Xt, encoded)
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
    dummy = DummyClassifier() if problem.output == "probabilities" else DummyRegressor()
    outputs = problem.predict(dummy.fit(X, codes), X)
    control = {**score(codes, problem_type=problem, **({"proba": outputs} if outputs.ndim == 2 else {"pred": outputs})),
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
                                                 ("recommender", "recommendation")])
def test_planned_types_are_known_and_not_available_yet(name: str, canonical: str) -> None:
    assert canonical in problems.planned()
    with pytest.raises(ConfigError, match=f"problem type '{canonical}' is not available yet"):
        problems.get(name)


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
