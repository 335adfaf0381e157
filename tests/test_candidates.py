"""Tests for specweave_ray.candidates: one contract suite over every candidate family, then the
registry, staged training, devices, native saving and the rule baseline."""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone, is_classifier
from sklearn.datasets import make_classification, make_regression
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.utils.estimator_checks import parametrize_with_checks

from specweave_ray.candidates import (
    RuleClassifier,
    baseline_estimators,
    budget_of,
    configure,
    load_native,
    resolve_estimator,
    save_native,
    staged_fit,
)
from specweave_ray.candidates import device as device_module
from specweave_ray.exceptions import CandidateError, ConfigError
from specweave_ray.spec import ModelExperiment, lograndint
from specweave_ray.spec.search_space import as_domain

lightgbm = pytest.importorskip("lightgbm")
torch = pytest.importorskip("torch")
xgboost = pytest.importorskip("xgboost")

from specweave_ray.candidates.torch_mlp import TorchMLPClassifier, TorchMLPRegressor  # noqa: E402

CUDA = torch.cuda.is_available()


@pytest.fixture
def clf_data(seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    X, y = make_classification(n_samples=240, n_features=6, n_informative=4, random_state=seed)
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(6)]), y


@pytest.fixture
def reg_data(seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    X, y = make_regression(n_samples=240, n_features=5, noise=5.0, random_state=seed)
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(5)]), y


# Every candidate family, small enough to fit in milliseconds. name -> factory(seed).
CLASSIFIERS: dict[str, Callable[[int], Any]] = {
    "random-uniform": lambda s: DummyClassifier(strategy="uniform", random_state=s),
    "random-prior": lambda s: DummyClassifier(strategy="stratified", random_state=s),
    "majority": lambda s: DummyClassifier(strategy="most_frequent"),
    "rule": lambda s: RuleClassifier(rule="f0 > 0 and not f1 < -2"),
    "logistic": lambda s: LogisticRegression(max_iter=500),
    "xgboost": lambda s: xgboost.XGBClassifier(
        n_estimators=12, max_depth=3, n_jobs=1, random_state=s
    ),
    "lightgbm": lambda s: lightgbm.LGBMClassifier(
        n_estimators=12, num_leaves=7, verbose=-1, n_jobs=1, random_state=s
    ),
    "torch-mlp": lambda s: TorchMLPClassifier(
        hidden_sizes=(16,), epochs=4, num_threads=1, random_state=s
    ),
}
REGRESSORS: dict[str, Callable[[int], Any]] = {
    "mean": lambda s: DummyRegressor(strategy="mean"),
    "median": lambda s: DummyRegressor(strategy="median"),
    "ridge": lambda s: Ridge(),
    "xgboost-reg": lambda s: xgboost.XGBRegressor(
        n_estimators=12, max_depth=3, n_jobs=1, random_state=s
    ),
    "lightgbm-reg": lambda s: lightgbm.LGBMRegressor(
        n_estimators=12, num_leaves=7, verbose=-1, n_jobs=1, random_state=s
    ),
    "torch-mlp-reg": lambda s: TorchMLPRegressor(
        hidden_sizes=(16,), epochs=4, num_threads=1, random_state=s
    ),
}
FAMILIES = {**CLASSIFIERS, **REGRESSORS}
EXPECTED_FORMAT = {
    "xgboost": "xgboost-ubj",
    "xgboost-reg": "xgboost-ubj",
    "lightgbm": "lightgbm-txt",
    "lightgbm-reg": "lightgbm-txt",
    "torch-mlp": "torch-state-dict",
    "torch-mlp-reg": "torch-state-dict",
}
STAGED = ["xgboost", "lightgbm", "torch-mlp", "xgboost-reg", "lightgbm-reg", "torch-mlp-reg"]


def _data(name: str, clf_data: Any, reg_data: Any) -> tuple[pd.DataFrame, np.ndarray]:
    return clf_data if name in CLASSIFIERS else reg_data


