"""Ensembles: greedy selection and the stack on out-of-fold outputs, the estimator, its native
package format, and one sweep that ends with ensemble records in the comparison."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import KFold

from specweave_ray.candidates._ensemble import EnsembleModel
from specweave_ray.candidates.serialization import load_native, save_native
from specweave_ray.exceptions import CandidateError
from specweave_ray.metrics import get_metric
from specweave_ray.search._ensemble import build_ensembles, greedy_selection, score


def _folds(n: int, k: int = 4, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    return list(KFold(k, shuffle=True, random_state=seed).split(np.zeros(n)))


def test_a_perfect_member_gets_all_weight(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=300)
    outs = [y + rng.normal(scale=1.0, size=300), y.copy(), y + rng.normal(scale=0.5, size=300)]
    w = greedy_selection(outs, y, get_metric("rmse"))
    assert w.tolist() == [0.0, 1.0, 0.0]


def test_complementary_members_share_the_weight_and_beat_each(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=400)
    e = rng.normal(scale=1.0, size=400)
    outs = [y + e, y - e + rng.normal(scale=0.1, size=400), y + rng.normal(scale=3.0, size=400)]
    rmse = get_metric("rmse")
    w = greedy_selection(outs, y, rmse)
    assert w[0] > 0.3 and w[1] > 0.3 and w.sum() == pytest.approx(1.0)
    blend = sum(wi * o for wi, o in zip(w, outs, strict=True))
    assert score(rmse, y, blend) < min(score(rmse, y, o) for o in outs[:2]) / 3


def test_classification_selection_scores_probabilities(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=500)
    good = np.clip(0.5 + (y - 0.5) * 0.6 + rng.normal(scale=0.2, size=500), 0.01, 0.99)
    noise = rng.uniform(size=500)
    outs = [np.column_stack([1 - p, p]) for p in (noise, good)]
    w = greedy_selection(outs, y, get_metric("roc_auc"))
    assert w[1] > w[0]
    ens = build_ensembles({"noise": outs[0], "good": outs[1]}, y, _folds(500), get_metric("roc_auc"),
                          output="probabilities", seed=seed)
    assert {e.method for e in ens} == {"greedy", "stack"}
    for e in ens:
        assert e.cv_mean > 0.9 and e.cv_se == pytest.approx(e.cv_std / 2)  # 4 folds


@pytest.mark.parametrize("method", ["greedy", "stack"])
def test_nested_scores_never_read_the_rows_they_score(method: str, seed: int) -> None:
    """Changing the labels of one fold's rows changes no prediction on those rows: the weights
    and the meta-learner that predict them were chosen on the other folds only."""
    rng = np.random.default_rng(seed)
    n = 240
    y = rng.normal(size=n)
    oof = {f"m{i}": y + rng.normal(scale=0.5 + i, size=n) for i in range(4)}
    folds = _folds(n)
    rmse = get_metric("rmse")
    before = next(e for e in build_ensembles(oof, y, folds, rmse, output="values") if e.method == method)
    y2 = y.copy()
    va = folds[0][1]
    y2[va] = rng.normal(scale=10.0, size=len(va))
    after = next(e for e in build_ensembles(oof, y2, folds, rmse, output="values") if e.method == method)
    np.testing.assert_allclose(after.oof[va], before.oof[va])
    assert not np.allclose(after.oof[folds[1][1]], before.oof[folds[1][1]]) or method == "greedy"


def _members(seed: int) -> tuple[pd.DataFrame, np.ndarray, list]:
    import lightgbm
    import xgboost

    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(200, 4)), columns=list("abcd"))
    y = (X["a"] + 0.5 * X["b"] + rng.normal(scale=0.5, size=200) > 0).astype(int).to_numpy()
    members = [LogisticRegression().fit(X, y),
               xgboost.XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1).fit(X, y),
               lightgbm.LGBMClassifier(n_estimators=20, verbose=-1, n_jobs=1).fit(X, y)]
    return X, y, members


def test_estimator_predicts_the_weighted_sum(seed: int) -> None:
    X, y, members = _members(seed)
    w = [0.5, 0.3, 0.2]
    model = EnsembleModel.from_fitted(members, weights=w, names=["lr", "xgb", "lgb"])
    expected = sum(wi * m.predict_proba(X) for wi, m in zip(w, members, strict=True))
    np.testing.assert_allclose(model.predict_proba(X), expected, rtol=1e-6)
    assert (model.predict(X) == np.argmax(expected, axis=1)).all()
    refit = EnsembleModel(members=members, weights=w).fit(X, y)  # the scikit-learn contract: fit → self
    np.testing.assert_allclose(refit.predict_proba(X), expected, rtol=1e-5)
    Xr = X.to_numpy()
    reg = EnsembleModel.from_fitted([LinearRegression().fit(Xr, Xr[:, 0]), LinearRegression().fit(Xr, Xr[:, 1])],
                                    weights=[3, 1], output="values")
    np.testing.assert_allclose(reg.predict(Xr), 0.75 * Xr[:, 0] + 0.25 * Xr[:, 1], atol=1e-9)
    with pytest.raises(ValueError, match="non-negative"):
        EnsembleModel.from_fitted(members, weights=[1, -1, 0])


def test_native_save_load_keeps_each_member_format_and_checks_hashes(tmp_path, seed: int) -> None:
    X, y, members = _members(seed)
    model = EnsembleModel.from_fitted(members, weights=[0.2, 0.4, 0.4], names=["lr", "xgb", "lgb"])
    info = save_native(model, tmp_path, name="model")
    assert info["format"] == "ensemble"
    assert {"model.m0.pkl", "model.m1.ubj", "model.m2.txt", "model.ensemble.json"} <= set(info["files"])
    index = json.loads((tmp_path / "model.ensemble.json").read_text())
    assert [m["format"] for m in index["members"]] == ["pickle", "xgboost-ubj", "lightgbm-txt"]
    back = load_native(tmp_path, info)
    np.testing.assert_allclose(back.predict_proba(X), model.predict_proba(X), rtol=1e-6)
    # a package renames the files (model.* → model-v1.*): the index still finds its members
    renamed = tmp_path / "pkg"
    renamed.mkdir()
    files = {}
    for name, digest in info["files"].items():
        new = "model-v1" + name[name.index("."):]
        (renamed / new).write_bytes((tmp_path / name).read_bytes())
        files[new] = digest
    again = load_native(renamed, {**info, "files": files})
    np.testing.assert_allclose(again.predict_proba(X), model.predict_proba(X), rtol=1e-6)
    (renamed / "model-v1.m0.pkl").write_bytes(b"tampered")
    with pytest.raises(CandidateError, match="hash mismatch"):
        load_native(renamed, {**info, "files": files})


@pytest.mark.slow
def test_sweep_records_ensembles_and_the_package_serves_one(tmp_path, seed: int) -> None:
    """A small regression sweep (three candidates, 3 folds): every candidate's best trial keeps
    oof.npy, two ensemble records enter the comparison with the reason they were (not) chosen;
    then the greedy ensemble goes through the package, Predictor and the tree-SHAP explainer."""
    from sklearn.datasets import make_regression

    from specweave_ray import ModelExperiment, problems, run_experiments
    from specweave_ray.deploy.explain import explain_rows
    from specweave_ray.deploy.package import build_package
    from specweave_ray.deploy.predictor import Predictor
    from specweave_ray.evaluate.holdout import evaluate_holdout
    from specweave_ray.search._inputs import trial_inputs
    from specweave_ray.workspace.increment import Increment
    from specweave_ray.workspace.records import read_record

    X, y = make_regression(n_samples=300, n_features=6, noise=10.0, random_state=seed)
    X = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    inc = Increment.create("Ensemble Sweep", problem_type="regression", root=tmp_path / "incs")
    import ray

    # address="local": a Ray someone else started with `ray start` on this machine is not ours
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPECWEAVE_MLFLOW", "0")
        try:
            res = run_experiments(
                [ModelExperiment("ridge", "sklearn.linear_model.Ridge", {"alpha": 1.0}),
                 ModelExperiment("xgboost", "xgboost", {"n_estimators": 20, "max_depth": 3, "n_jobs": 1}),
                 ModelExperiment("lightgbm", "lightgbm", {"n_estimators": 20, "verbose": -1, "n_jobs": 1})],
                X, y, increment=inc, cv=3, metric="rmse", seed=seed,
                # a throughput no model serves: the estimate is recorded, and no ensemble is chosen
                sweep={"num_cpus": 2, "stages": 1, "ensemble_throughput_rps": 1e7})
        finally:
            ray.shutdown()
    comp = json.loads((inc.experiments_dir / "comparison.json").read_text())
    ens = comp["ensemble"]
    assert ens["built"] and {e["candidate"] for e in ens["ensembles"]} == {"ensemble-greedy", "ensemble-stack"}
    assert all(e["reason"] for e in ens["ensembles"]) and "## Ensemble" in (inc.experiments_dir / "comparison.md").read_text()
    assert all(e["paired_se"] >= 0 and "paired SE" in e["reason"] for e in ens["ensembles"])
    assert ens["target_throughput_rps"] == 1e7 and ens["chosen"] is None and comp["best"] == ens["best_single"]["record"]
    assert all(0 < e["served_throughput_rps_estimate"] < 1e7 for e in ens["ensembles"])
    assert "throughput target: 1e+07 req/s" in (inc.experiments_dir / "comparison.md").read_text()
    kinds = {r["candidate"]: r["kind"] for r in comp["rows"]}
    assert kinds["ensemble-greedy"] == kinds["ensemble-stack"] == "ensemble"
    folds = trial_inputs(problems.get("regression"), X, y, cv=3, seed=seed).folds  # the sweep's own
    for name in ("ridge", "xgboost", "lightgbm"):  # the trials' own out-of-fold outputs, kept
        rec = read_record(inc.experiments_dir / res.best_per_candidate[name].record_id)
        oof = np.load(rec.path / "oof.npy")
        assert oof.shape == (len(y),) and np.isfinite(oof).all()
        assert rec.meta["artifacts"]["oof"]["shape"] == [len(y)]
        for i, (_, va) in enumerate(folds):  # each fold's rows score what the trial recorded
            fold_rmse = float(np.sqrt(np.mean((oof[va] - y[va]) ** 2)))
            assert fold_rmse == pytest.approx(rec.metrics[f"cv_fold_{i + 1}"], rel=1e-5)
    greedy = next(e for e in ens["ensembles"] if e["method"] == "greedy")
    rec = read_record(inc.experiments_dir / greedy["record"])
    assert rec.kind == "ensemble" and rec.params["members"] == greedy["members"]
    assert rec.params["member_trials"] == [res.best_per_candidate[n].trial_id for n in greedy["members"]]
    assert sum(rec.params["weights"]) == pytest.approx(1.0)
    model = load_native(rec.path, rec.meta["artifacts"]["model"])
    features = load_native(rec.path, rec.meta["artifacts"]["features"])
    if ens["chosen"]:
        assert comp["best"] == ens["chosen"]
    else:
        assert comp["best"] == comp["ensemble"]["best_single"]["record"]
    members = [load_native(rec.path, {"format": m["format"], "estimator": m["estimator"],
                                      "files": {f"model{s}": rec.meta["artifacts"]["model"]["files"][f"model{s}"]
                                                for s in m["suffixes"]}})
               for m in json.loads((rec.path / "model.ensemble.json").read_text())["members"]]
    Xt = features.transform(X.head(20))
    np.testing.assert_allclose(model.predict(Xt), sum(w * m.predict(Xt) for w, m in
                                                       zip(rec.params["weights"], members, strict=True)), rtol=1e-6)
    # T-006 → T-008 take it like any model: point the comparison at the greedy ensemble (whether
    # the rule chose it is test_decide's), evaluate, package (signed), load verified, predict, explain
    comp["best"], comp["best_candidate"] = greedy["record"], "ensemble-greedy"
    (inc.experiments_dir / "comparison.json").write_text(json.dumps(comp))
    X_test, y_test = X.tail(60), pd.Series(y[-60:])
    summary, _ = evaluate_holdout(inc, inc.spec(), X_train=X, y_train=pd.Series(y), X_test=X_test, y_test=y_test,
                                  cv=3, seed=seed, n_boot=50)
    assert summary["candidate"] == "ensemble-greedy"
    build_package(inc, register=False, reference_data=X_test)
    meta = json.loads((inc.models_dir / "model-v1.metadata.json").read_text())
    assert meta["model"]["format"] == "ensemble" and "model-v1.ensemble.json" in meta["files"]
    predictor = Predictor.load(inc)
    np.testing.assert_allclose(predictor.predict(X_test), model.predict(features.transform(X_test)), rtol=1e-6)
    if all(n != "ridge" for n in greedy["members"]):  # tree members only: exact weighted tree SHAP
        assert predictor.explainer_kind == "ensemble-tree-shap"
    rows = explain_rows(predictor, X_test.head(3))
    for row, pred in zip(rows, predictor.predict(X_test.head(3)), strict=True):
        assert row["output_value"] == pytest.approx(float(pred), rel=1e-3, abs=1e-3)


def test_decide_needs_more_than_the_standard_error_and_the_latency_target() -> None:
    from specweave_ray.search._ensemble import EnsembleScore, decide
    from specweave_ray.search.coordinator import TrialResult

    auc = get_metric("roc_auc")
    single = TrialResult("xgb", "candidate", "t1", "exp-001", "finished", {}, {"cv_mean": 0.90})
    ens = EnsembleScore("greedy", ("a", "b"), (0.5, 0.5), (0.93, 0.95, 0.94, 0.94))  # SE 0.0035
    worse = EnsembleScore("stack", ("a", "b"), (), (0.90, 0.91, 0.90, 0.91))
    ok, why = decide(ens, best_single=single, metric=auc, latency_p99_ms=5.0, target_p99_ms=100.0, other=worse)
    assert ok and "more than its standard error" in why
    ok, why = decide(ens, best_single=single, metric=auc, latency_p99_ms=150.0, target_p99_ms=100.0, other=worse)
    assert not ok and "latency_p99 < 100 ms" in why
    noisy = EnsembleScore("greedy", ("a", "b"), (0.5, 0.5), (0.80, 1.0, 0.85, 0.99))  # mean 0.91, SE ≈ 0.04
    ok, why = decide(noisy, best_single=single, metric=auc, latency_p99_ms=5.0, target_p99_ms=None, other=worse)
    assert not ok and "not more than its standard error" in why
    ok, why = decide(worse, best_single=single, metric=auc, latency_p99_ms=5.0, target_p99_ms=None, other=ens)
    assert not ok and "greedy ensemble scored better" in why


def test_the_latency_target_counts_the_served_clients() -> None:
    """A p99 target measured at T-008's 16 concurrent clients: each request waits behind the
    others, so a single-row p99 well under the target can still break it when served."""
    from specweave_ray.search._ensemble import EnsembleScore, decide, served_p99_ms
    from specweave_ray.search.coordinator import TrialResult

    auc = get_metric("roc_auc")
    single = TrialResult("xgb", "candidate", "t1", "exp-001", "finished", {}, {"cv_mean": 0.90})
    ens = EnsembleScore("greedy", ("a", "b"), (0.5, 0.5), (0.93, 0.95, 0.94, 0.94))
    assert served_p99_ms(7.0, 16) == 224.0 and served_p99_ms(7.0, 1) == 7.0
    ok, why = decide(ens, best_single=single, metric=auc, latency_p99_ms=7.0, target_p99_ms=100.0, other=None)
    assert ok and "single-row p99 latency 7.0 ms" in why  # in process: one client
    ok, why = decide(ens, best_single=single, metric=auc, latency_p99_ms=7.0, target_p99_ms=100.0, other=None,
                     clients=16)
    assert not ok and "at 16 concurrent clients, estimated 224.0 ms" in why and "latency_p99 < 100 ms" in why
    ok, why = decide(ens, best_single=single, metric=auc, latency_p99_ms=3.0, target_p99_ms=100.0, other=None,
                     clients=16)
    assert ok and "estimated 96.0 ms" in why
    # the served path encodes a row in microseconds: the model's own call is what queues
    ok, why = decide(ens, best_single=single, metric=auc, latency_p99_ms=7.0, target_p99_ms=100.0, other=None,
                     clients=16, model_p99_ms=2.0)
    assert ok and "estimated 64.0 ms (2 x 16 x its model call p99 2.00 ms)" in why


def test_the_throughput_target_refuses_an_ensemble_one_server_cannot_serve_that_fast() -> None:
    """The spec's `throughput >= 1000 req/s`: one server process answers one request at a time, so
    a model call of 1.6 ms (its p99, standing for the call plus HTTP) caps it near 625 req/s
    however good the ensemble is."""
    from specweave_ray.search._ensemble import EnsembleScore, decide, served_throughput_rps
    from specweave_ray.search.coordinator import TrialResult

    auc = get_metric("roc_auc")
    single = TrialResult("xgb", "candidate", "t1", "exp-001", "finished", {}, {"cv_mean": 0.90})
    ens = EnsembleScore("stack", ("a", "b"), (), (0.93, 0.95, 0.94, 0.94))
    assert served_throughput_rps(1.6) == 625.0
    ok, why = decide(ens, best_single=single, metric=auc, latency_p99_ms=3.0, target_p99_ms=100.0, other=None,
                     clients=16, model_p99_ms=1.6, target_rps=1000.0)
    assert not ok and "estimated 625 req/s (1000 / its model call p99 1.60 ms)" in why
    assert "throughput target of 1000 req/s" in why and "latency_p99" not in why  # 51.2 ms meets that one
    ok, why = decide(ens, best_single=single, metric=auc, latency_p99_ms=3.0, target_p99_ms=100.0, other=None,
                     clients=16, model_p99_ms=0.5, target_rps=1000.0)
    assert ok and "estimated 2,000 req/s" in why and "estimated 16.0 ms" in why
    # both targets broken: the sentence names both
    ok, why = decide(ens, best_single=single, metric=auc, latency_p99_ms=3.0, target_p99_ms=10.0, other=None,
                     clients=16, model_p99_ms=1.6, target_rps=1000.0)
    assert not ok and "latency_p99 < 10 ms; and its throughput" in why
    # no throughput target: nothing is refused for it, and the sentence does not mention it
    ok, why = decide(ens, best_single=single, metric=auc, latency_p99_ms=3.0, target_p99_ms=None, other=None,
                     model_p99_ms=100.0)
    assert ok and "req/s" not in why


def test_a_better_stack_that_breaks_a_target_does_not_keep_out_a_greedy_ensemble_that_meets_it() -> None:
    from functools import partial

    from specweave_ray.search._ensemble import EnsembleScore, decide, decide_each
    from specweave_ray.search.coordinator import TrialResult

    auc = get_metric("roc_auc")
    single = TrialResult("xgb", "candidate", "t1", "exp-001", "finished", {}, {"cv_mean": 0.90})
    greedy = EnsembleScore("greedy", ("a", "b"), (0.5, 0.5), (0.93, 0.95, 0.94, 0.94))
    stack = EnsembleScore("stack", ("a", "b", "c"), (), (0.94, 0.96, 0.95, 0.95))
    p99_ms = {"greedy": 0.5, "stack": 1.6}  # the stack's third member is the slow one
    base = partial(decide, best_single=single, metric=auc, latency_p99_ms=3.0, target_p99_ms=None)

    def verdict(ens, other, target_rps):
        return base(ens, other=other, target_rps=target_rps, model_p99_ms=p99_ms[ens.method])

    (g_ok, g_why), (s_ok, s_why) = decide_each([greedy, stack], partial(verdict, target_rps=1000.0))
    assert g_ok and not s_ok and "throughput target of 1000 req/s" in s_why
    # without the target the better stack wins and the greedy ensemble is refused because of it
    (g_ok, g_why), (s_ok, s_why) = decide_each([greedy, stack], partial(verdict, target_rps=None))
    assert s_ok and not g_ok and "the stack ensemble scored better (0.9500)" in g_why
    # both break it: neither is chosen, each for its own reason
    (g_ok, g_why), (s_ok, s_why) = decide_each([greedy, stack], partial(verdict, target_rps=5000.0))
    assert not g_ok and not s_ok and "estimated 2,000 req/s" in g_why and "estimated 625 req/s" in s_why


def test_a_pool_too_slow_for_the_targets_drops_its_slow_member_before_the_ensembles_are_built(tmp_path, seed: int) -> None:
    """A forest of 100 trees takes milliseconds per row where a linear model and one tree take microseconds:
    with the spec's targets allowing a 3 ms model call, the forest leaves the pool (as AutoGluon's
    infer_limit would drop it) and both ensembles are built, scored and recorded without it."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.model_selection import cross_val_predict
    from sklearn.tree import DecisionTreeRegressor

    from specweave_ray.search._ensemble import add_ensembles, prune_to_budget
    from specweave_ray.search.coordinator import TrialResult, render_comparison
    from specweave_ray.workspace.increment import Increment

    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(400, 5)), columns=[f"f{i}" for i in range(5)])
    y = X.to_numpy() @ np.array([1.0, 2.0, 0.0, -1.0, 0.5]) + np.sin(3 * X["f2"].to_numpy()) + rng.normal(0, 0.3, 400)
    folds = _folds(400, k=3, seed=seed)
    makers = {"linear": LinearRegression, "tree": lambda: DecisionTreeRegressor(max_depth=4, random_state=seed),
              "forest": lambda: RandomForestRegressor(n_estimators=100, max_depth=6, random_state=seed)}
    oof = {n: cross_val_predict(make(), X, y, cv=folds) for n, make in makers.items()}
    fitted = {n: (make().fit(X, y), None) for n, make in makers.items()}
    rmse = get_metric("rmse")
    best = {n: TrialResult(n, "candidate", f"t-{n}", f"exp-00{i}", "finished", {}, {"cv_mean": score(rmse, y, oof[n])})
            for i, n in enumerate(makers)}

    pool, dropped = prune_to_budget(list(makers), oof=oof, y=y, fitted={n: f[0] for n, f in fitted.items()},
                                    features=None, X=X, metric=rmse, output="values", budget_ms=3.0, seed=seed)
    assert pool == ["linear", "tree"] and [d["candidate"] for d in dropped] == ["forest"]
    assert dropped[0]["pool_model_latency_p99_ms"] > 3.0 and dropped[0]["model_latency_p99_ms"] > 3.0
    # a budget every pool meets drops nothing
    assert prune_to_budget(list(makers), oof=oof, y=y, fitted={n: f[0] for n, f in fitted.items()}, features=None,
                           X=X, metric=rmse, output="values", budget_ms=1e6, seed=seed) == (sorted(makers), [])

    inc = Increment.create("Pruned Pool", problem_type="regression", root=tmp_path / "incs")
    made, info = add_ensembles(inc, oof=oof, best=best, fitted=fitted, y=y, folds=folds, metric=rmse,
                               output="values", X=X, meta={}, target_p99_ms=96.0, clients=16, seed=seed)
    assert info["serving_budget_ms"] == 3.0 and info["pool"] == ["linear", "tree"], info["pruned"]
    assert [d["candidate"] for d in info["pruned"]] == ["forest"]
    assert all("forest" not in t.params["members"] for t in made) and len(made) == 2
    text = render_comparison({"metric": "rmse", "mode": "min", "increment": inc.id, "trials": 3, "failed": 0,
                              "rows": [], "failures": [], "ensemble": info})
    assert "dropped from the pool, the least missed first: forest (" in text and "over linear, tree" in text


