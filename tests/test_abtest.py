"""Tests for the A/B test plan (``specweave_ray.deploy.abtest``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm
from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import proportion_effectsize

from specweave_ray.deploy.abtest import render_ab_plan, sample_size_continuous, sample_size_per_arm
from specweave_ray.exceptions import ConfigError


def _textbook(p1: float, p2: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Per-arm n from the pooled normal-approximation formula for two proportions."""
    za, zb = norm.ppf(1 - alpha / 2), norm.ppf(power)
    pbar = (p1 + p2) / 2
    num = za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return num**2 / (p1 - p2) ** 2


@pytest.mark.parametrize(("p1", "mde"), [(0.10, 0.10), (0.02, 0.25), (0.5, -0.1), (0.3, 0.05)])
def test_sample_size_matches_hand_formula(p1: float, mde: float) -> None:
    n = sample_size_per_arm(p1, mde_relative=mde)
    assert n == pytest.approx(_textbook(p1, p1 * (1 + mde)), rel=0.01)


def test_sample_size_matches_statsmodels_and_grows_as_mde_shrinks() -> None:
    h = proportion_effectsize(0.055, 0.05)
    direct = NormalIndPower().solve_power(effect_size=abs(h), alpha=0.05, power=0.8, ratio=1.0)
    assert sample_size_per_arm(0.05, mde_relative=0.1) == math.ceil(direct)
    sizes = [sample_size_per_arm(0.05, mde_relative=m) for m in (0.3, 0.2, 0.1, 0.05)]
    assert sizes == sorted(sizes) and sizes[-1] > 3 * sizes[-2]
    assert sample_size_per_arm(0.05, mde_relative=0.1, two_sided=False) < sizes[2]
    assert sample_size_per_arm(0.05, mde_relative=0.1, power=0.9) > sizes[2]


def test_sample_size_continuous_matches_statsmodels() -> None:
    d = 50 * 0.05 / 80
    direct = TTestIndPower().solve_power(effect_size=d, alpha=0.05, power=0.8, ratio=1.0)
    assert sample_size_continuous(50, 80, mde_relative=0.05) == math.ceil(direct)
    za, zb = norm.ppf(0.975), norm.ppf(0.8)
    assert sample_size_continuous(50, 80, mde_relative=0.05) == pytest.approx(
        2 * ((za + zb) / d) ** 2, rel=0.01)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"baseline_rate": 0.0, "mde_relative": 0.1}, "baseline_rate"),
    ({"baseline_rate": 0.6, "mde_relative": 0.8}, "outside"),
    ({"baseline_rate": 0.1, "mde_relative": 0.0}, "mde_relative"),
    ({"baseline_rate": 0.1, "mde_relative": 0.1, "alpha": 1.5}, "alpha"),
    ({"baseline_rate": 0.1, "mde_relative": 0.1, "power": 0}, "power"),
])
def test_sample_size_bad_inputs(kwargs: dict, match: str) -> None:
    rate = kwargs.pop("baseline_rate")
    with pytest.raises(ConfigError, match=match):
        sample_size_per_arm(rate, **kwargs)


def test_render_plan_for_rate_metric() -> None:
    n = sample_size_per_arm(0.10, mde_relative=0.10)
    text = render_ab_plan(
        increment_id="0001-fraud-detection", problem_type="classification", control="model-v1",
        candidate="model-v2", primary_metric="fraud catch rate", baseline_rate=0.10,
        mde_relative=0.10, daily_traffic=10_000, guardrails=["precision >= 0.9"],
        latency_p99_ms_target=100,
    )
    days = math.ceil(2 * n / 10_000)
    assert f"{n:,} users in control, {n:,} in candidate ({2 * n:,} in total)" in text
    assert f"**{days} day(s)**" in text and "**7 day(s)**" in text
    assert "precision >= 0.9" in text and "latency_p99 < 100 ms" in text
    for heading in ("Hypothesis", "Sample size", "Stop rules", "Decision rule", "Rollback"):
        assert f"## {heading}" in text
    assert "O'Brien-Fleming" in text and "p1 = 0.1" in text and "alpha = 0.05" in text


