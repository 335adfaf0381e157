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