def test_one_candidate_makes_no_ensemble_and_says_why(seed: int) -> None:
    from specweave_ray.search._ensemble import add_ensembles
    from specweave_ray.search.coordinator import TrialResult

    y = np.random.default_rng(seed).normal(size=50)
    only = TrialResult("ridge", "candidate", "t1", "exp-001", "finished", {}, {"cv_mean": 1.0})
    made, info = add_ensembles(None, oof={"ridge": y}, best={"ridge": only}, fitted={"ridge": (None, None)}, y=y,
                               folds=_folds(50), metric=get_metric("rmse"), output="values", X=None, meta={})
    assert made == [] and not info["built"] and "needs two" in info["reason"]


def test_paired_rule_chooses_a_consistent_gain_the_unpaired_rule_misses(seed: int) -> None:
    """Folds of very unequal difficulty (noise 0.1 on two folds, 5 on the others): averaging two
    independent members lowers every fold's rmse by ~30%. The ensemble's own fold scores spread so
    widely that the old rule (its mean against the single's, with the SE of its folds) refuses it;
    the paired rule sees the same gain on every fold and chooses it."""
    from specweave_ray.search._ensemble import EnsembleScore, decide, paired_margin
    from specweave_ray.search.coordinator import TrialResult

    rng = np.random.default_rng(seed)
    n, rmse = 1600, get_metric("rmse")
    folds = _folds(n)
    scale = np.empty(n)
    for i, (_, va) in enumerate(folds):
        scale[va] = 0.1 if i % 2 == 0 else 5.0
    y = rng.normal(size=n)
    oof = {"a": y + scale * rng.normal(size=n), "b": y + scale * rng.normal(size=n)}
    greedy = next(e for e in build_ensembles(oof, y, folds, rmse, output="values") if e.method == "greedy")
    best = min(oof, key=lambda m: np.mean(greedy.member_folds[m]))
    single = TrialResult(best, "candidate", "t1", "exp-001", "finished", {},
                         {"cv_mean": float(np.mean(greedy.member_folds[best]))})
    assert set(greedy.names) == {"a", "b"}
    margin, se = paired_margin(greedy.folds, greedy.member_folds[best], rmse)
    assert margin > se > 0
    ok, why = decide(greedy, best_single=single, metric=rmse, latency_p99_ms=1.0, target_p99_ms=100.0, other=None)
    assert ok and "paired SE" in why and f"{margin:+.4f}" in why
    # the old rule on the same numbers: the margin is within the ensemble's own fold spread
    old = EnsembleScore("greedy", greedy.names, greedy.weights, greedy.folds)  # no member folds: unpaired
    assert single.score - greedy.cv_mean < greedy.cv_se
    ok, why = decide(old, best_single=single, metric=rmse, latency_p99_ms=1.0, target_p99_ms=100.0, other=None)
    assert not ok and "unpaired" in why and "not more than its standard error" in why


