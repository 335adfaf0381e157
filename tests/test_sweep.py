"""run_experiments on a real local Ray: search, ASHA, failures, cache/resume, MLflow, comparison."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import pytest
import ray
import sweep_helpers
from ray import cloudpickle
from sklearn.datasets import load_breast_cancer, make_regression

from specweave_ray import (
    Increment,
    ModelExperiment,
    lograndint,
    loguniform,
    randint,
    run_experiments,
)
from specweave_ray.exceptions import CandidateError, ConfigError, DataError, SweepError
from specweave_ray.spec import SweepConfig
from specweave_ray.workspace.records import list_records

pytestmark = pytest.mark.slow
cloudpickle.register_pickle_by_value(sweep_helpers)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture()
def inc(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("SPECWEAVE_ROOT", raising=False)
    return Increment.create("Sweep Test", problem_type="classification", root=tmp_path / "incs")


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X.iloc[:300], y.iloc[:300].map({0: "benign", 1: "malignant"})  # string labels on purpose


def trial_records(inc):
    return [r for r in list_records(inc) if r.kind in ("trial", "baseline")]


def test_search_with_asha_records_every_trial_and_compares(inc, cancer):
    X, y = cancer
    exps = [
        ModelExperiment("xgboost", "xgboost", {"n_estimators": lograndint(10, 60), "max_depth": randint(2, 6),
                                                "learning_rate": loguniform(0.02, 0.3)}, num_samples=6),
        ModelExperiment("logistic", "logistic", {"max_iter": 500}),
    ]
    res = run_experiments(exps, X, y, increment=inc, cv=3, metric="roc_auc", sweep=SweepConfig(stages=4))

    recs = trial_records(inc)
    assert len(recs) == 6 + 1 + 3  # 6 searched, 1 fixed, 3 baselines
    assert {r.meta["candidate"] for r in recs} == {"xgboost", "logistic", "random-uniform", "random-prior", "majority"}
    for r in recs:
        assert r.status == "finished"
        assert r.meta["node"] == ray.get_runtime_context().get_node_id()
        assert 0.0 <= r.metrics["cv_mean"] <= 1.0 and {"cv_std", "cv_fold_1", "fit_time_s"} <= set(r.metrics)
    xgb = [r for r in recs if r.meta["candidate"] == "xgboost"]
    assert len({(r.params["max_depth"], r.params["learning_rate"]) for r in xgb}) == 6  # Optuna proposed 6
    # lograndint reaches the estimator as an int in [low, high) (Optuna's IntDistribution, log=True)
    assert all(type(r.params["n_estimators"]) is int and 10 <= r.params["n_estimators"] < 60 for r in xgb)
    # ASHA: every staged trial reported per stage; at least one was stopped before the last stage
    stages = [len((r.path / "logs" / "metrics.jsonl").read_text().splitlines()) for r in xgb]
    assert max(stages) == 4 and any(r.meta["stopped_early"] for r in xgb), stages

    assert res.best.candidate in ("xgboost", "logistic") and res.best.score > 0.9
    assert res.classes == ("benign", "malignant")
    table = res.table
    assert list(table["cv_mean"]) == sorted(table["cv_mean"], reverse=True)
    assert table["best"].sum() == 1
    best_base = table[table.kind == "baseline"]["cv_mean"].max()
    row = table[table.best].iloc[0]
    assert row.lift_over_best_baseline_pct == pytest.approx(100 * (row.cv_mean - best_base) / best_base)
    comp = json.loads((inc.experiments_dir / "comparison.json").read_text())
    assert comp["best_candidate"] == res.best.candidate and comp["failed"] == 0
    assert "**best**" in (inc.experiments_dir / "comparison.md").read_text()
    # the best model of each candidate came back to the driver and is saved natively
    best_xgb = res.best_per_candidate["xgboost"]
    meta = json.loads((inc.experiments_dir / best_xgb.record_id / "meta.json").read_text())
    assert meta["artifacts"]["model"]["format"] == "xgboost-ubj"
    assert (inc.experiments_dir / best_xgb.record_id / "model.ubj").exists()


def test_mlflow_parent_and_child_runs(inc, cancer):
    X, y = cancer
    run_experiments([ModelExperiment("logistic", "logistic", {"max_iter": 300, "C": loguniform(0.01, 10)},
                                     num_samples=3)], X, y, increment=inc, cv=3, refit=False)
    mlflow.set_tracking_uri(f"sqlite:///{inc.root / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=[inc.id])
    sweep = runs[runs["tags.specweave.kind"] == "sweep"]
    assert len(sweep) == 1
    children = runs[runs["tags.mlflow.parentRunId"] == sweep["run_id"].iloc[0]]
    assert len(children) == 3 + 3
    for rec in trial_records(inc):
        row = runs[runs.run_id == rec.meta["mlflow_run_id"]].iloc[0]
        assert row["metrics.cv_mean"] == pytest.approx(rec.metrics["cv_mean"])


def test_failed_trials_are_recorded_and_the_sweep_goes_on(inc, cancer):
    X, y = cancer
    exps = [
        ModelExperiment("raises", sweep_helpers.RaisingClassifier, {}),
        ModelExperiment("dies", sweep_helpers.ExitingClassifier, {}),
        ModelExperiment("logistic", "logistic", {"max_iter": 300}),
    ]
    res = run_experiments(exps, X, y, increment=inc, cv=3, baselines=False, refit=False)
    by = {r.meta["candidate"]: r for r in trial_records(inc)}
    assert by["logistic"].status == "finished"
    raised = by["raises"].meta
    assert raised["status"] == "failed" and raised["error"]["type"] == "ValueError"
    assert "boom: this configuration cannot be fitted" in raised["error"]["message"]
    assert "RaisingClassifier" in raised["error"]["traceback"] or "fit" in raised["error"]["traceback"]
    died = by["dies"].meta
    assert died["status"] == "failed" and died["error"]["traceback"]
    assert len(res.failed) == 2 and res.best.candidate == "logistic"
    comp = json.loads((inc.experiments_dir / "comparison.json").read_text())
    assert comp["failed"] == 2 and {f["candidate"] for f in comp["failures"]} == {"raises", "dies"}


def test_cache_reuses_finished_trials_and_no_cache_reruns(inc, cancer):
    X, y = cancer
    exps = [ModelExperiment("logistic", "logistic", {"max_iter": 300}),
            ModelExperiment("xgb", "xgboost", {"n_estimators": 20, "max_depth": randint(2, 5)}, num_samples=3)]
    first = run_experiments(exps, X, y, increment=inc, cv=3, baselines=False, refit=False)
    n = len(trial_records(inc))
    again = run_experiments(exps, X, y, increment=inc, cv=3, baselines=False, refit=False)
    assert len(trial_records(inc)) == n  # nothing rerun, nothing duplicated
    assert all(t.cached for t in again.trials) and len(again.trials) == len(first.trials)
    assert again.best.score == first.best.score
    # other data → other identity → the trials run again
    run_experiments(exps[:1], X.iloc[:250], y.iloc[:250], increment=inc, cv=3, baselines=False, refit=False)
    assert len(trial_records(inc)) == n + 1
    run_experiments(exps[:1], X, y, increment=inc, cv=3, baselines=False, refit=False, use_cache=False)
    assert len(trial_records(inc)) == n + 2


def test_regression_candidates_and_bad_inputs(tmp_path):
    inc = Increment.create("Reg", problem_type="regression", root=tmp_path / "r")
    X, y = make_regression(n_samples=200, n_features=5, noise=5.0, random_state=0)
    res = run_experiments([ModelExperiment("ridge", "ridge", {"alpha": loguniform(0.01, 10)}, num_samples=2)],
                          X, y, increment=inc, cv=3, problem_type="regression", refit=False)
    assert res.metric == "rmse" and res.mode == "min"
    assert res.best.candidate == "ridge"
    with pytest.raises(ConfigError, match="does not apply to regression"):
        run_experiments([ModelExperiment("ridge", "ridge")], X, y, increment=inc, metric="roc_auc",
                        problem_type="regression")
    with pytest.raises(CandidateError, match="unique"):
        run_experiments([ModelExperiment("a", "ridge"), ModelExperiment("a", "linear")], X, y, increment=inc,
                        problem_type="regression")
    with pytest.raises(DataError, match="single class"):
        run_experiments([ModelExperiment("l", "logistic")], X, [1] * len(y), increment=inc,
                        problem_type="classification")


def test_candidate_asking_more_gpus_than_the_cluster_fails_fast(inc, cancer):
    X, y = cancer
    with pytest.raises(SweepError, match="asks for 1 GPU per trial but the Ray cluster has 0"):
        run_experiments([ModelExperiment("mlp", "torch-mlp", {}, resources={"cpu": 1, "gpu": 1})], X, y,
                        increment=inc, cv=3, baselines=False)


_DRIVER = textwrap.dedent("""
    import sys
    from sklearn.datasets import load_breast_cancer
    from specweave_ray import ModelExperiment, run_experiments
    from specweave_ray.spec import SweepConfig
    sys.path.insert(0, {tests!r})
    import sweep_helpers
    from ray import cloudpickle
    cloudpickle.register_pickle_by_value(sweep_helpers)
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    exps = [ModelExperiment(f"sleepy-{{i}}", sweep_helpers.SleepyClassifier, {{"sleep_s": 0.4}}) for i in range(10)]
    run_experiments(exps, X.iloc[:200], y.iloc[:200], increment={inc!r}, cv=2, baselines=False,
                    refit=False, sweep=SweepConfig(num_cpus=2))