def test_render_plan_for_continuous_metric_with_uneven_split() -> None:
    n = sample_size_continuous(50, 80, mde_relative=0.05, ratio=0.25)
    text = render_ab_plan(
        increment_id="0002-ltv-prediction", problem_type="regression", control="v1",
        candidate="v2", primary_metric="revenue per user", baseline_rate=None, baseline_mean=50,
        baseline_std=80, mde_relative=0.05, daily_traffic=10_000, traffic_split=0.2, exposure=0.5,
    )
    cand = math.ceil(0.25 * n)
    days = max(math.ceil(n / 4000), math.ceil(cand / 1000))
    assert f"{n:,} users in control, {cand:,} in candidate" in text
    assert f"**{days} day(s)**" in text and "Welch" in text and "80% control / 20% candidate" in text


def test_render_plan_needs_a_baseline() -> None:
    with pytest.raises(ConfigError, match="baseline_mean and baseline_std"):
        render_ab_plan(increment_id="x", problem_type="regression", control="a", candidate="b",
                       primary_metric="m", baseline_rate=None)
    with pytest.raises(ConfigError, match="traffic_split"):
        render_ab_plan(increment_id="x", problem_type="classification", control="a",
                       candidate="b", primary_metric="m", baseline_rate=0.1, traffic_split=1.0)


def test_plan_control_is_the_parent_model_else_the_best_baseline(root, monkeypatch) -> None:
    """Real breast-cancer baselines scored on a held-out split: the control, its measured miss
    rate and the direction reach the power analysis."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from specweave_ray._fs import atomic_write_json
    from specweave_ray.deploy._release import ab_control, write_ab_plan
    from specweave_ray.evaluate import score
    from specweave_ray.workspace.increment import Increment
    from specweave_ray.workspace.records import track_experiment

    monkeypatch.setenv("SPECWEAVE_MLFLOW", "0")
    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    y_te = 1 - y_te  # malignant as the positive class: the majority baseline misses every one
    y_tr = 1 - y_tr

    def measured(model) -> dict:
        return {**score(y_te, problem_type="classification", proba=model.fit(X_tr, y_tr).predict_proba(X_te)),
                "n_test": len(y_te)}

    parent = Increment.create("Cancer v1", problem_type="classification", root=root)
    child = Increment.create("Cancer v2", problem_type="classification", root=root)
    for inc, kind, name, model in ((child, "baseline-evaluation", "majority", DummyClassifier()),
                                   (parent, "evaluation", "logistic", LogisticRegression(max_iter=5000))):
        with track_experiment(f"evaluation-{name}", increment=inc, kind=kind, meta={"candidate": name}) as exp:
            exp.log_metrics(measured(model))
    control, metrics = ab_control(child, metric="roc_auc")
    assert "best baseline majority" in control and "no parent" in control
    assert metrics["fn"] / metrics["n_test"] == pytest.approx(float(np.mean(y_te)))  # misses every positive
    plan = write_ab_plan(child, child.spec(), target="malignant", comparison={"metric": "roc_auc"},
                         mde_relative=0.1, daily_traffic=10_000, traffic_split=0.5, fingerprint="").read_text()
    rate = float(np.mean(y_te))
    assert f"p1 = {rate:.4g}" in plan and f"{rate * 0.9:.4g}" in plan
    assert "candidate decreases rate of positive outcomes missed" in plan
    assert f"{sample_size_per_arm(rate, mde_relative=-0.1):,} users in control" in plan

    atomic_write_json(child.path / "metadata.json", {"parent": parent.id})
    control, metrics = ab_control(child, metric="roc_auc")
    assert parent.id in control and "logistic" in control
    plan = write_ab_plan(child, child.spec(), target="malignant", comparison={"metric": "roc_auc"},
                         mde_relative=0.1, daily_traffic=10_000, traffic_split=0.5, fingerprint="").read_text()
    miss = metrics["fn"] / metrics["n_test"]
    assert 0 < miss < rate / 2 and f"p1 = {miss:.4g}" in plan and "decreases" in plan