def test_paired_rule_refuses_a_tie_and_reads_the_record_folds() -> None:
    """A tie on every fold is not chosen, nor a mean gain inside the folds' noise; the best
    single's fold scores come from its trial record when it is not in the pool."""
    from specweave_ray.search._ensemble import EnsembleScore, decide
    from specweave_ray.search.coordinator import TrialResult

    auc = get_metric("roc_auc")
    folds = (0.80, 0.95, 0.88, 0.99)
    single = TrialResult("xgb", "candidate", "t1", "exp-001", "finished", {},
                         {"cv_mean": float(np.mean(folds)), "n_folds": 4,
                          **{f"cv_fold_{i + 1}": f for i, f in enumerate(folds)}})
    tie = EnsembleScore("greedy", ("a", "b"), (0.5, 0.5), folds)
    ok, why = decide(tie, best_single=single, metric=auc, latency_p99_ms=1.0, target_p99_ms=None, other=None)
    assert not ok and "paired margin +0.0000" in why and "not more than its paired standard error" in why
    noisy = EnsembleScore("greedy", ("a", "b"), (0.5, 0.5), (0.82, 0.93, 0.90, 0.98))  # +0.02 −0.02 +0.02 −0.01
    ok, why = decide(noisy, best_single=single, metric=auc, latency_p99_ms=1.0, target_p99_ms=None, other=None)
    assert not ok and "paired SE" in why
    better = EnsembleScore("greedy", ("a", "b"), (0.5, 0.5), (0.81, 0.96, 0.89, 0.995))  # higher on every fold
    ok, why = decide(better, best_single=single, metric=auc, latency_p99_ms=1.0, target_p99_ms=None, other=None)
    assert ok and "more than its paired standard error" in why