""")


def test_killed_driver_resumes_without_duplicates(inc, cancer, tmp_path):
    """Kill the driver (SIGKILL, its whole process group) mid-sweep, then run the same sweep again."""
    script = tmp_path / "driver.py"
    script.write_text(_DRIVER.format(tests=str(Path(__file__).parent), inc=str(inc.path)))
    env = {**os.environ, "SPECWEAVE_MLFLOW": "0", "RAY_ADDRESS": ""}
    env.pop("RAY_ADDRESS")
    proc = subprocess.Popen([sys.executable, str(script)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len([r for r in trial_records(inc) if r.status == "finished"]) < 3:
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done_before = {r.meta["candidate"] for r in trial_records(inc) if r.status == "finished"}
    assert 3 <= len(done_before) < 10, "the driver must be killed mid-sweep"

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    exps = [ModelExperiment(f"sleepy-{i}", sweep_helpers.SleepyClassifier, {"sleep_s": 0.4}) for i in range(10)]
    res = run_experiments(exps, X.iloc[:200], y.iloc[:200], increment=inc, cv=2, baselines=False, refit=False)
    assert {t.candidate for t in res.trials if t.cached} >= done_before
    finished = [r for r in trial_records(inc) if r.status == "finished"]
    assert sorted(r.meta["candidate"] for r in finished) == sorted(f"sleepy-{i}" for i in range(10))


def test_time_budget_stops_the_sweep_and_records_every_launched_trial(inc, cancer):
    X, y = cancer
    # each slow trial sleeps 2 folds x 5 s: none can finish within a 2 s budget
    exps = [ModelExperiment("logistic", "logistic", {"max_iter": 300}),
            *(ModelExperiment(f"slow{i}", sweep_helpers.SleepyClassifier, {"sleep_s": 5.0}) for i in range(3))]
    res = run_experiments(exps, X, y, increment=inc, cv=2, baselines=False, refit=False,
                          sweep={"ensemble": False}, time_budget_s=2)
    recs = trial_records(inc)
    assert recs and {r.status for r in recs} <= {"finished", "interrupted"}  # none left `running`
    slow = [r for r in recs if r.meta["candidate"].startswith("slow")]
    assert slow and all(r.status == "interrupted" for r in slow)  # at least one was launched
    for r in slow:
        assert "time budget" in r.meta["error"]["message"] and r.meta["error"]["cause"]["by"] == "time_budget"
    assert len(recs) < len(exps)  # the third slow candidate was never launched (2 CPUs)
    assert {t.record_id for t in res.trials} == {r.id for r in recs}
    # the budget holds until one candidate trial has ended: the sweep has a result to compare
    assert res.best is not None and res.best.candidate == "logistic"
    comp = json.loads((inc.experiments_dir / "comparison.json").read_text())
    assert comp["trials"] == len(recs) and comp["interrupted"] == sum(r.status == "interrupted" for r in recs)
    assert "interrupted (not finished)" in (inc.experiments_dir / "comparison.md").read_text()