def _outputs(model: Any, X: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(X) if hasattr(model, "predict_proba") else model.predict(X)


# ----------------------------------------------------------------------------- contract suite
@pytest.mark.parametrize("name", FAMILIES)
def test_clone_and_params_round_trip(name: str, seed: int) -> None:
    est = FAMILIES[name](seed)
    params = est.get_params()
    copy = clone(est)
    assert type(copy) is type(est) and copy.get_params() == params
    assert est.set_params(**params) is est


@pytest.mark.parametrize("name", FAMILIES)
def test_fit_returns_self_and_predict_shapes(name: str, seed: int, clf_data, reg_data) -> None:
    X, y = _data(name, clf_data, reg_data)
    est = FAMILIES[name](seed)
    assert est.fit(X, y) is est
    assert est.predict(X).shape == (len(X),)
    if name in CLASSIFIERS:
        assert is_classifier(est)
        proba = est.predict_proba(X)
        assert proba.shape == (len(X), 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
        assert set(np.unique(est.predict(X))) <= set(np.unique(y))
    # a fitted estimator clones into an unfitted one with the same params
    assert clone(est).get_params() == est.get_params()


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_string_labels_round_trip(name: str, seed: int, clf_data) -> None:
    if name == "xgboost":
        pytest.skip("XGBClassifier 3.2 accepts only labels 0..k-1; encode string targets first")
    X, y = clf_data
    labels = np.where(y == 1, "yes", "no")
    est = FAMILIES[name](seed).fit(X, labels)
    assert list(est.classes_) == ["no", "yes"]
    assert set(est.predict(X)) <= {"no", "yes"}


@pytest.mark.parametrize("name", FAMILIES)
def test_save_load_round_trip_predicts_the_same(
    name: str, seed: int, clf_data, reg_data, tmp_path: Path
) -> None:
    X, y = _data(name, clf_data, reg_data)
    est = FAMILIES[name](seed).fit(X, y)
    info = save_native(est, tmp_path, name="model-v1")
    assert info["format"] == EXPECTED_FORMAT.get(name, "pickle")
    assert info["estimator"].endswith(type(est).__name__)
    assert all((tmp_path / file).is_file() and len(h) == 64 for file, h in info["files"].items())
    loaded = load_native(tmp_path, info)
    np.testing.assert_allclose(_outputs(loaded, X), _outputs(est, X), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


def test_lightgbm_round_trip_keeps_string_labels(seed: int, clf_data, tmp_path: Path) -> None:
    X, y = clf_data
    labels = np.where(y == 1, "yes", "no")
    est = CLASSIFIERS["lightgbm"](seed).fit(X, labels)
    loaded = load_native(tmp_path, save_native(est, tmp_path))
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    assert loaded.booster_.num_trees() == est.booster_.num_trees()
    with pytest.raises(CandidateError, match="predict-only"):
        loaded.fit(X, labels)


@pytest.mark.parametrize("name", ["majority", "xgboost", "lightgbm", "torch-mlp"])
def test_tampered_file_is_refused(name: str, seed: int, clf_data, tmp_path: Path) -> None:
    X, y = clf_data
    info = save_native(FAMILIES[name](seed).fit(X, y), tmp_path)
    target = tmp_path / next(iter(info["files"]))
    target.write_bytes(target.read_bytes() + b"\0")
    with pytest.raises(
        CandidateError,
        match=rf"hash mismatch for {target.name}: recorded .* found .*refusing to load",
    ):
        load_native(tmp_path, info)


class _Boom:
    """Unpickling this would create a file: it must never happen."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.path),))


def test_swapped_pickle_is_never_unpickled(clf_data, tmp_path: Path) -> None:
    X, y = clf_data
    info = save_native(DummyClassifier().fit(X, y), tmp_path)
    witness = tmp_path / "pwned"
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(_Boom(str(witness))))
    with pytest.raises(CandidateError, match="hash mismatch for model.pkl"):
        load_native(tmp_path, info)
    assert not witness.exists()


@pytest.mark.parametrize(
    "bad", [{"format": "zip", "files": {}}, {"format": "pickle", "files": {"../x.pkl": "0"}}]
)
def test_malformed_info_is_refused(bad: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(CandidateError, match="model info"):
        load_native(tmp_path, bad)


def test_save_refuses_unfitted_and_bad_names(tmp_path: Path) -> None:
    with pytest.raises(CandidateError, match="not fitted"):
        save_native(Ridge(), tmp_path)
    with pytest.raises(CandidateError, match="model name"):
        save_native(Ridge().fit([[0.0], [1.0]], [0.0, 1.0]), tmp_path, name="../escape")


# ----------------------------------------------------------------------------- staged training
@pytest.mark.parametrize("name", STAGED)
def test_staged_fit_ends_with_full_budget(name: str, seed: int, clf_data, reg_data) -> None:
    X, y = _data(name, clf_data, reg_data)
    est = FAMILIES[name](seed)
    param, total = budget_of(est)
    seen = [_trained(model) for model in staged_fit(est, X, y, stages=3)]
    assert len(seen) == 3 and seen[-1] == total and seen == sorted(seen)
    assert est.get_params()[param] == total
    full = FAMILIES[name](seed).fit(X, y)
    assert _trained(full) == total
    np.testing.assert_allclose(_outputs(est, X), _outputs(full, X), rtol=1e-4, atol=1e-5)


def _trained(model: Any) -> int:
    if isinstance(model, xgboost.XGBModel):
        return model.get_booster().num_boosted_rounds()
    if isinstance(model, lightgbm.LGBMModel):
        return model.booster_.current_iteration()
    return model.n_epochs_trained_


def test_staged_fit_with_subsampling_keeps_tree_count(seed: int, clf_data) -> None:
    X, y = clf_data
    est = xgboost.XGBClassifier(n_estimators=10, subsample=0.7, n_jobs=1, random_state=seed)
    *_, last = staged_fit(est, X, y, stages=4)
    assert last.get_booster().num_boosted_rounds() == 10 and last.n_estimators == 10


def test_staged_fit_without_budget_yields_once(clf_data) -> None:
    X, y = clf_data
    est = LogisticRegression(max_iter=500)
    assert budget_of(est) is None
    assert [m for m in staged_fit(est, X, y, stages=5)] == [est]
    assert hasattr(est, "coef_")


def test_staged_fit_past_budget_and_stopped_early(seed: int, clf_data) -> None:
    X, y = clf_data
    est = lightgbm.LGBMClassifier(n_estimators=3, verbose=-1, n_jobs=1, random_state=seed)
    trees = [model.booster_.current_iteration() for model in staged_fit(est, X, y, stages=5)]
    assert trees == [1, 2, 3, 3, 3]  # one yield per stage, even past the budget
    mlp = TorchMLPClassifier(hidden_sizes=(8,), epochs=6, random_state=seed)
    stages = staged_fit(mlp, X, y, stages=3)
    next(stages)
    stages.close()  # an early-stopped trial
    assert mlp.epochs == 6 and mlp.n_epochs_trained_ == 2


@pytest.mark.parametrize("stages", [0, -1, 1.5, True])
def test_staged_fit_rejects_bad_stages(stages: Any, clf_data) -> None:
    X, y = clf_data
    with pytest.raises(CandidateError, match="stages must be a positive integer"):
        next(staged_fit(Ridge(), X, y, stages=stages))


# ----------------------------------------------------------------------------- devices
@pytest.mark.parametrize(
    ("name", "param"),
    [
        ("xgboost", "n_jobs"),
        ("lightgbm", "n_jobs"),
        ("torch-mlp", "num_threads"),
        ("random-forest", "n_jobs"),
        ("logistic", None),
    ],
)
def test_configure_sets_threads(name: str, param: str | None, seed: int) -> None:
    est = RandomForestClassifier() if name == "random-forest" else FAMILIES[name](seed)
    before = est.get_params()
    assert configure(est, cpus=3, gpu_ids=[]) == []
    if param is None:  # LogisticRegression's n_jobs is a no-op that warns since sklearn 1.8
        assert est.get_params() == before
    else:
        assert est.get_params()[param] == 3


@pytest.mark.skipif(CUDA, reason="checks the fallback on a machine without CUDA")
@pytest.mark.parametrize(
    ("name", "library"),
    [("xgboost", "xgboost"), ("torch-mlp", "torch MLP"), ("lightgbm", "lightgbm")],
)
def test_configure_falls_back_to_cpu_without_cuda(
    name: str, library: str, seed: int, clf_data
) -> None:
    est = FAMILIES[name](seed)
    warnings = configure(est, cpus=2, gpu_ids=["0"])
    assert len(warnings) == 1
    assert "CUDA_VISIBLE_DEVICES=0" in warnings[0] and f"{library} ran on CPU" in warnings[0]
    assert est.get_params().get("device") in (None, "cpu")
    est.fit(*clf_data)  # still trains


def test_configure_switches_to_cuda_when_usable(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    monkeypatch.setattr(device_module, "xgboost_cuda_usable", lambda: True)
    monkeypatch.setattr(device_module, "torch_cuda_usable", lambda: True)
    xgb_est, mlp = FAMILIES["xgboost"](seed), FAMILIES["torch-mlp"](seed)
    assert configure(xgb_est, cpus=1, gpu_ids=["0"]) == []
    assert configure(mlp, cpus=1, gpu_ids=["0"]) == []
    assert xgb_est.device == "cuda" and mlp.device == "cuda"


def test_configure_rejects_bad_cpus() -> None:
    with pytest.raises(CandidateError, match="cpus must be a positive integer"):
        configure(Ridge(), cpus=0, gpu_ids=[])


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["xgboost", "torch-mlp"])
def test_configured_gpu_candidates_train_on_cuda(
    name: str, seed: int, clf_data, tmp_path: Path
) -> None:
    X, y = clf_data
    est = FAMILIES[name](seed)
    assert configure(est, cpus=2, gpu_ids=["0"]) == []
    est.fit(X, y)
    if name == "torch-mlp":
        assert est.device_.startswith("cuda") and est.device_warning_ is None
    loaded = load_native(tmp_path, save_native(est, tmp_path))
    np.testing.assert_allclose(_outputs(loaded, X), _outputs(est, X), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- torch MLP
_MLP_XFAIL = {
    "check_sample_weight_equivalence_on_dense_data": (
        "mini-batch SGD: a weight of 2 is not bit-identical to a repeated row"
    ),
    "check_dtype_object": "non-numeric X raises CandidateError (a ValueError), not TypeError",
}


@pytest.mark.slow
@parametrize_with_checks(
    [
        TorchMLPClassifier(hidden_sizes=(16,), epochs=30, lr=1e-2, num_threads=1, random_state=0),
        TorchMLPRegressor(hidden_sizes=(16,), epochs=30, lr=1e-2, num_threads=1, random_state=0),
    ],
    expected_failed_checks=lambda est: _MLP_XFAIL,
)
def test_mlp_passes_sklearn_estimator_checks(estimator: Any, check: Any) -> None:
    check(estimator)


def test_mlp_device_fallback_and_thread_restore(seed: int, clf_data) -> None:
    X, y = clf_data
    before = torch.get_num_threads()
    mlp = TorchMLPClassifier(hidden_sizes=(8,), epochs=1, device="cuda", num_threads=1).fit(X, y)
    assert torch.get_num_threads() == before
    if CUDA:
        assert mlp.device_warning_ is None
    else:
        assert mlp.device_ == "cpu" and "no usable CUDA device" in mlp.device_warning_
    with pytest.raises(CandidateError, match="device must be"):
        TorchMLPClassifier(device="tpu").fit(X, y)


def test_mlp_multiclass_balanced_and_bad_input(seed: int) -> None:
    X, y = make_classification(
        n_samples=200,
        n_features=5,
        n_informative=4,
        n_redundant=0,
        n_classes=3,
        weights=[0.6, 0.3, 0.1],
        random_state=seed,
    )
    mlp = TorchMLPClassifier(
        hidden_sizes=(8,), epochs=3, class_weight="balanced", dropout=0.2, random_state=seed
    ).fit(X, y)
    assert mlp.predict_proba(X).shape == (200, 3)
    assert mlp.class_weight_[2] > mlp.class_weight_[0]
    with pytest.raises(CandidateError, match="not seen"):
        mlp.partial_fit(X, np.full(200, 7))
    with pytest.raises(CandidateError, match="numeric columns.*city"):
        TorchMLPRegressor().fit(pd.DataFrame({"city": ["a", "b"]}), [1.0, 2.0])
    with pytest.raises(CandidateError, match="NaN"):
        TorchMLPRegressor().fit(np.array([[np.nan], [1.0]]), [1.0, 2.0])


def test_mlp_loaded_from_native_files_can_train_on(seed: int, reg_data, tmp_path: Path) -> None:
    X, y = reg_data
    mlp = TorchMLPRegressor(hidden_sizes=(8,), epochs=2, random_state=seed).fit(X, y)
    loaded = load_native(tmp_path, save_native(mlp, tmp_path))
    assert loaded.n_epochs_trained_ == 2 and list(loaded.feature_names_in_) == list(X.columns)
    loaded.partial_fit(X, y, epochs=1)
    assert loaded.n_epochs_trained_ == 3


def test_mlp_state_rejects_the_other_kind(seed: int, reg_data) -> None:
    state = (
        TorchMLPRegressor(hidden_sizes=(4,), epochs=1, random_state=seed).fit(*reg_data).to_state()
    )
    with pytest.raises(CandidateError, match="cannot load into TorchMLPClassifier"):
        TorchMLPClassifier.from_state(state)


# ----------------------------------------------------------------------------- registry
@pytest.mark.parametrize(
    ("alias", "problem", "expected"),
    [
        ("xgboost", "classification", "XGBClassifier"),
        ("lightgbm", "regression", "LGBMRegressor"),
        ("logistic", "binary", "LogisticRegression"),
        ("linear", "regression", "LinearRegression"),
        ("ridge", "regression", "Ridge"),
        ("random_forest", "classification", "RandomForestClassifier"),
        ("torch-mlp", "regression", "TorchMLPRegressor"),
        ("mlp", "classification", "TorchMLPClassifier"),
        ("sklearn.linear_model.LogisticRegression", "classification", "LogisticRegression"),
        ("xgboost.XGBRegressor", "regression", "XGBRegressor"),
    ],
)
def test_resolve_estimator(alias: str, problem: str, expected: str) -> None:
    assert resolve_estimator(alias, problem_type=problem).__name__ == expected


def test_resolve_estimator_errors() -> None:
    assert resolve_estimator(Ridge, problem_type="regression") is Ridge
    with pytest.raises(CandidateError, match=r"unknown estimator 'catboost'.*lightgbm.*torch-mlp"):
        resolve_estimator("catboost", problem_type="classification")
    with pytest.raises(CandidateError, match="'logistic' is a classification alias"):
        resolve_estimator("logistic", problem_type="regression")
    with pytest.raises(CandidateError, match="not a scikit-learn style estimator"):
        resolve_estimator("collections.OrderedDict", problem_type="regression")
    with pytest.raises(CandidateError, match="cannot find estimator class"):
        resolve_estimator("sklearn.linear_model.Nope", problem_type="regression")
    with pytest.raises(ConfigError, match="unknown problem type 'clustering'; known: classification"):
        resolve_estimator("xgboost", problem_type="clustering")


@pytest.mark.parametrize(
    "space", [{"loguniform": [0, 1]}, {"uniform": [2, 1]}, {"randint": [1]}, {"choice": []}]
)
def test_a_configured_candidate_rejects_bad_spaces(space: dict[str, Any]) -> None:
    with pytest.raises(CandidateError, match="candidate 'x': param 'p': "):
        ModelExperiment.from_config({"name": "x", "estimator": "ridge", "params": {"p": space}})


# ----------------------------------------------------------------------------- baselines
def test_baseline_estimators() -> None:
    clf = baseline_estimators("classification", rule="f0 > 1", random_state=3)
    assert list(clf) == ["random-uniform", "random-prior", "majority", "rule"]
    assert clf["random-prior"].strategy == "stratified" and clf["random-uniform"].random_state == 3
    assert list(baseline_estimators("regression")) == ["mean", "median"]
    with pytest.raises(CandidateError, match="needs a classification problem"):
        baseline_estimators("regression", rule="f0 > 1")


def test_rule_classifier_evaluates_rules() -> None:
    X = pd.DataFrame({"balance": [100, 2500, 1900, None], "city": ["a", "b", None, "c"]})
    y = np.array(["no", "yes", "yes", "no"])
    rule = RuleClassifier(rule="balance > 1800 and city in ('b', 'c')").fit(X, y)
    assert rule.predict(X).tolist() == ["no", "yes", "no", "no"]
    np.testing.assert_array_equal(rule.predict_proba(X)[:, 1], [0.0, 1.0, 0.0, 0.0])
    assert RuleClassifier(rule="not -5 < balance <= 2000").fit(X, y).predict(X).tolist() == [
        "no",
        "yes",
        "no",
        "yes",
    ]
    nullable = pd.DataFrame({"city": pd.array(["a", None, "b"], dtype="string")})
    holds = (
        RuleClassifier(rule="city in ['a', 'x']").fit(nullable, [1, 0, 0]).decision_rule(nullable)
    )
    assert holds.tolist() == [True, False, False]  # a missing value is in no list
    with pytest.raises(CandidateError, match="cannot be evaluated"):
        RuleClassifier(rule="city > 3").fit(nullable, [1, 0, 0]).predict(nullable)
    with pytest.raises(CandidateError, match="positive_label 'maybe'"):
        RuleClassifier(rule="balance > 0", positive_label="maybe").fit(X, y)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("__import__('os').system('true')", "uses Call"),
        ("balance.__class__ == 1", "uses Attribute"),
        ("balance + 1 > 2", "uses BinOp"),
        ("balance[0] > 1", "uses Subscript"),
        ("balance >", "not a valid expression"),
        ("nope > 1 or balance > 2", r"unknown column\(s\) 'nope'"),
    ],
)
def test_rule_classifier_rejects_unsafe_or_unknown(rule: str, message: str) -> None:
    X = pd.DataFrame({"balance": [1.0, 3.0]})
    with pytest.raises(CandidateError, match=message):
        RuleClassifier(rule=rule).fit(X, [0, 1])


def test_rule_classifier_needs_a_dataframe() -> None:
    with pytest.raises(CandidateError, match="must be a pandas DataFrame"):
        RuleClassifier(rule="balance > 1").fit(np.ones((2, 1)), [0, 1])


def test_importing_candidates_is_cheap() -> None:
    code = (
        "import sys, specweave_ray.candidates as c; c.resolve_estimator; c.staged_fit; "
        "c.configure; c.save_native; c.baseline_estimators; "
        "print(sorted(m for m in ('torch', 'xgboost', 'lightgbm') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_lograndint_reads_from_a_config_and_refuses_bounds_it_cannot_draw() -> None:
    dom = as_domain({"lograndint": [4, 64]})
    assert dom == lograndint(4, 64) and dom.to_json() == {"lograndint": [4, 64]}
    exp = ModelExperiment("lightgbm", "lightgbm", {"num_leaves": {"lograndint": [4, 64]}, "verbose": -1})
    assert exp.search_space == {"num_leaves": lograndint(4, 64)} and exp.fixed_params == {"verbose": -1}
    with pytest.raises(CandidateError, match="lograndint needs low > 0"):
        lograndint(0, 10)
    with pytest.raises(CandidateError, match="needs low < high"):
        as_domain({"lograndint": [64, 4]})