def _ensemble_entries(inc, best: dict, *, oof, fitted, y, folds, X) -> list[dict]:
    from specweave_ray.search._ensemble import add_ensembles

    _, info = add_ensembles(inc, oof=oof, best=best, fitted=fitted, y=y, folds=folds, metric=get_metric("rmse"),
                            output="values", X=X, meta={})
    keep = ("candidate", "members", "weights", "cv_mean", "cv_se", "paired_margin", "paired_se", "chosen")
    return [{k: e[k] for k in keep} for e in info["ensembles"]] + [info["best_single"]["candidate"]]


def test_the_ensemble_does_not_depend_on_the_order_trials_finished(tmp_path, monkeypatch, seed: int) -> None:
    """The same trial results in two orders (under Ray, the order trials finish in) give the same
    best trial per candidate and the same ensemble records, to the bit: on a tied score the best
    trial and the best single are chosen by what they are, not by which came first."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import cross_val_predict

    from specweave_ray.search.coordinator import TrialResult, best_per_candidate
    from specweave_ray.workspace.increment import Increment

    monkeypatch.setenv("SPECWEAVE_MLFLOW", "0")
    rmse = get_metric("rmse")
    a1 = TrialResult("a", "candidate", "t1", "exp-001", "finished", {"alpha": 1.0}, {"cv_mean": 2.0})
    a2 = TrialResult("a", "candidate", "t2", "exp-002", "finished", {"alpha": 0.5}, {"cv_mean": 2.0})
    assert best_per_candidate([a1, a2], rmse)["a"] is best_per_candidate([a2, a1], rmse)["a"] is a2

    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(240, 4)), columns=list("abcd"))
    y = X["a"].to_numpy() + 0.5 * X["b"].to_numpy() ** 2 + rng.normal(scale=0.3, size=240)
    folds = _folds(240, k=3, seed=seed)
    models = {"r1": Ridge(alpha=1.0), "r2": Ridge(alpha=300.0), "sq": LinearRegression()}
    Xs = {"r1": X, "r2": X, "sq": X.assign(b2=X["b"] ** 2)}
    oof = {n: cross_val_predict(m, Xs[n], y, cv=folds) for n, m in models.items()}
    fitted = {n: (LinearRegression().fit(X, y), None) for n in models}  # the refits serve the latency probe only
    # r1 and sq tie on the recorded CV score: which one is "the best single" must not be dict order
    best = {n: TrialResult(n, "candidate", f"t-{n}", f"exp-{n}", "finished", {}, {"cv_mean": 1.0})
            for n in ("r1", "r2", "sq")}
    best["r2"] = TrialResult("r2", "candidate", "t-r2", "exp-r2", "finished", {}, {"cv_mean": 3.0})
    runs = []
    for i, order in enumerate((("r1", "r2", "sq"), ("sq", "r2", "r1"))):
        inc = Increment.create(f"Order {i}", problem_type="regression", root=tmp_path / f"incs{i}")
        runs.append(_ensemble_entries(inc, {n: best[n] for n in order}, oof={n: oof[n] for n in reversed(order)},
                                      fitted=fitted, y=y, folds=folds, X=X))
    assert runs[0] == runs[1]
    assert runs[0][-1] == "r1"  # the tie goes to the first name


@pytest.mark.slow
def test_two_sweeps_on_the_same_data_and_seed_give_the_same_ensemble(tmp_path, seed: int) -> None:
    """Two sweeps, same data and seed (a torch MLP with no seed of its own in its params, LightGBM
    on two threads): the same trial scores, and the same ensemble members, weights and nested-CV
    scores, to the bit. An unseeded torch MLP drew fresh initial weights in every fit."""
    import ray

    from specweave_ray import ModelExperiment, run_experiments
    from specweave_ray.workspace.increment import Increment

    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(300, 5)), columns=[f"f{i}" for i in range(5)])
    y = (X["f0"] + X["f1"] * X["f2"] + rng.normal(scale=0.5, size=300) > 0).astype(int)
    runs = []
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPECWEAVE_MLFLOW", "0")
        try:
            for i in range(2):
                inc = Increment.create(f"Repeat {i}", problem_type="classification", root=tmp_path / f"incs{i}")
                run_experiments(
                    [ModelExperiment("logistic", "logistic", {"max_iter": 500}),
                     ModelExperiment("torch-mlp", "torch-mlp", {"epochs": 4, "hidden_sizes": [16], "device": "cpu"}),
                     ModelExperiment("lightgbm", "lightgbm", {"n_estimators": 30, "verbose": -1, "n_jobs": 2})],
                    X, y, increment=inc, cv=3, metric="roc_auc", seed=seed, baselines=False,
                    sweep={"num_cpus": 2, "stages": 1})
                comp = json.loads((inc.experiments_dir / "comparison.json").read_text())
                runs.append(({r["candidate"]: r["cv_mean"] for r in comp["rows"]},
                             [{k: e[k] for k in ("members", "weights", "cv_mean", "paired_margin", "paired_se")}
                              for e in comp["ensemble"]["ensembles"]]))
        finally:
            ray.shutdown()
    assert runs[0] == runs[1]
    assert {"ensemble-greedy", "ensemble-stack", "torch-mlp"} <= set(runs[0][0])
