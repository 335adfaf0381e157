"""The run's --time-budget split across the T-003…T-005 sweeps (the sweep's own stop: test_sweep.py)."""

from __future__ import annotations

import pytest

from specweave_ray.exceptions import ConfigError
from specweave_ray.pipeline._tasks import sweep_budget
from specweave_ray.spec.config import parse_config


def test_each_sweep_gets_its_share_of_what_is_left_after_the_reserve():
    # 100 s run, 25 s kept for T-006…T-009: T-003 gets 10% of the 75 s, T-004 half of what is then left
    assert sweep_budget("T-003", left_s=100, total_s=100) == pytest.approx(7.5)
    assert sweep_budget("T-004", left_s=90, total_s=100) == pytest.approx(32.5)
    # the last sweep takes all that is left; time T-004 did not use goes to it
    assert sweep_budget("T-005", left_s=60, total_s=100) == pytest.approx(35.0)
    # past the reserve: still a second, so the sweep launches its first trials
    assert sweep_budget("T-005", left_s=5, total_s=100) == 1.0


def test_time_budget_in_the_config_is_checked():
    cfg = parse_config({"increment": "x", "problem_type": "classification", "data": {"generate": "fraud"}, "time_budget_s": 60}, source="t.yaml")
    assert cfg.time_budget_s == 60 and cfg.sweep.time_budget_s is None
    with pytest.raises(ConfigError, match="time_budget_s"):
        parse_config({"increment": "x", "problem_type": "classification", "data": {"generate": "fraud"}, "time_budget_s": -1}, source="t.yaml")


def test_the_time_kept_after_the_trials_follows_their_fit_times():
    from specweave_ray import ModelExperiment
    from specweave_ray.search.coordinator import TrialResult
    from specweave_ray.search.runner import _ENSEMBLE_S, _REFIT_TASK_S, _TEARDOWN_S, after_sweep_s

    exps = [ModelExperiment("a", "logistic"), ModelExperiment("b", "xgboost"), ModelExperiment("c", "lightgbm")]

    def trial(name, fit_s, status="finished"):
        return TrialResult(candidate=name, kind="candidate", trial_id=name + str(fit_s), record_id="r", status=status,
                           params={}, metrics={"fit_time_s": fit_s, "cv_mean": 0.5})

    # 3 folds: a fold's fit is fit_time_s / 3 on 2/3 of the rows, so all rows take fit_time_s / 2
    trials = [trial("a", 2.0), trial("a", 4.0), trial("b", 6.0), trial("c", 30.0, status="failed")]
    kept = after_sweep_s(trials, exps, n_folds=3, refit=True, ensemble=True, slots=2, in_tasks=False)
    # medians a 1.5, b 3.0, c unmeasured 0: two at a time → waves (3.0, 1.5) and (0.0)
    assert kept == pytest.approx(_TEARDOWN_S + 3.0 + 0.0 + _ENSEMBLE_S)
    in_tasks = after_sweep_s(trials, exps, n_folds=3, refit=True, ensemble=True, slots=2, in_tasks=True)
    assert in_tasks == pytest.approx(kept + 2 * _REFIT_TASK_S)  # each wave starts fresh workers
    assert after_sweep_s(trials, exps, n_folds=3, refit=False, ensemble=True, slots=2) == _TEARDOWN_S
    one = after_sweep_s(trials, exps[:1], n_folds=3, refit=True, ensemble=True, slots=2, in_tasks=False)
    assert one == pytest.approx(_TEARDOWN_S + 1.5)  # one candidate: no ensemble
