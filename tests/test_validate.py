"""Tests for ``specweave_ray.evaluate.gate``: target checks, CIs, lifts, the gate table and JSON."""

from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pytest

from specweave_ray.evaluate import gate as validate_module
from specweave_ray.evaluate.gate import (
    MET,
    NO_TARGETS,
    NOT_MEASURED,
    NOT_MET,
    GateRow,
    check_targets,
    gate_json,
    gate_passed,
    gate_verdict,
    lift_metrics,
    render_gate,
)
from specweave_ray.exceptions import RecordError, SpecweaveError
from specweave_ray.spec._grammar import Target, parse_targets


def one(line: str, metrics: dict[str, float], **kwargs: object) -> GateRow:
    (target,) = parse_targets(line)
    (row,) = check_targets([target], metrics, **kwargs)
    return row


def test_doctests() -> None:
    assert doctest.testmod(validate_module).failed == 0


@pytest.mark.parametrize(("line", "value", "status"), [
    ("precision > 0.9", 0.91, MET), ("precision > 0.9", 0.9, NOT_MET),
    ("precision >= 0.9", 0.9, MET), ("precision >= 0.9", 0.89, NOT_MET),
    ("log_loss < 0.3", 0.29, MET), ("log_loss < 0.3", 0.3, NOT_MET),
    ("log_loss <= 0.3", 0.3, MET), ("log_loss <= 0.3", 0.31, NOT_MET),
    ("MAE == 3", 3.0 + 1e-12, MET), ("MAE == 3", 3.1, NOT_MET),
])
def test_every_op(line: str, value: float, status: str) -> None:
    row = one(line, {parse_targets(line)[0].metric_key: value})
    assert row.status == status and row.value == value
    assert row.ci_low is None and row.ci_high is None and row.worst_bound_met is None


def test_point_met_but_ci_low_bound_not() -> None:
    row = one("precision >= 0.99", {"precision": 0.992, "precision_ci_low": 0.985,
                                    "precision_ci_high": 0.997}, source="exp-012-evaluation")
    assert row.status == MET and row.worst_bound_met is False
    assert (row.ci_low, row.ci_high) == (0.985, 0.997)
    assert row.source == "exp-012-evaluation:precision"
    firm = one("precision >= 0.98", {"precision": 0.992, "precision_ci_low": 0.985,
                                     "precision_ci_high": 0.997})
    assert firm.worst_bound_met is True and firm.source == "precision"


@pytest.mark.parametrize(("line", "metrics", "status", "worst"), [
    # lower is better: the CI's high bound is the worse one
    ("RMSE < $50", {"rmse": 42.0, "rmse_ci_low": 38.0, "rmse_ci_high": 53.0}, MET, False),
    ("RMSE < $50", {"rmse": 42.0, "rmse_ci_low": 38.0, "rmse_ci_high": 47.0}, MET, True),
    ("RMSE < $50", {"rmse": 51.0, "rmse_ci_low": 45.0, "rmse_ci_high": 57.0}, NOT_MET, False),
    ("latency_p99 < 100 ms", {"latency_p99_ms": 35.0}, MET, None),
    ("Latency: <0.1 s", {"latency_p99_ms": 120.0, "latency_p99_ms_ci_low": 95.0,
                         "latency_p99_ms_ci_high": 140.0}, NOT_MET, False),
    ("MAPE < 10%", {"mape": 8.5, "mape_ci_low": 7.0, "mape_ci_high": 10.5}, MET, False),
    ("MAPE < 10%", {"mape": 11.0}, NOT_MET, None),
    # higher is better, units normalised
    ("throughput >= 1000 req/s", {"throughput_rps": 3500.0}, MET, None),
    ("Throughput: 1000 req/sec", {"throughput_rps": 900.0, "throughput_rps_ci_low": 850.0,
                                  "throughput_rps_ci_high": 1100.0}, NOT_MET, False),
    ("R² > 0.7", {"r2": 0.8, "r2_ci_low": 0.72, "r2_ci_high": 0.85}, MET, True),
])
def test_directions_and_units(line: str, metrics: dict[str, float], status: str,
                              worst: bool | None) -> None:
    row = one(line, metrics)
    assert row.status == status and row.worst_bound_met is worst


@pytest.mark.parametrize("metrics", [
    {}, {"recall": 0.8}, {"precision": float("nan")}, {"precision": None},
])
def test_not_measured(metrics: dict[str, float]) -> None:
    row = one("precision >= 0.9", metrics, source="exp-001")
    assert row.status == NOT_MEASURED and row.value is None and row.source is None


def test_partial_or_infinite_ci_is_no_ci() -> None:
    assert one("recall >= 0.5", {"recall": 0.6, "recall_ci_low": 0.55}).worst_bound_met is None
    row = one("recall >= 0.5", {"recall": 0.6, "recall_ci_low": 0.5, "recall_ci_high": math.inf})
    assert row.ci_low is None and row.worst_bound_met is None


def test_numpy_scalars_are_numbers() -> None:
    row = one("precision >= 0.9", {"precision": np.float32(0.95)})
    assert row.status == MET and isinstance(row.value, float)


@pytest.mark.parametrize(("metrics", "match"), [
    ({"precision": "0.9"}, r"exp-3:precision: metric 'precision' must be a number, got '0\.9'"),
    ({"precision": True}, r"must be a number, got True"),
    ({"precision": 0.9, "precision_ci_low": 0.95, "precision_ci_high": 0.85},
     r"exp-3:precision: CI low bound 0\.95 exceeds high bound 0\.85"),
])
def test_bad_metric_values(metrics: dict[str, object], match: str) -> None:
    with pytest.raises(RecordError, match=match) as info:
        one("precision >= 0.9", metrics, source="exp-3")
    assert isinstance(info.value, SpecweaveError)


def test_lift_metrics_higher_is_better() -> None:
    base = {"random-uniform": 0.5, "random-prior": 0.6, "majority": 0.8}
    out = lift_metrics("accuracy", 0.9, base, lower_is_better=False)
    assert out["lift_best_baseline_pct"] == pytest.approx(12.5)
    assert out["lift_best_baseline_x"] == pytest.approx(0.9 / 0.8)
    assert out["lift_random_baseline_x"] == pytest.approx(1.5)  # best of random-*: 0.6
    assert out["lift_random_uniform_baseline_x"] == pytest.approx(1.8)
    assert out["lift_majority_baseline_pct"] == pytest.approx(12.5)
    assert out["accuracy_lift_random_baseline_pct"] == pytest.approx(50.0)
    assert out["accuracy_lift_best_baseline_x"] == out["lift_best_baseline_x"]
    named = lift_metrics("accuracy", 0.9, base, lower_is_better=False, primary=False)
    assert named and all(k.startswith("accuracy_lift_") for k in named)


def test_lift_metrics_lower_is_better() -> None:
    out = lift_metrics("rmse", 40.0, {"mean": 80.0, "median": 100.0}, lower_is_better=True)
    assert out["lift_best_baseline_pct"] == pytest.approx(50.0)
    assert out["lift_best_baseline_x"] == pytest.approx(2.0)
    assert out["lift_median_baseline_pct"] == pytest.approx(60.0)
    assert out["rmse_lift_mean_baseline_x"] == pytest.approx(2.0)
    worse = lift_metrics("rmse", 120.0, {"mean": 80.0}, lower_is_better=True)
    assert worse["lift_mean_baseline_pct"] == pytest.approx(-50.0)


def test_lift_ci_worse_bound_maps_to_worse_lift() -> None:
    up = lift_metrics("f1", 0.6, {"majority": 0.4}, lower_is_better=False, ci=(0.5, 0.7))
    assert (up["lift_best_baseline_pct_ci_low"], up["lift_best_baseline_pct_ci_high"]) == \
        pytest.approx((25.0, 75.0))
    down = lift_metrics("rmse", 40.0, {"mean": 80.0}, lower_is_better=True, ci=(32.0, 50.0))
    assert (down["lift_mean_baseline_x_ci_low"], down["lift_mean_baseline_x_ci_high"]) == \
        pytest.approx((1.6, 2.5))
    assert (down["rmse_lift_mean_baseline_pct_ci_low"],
            down["rmse_lift_mean_baseline_pct_ci_high"]) == pytest.approx((37.5, 60.0))
    (row,) = check_targets(parse_targets("lift over best baseline >= 40%"), down)
    assert row.status == MET and row.worst_bound_met is False  # a lift: low bound is the worse


def test_lift_skips_zero_and_meaningless_bases() -> None:
    out = lift_metrics("r2", 0.5, {"mean": 0.0, "median": -0.2}, lower_is_better=False)
    assert "lift_mean_baseline_pct" not in out and "lift_mean_baseline_x" not in out
    assert out["lift_median_baseline_pct"] == pytest.approx(350.0)
    assert "lift_median_baseline_x" not in out  # ratio to a negative base means nothing
    assert "lift_best_baseline_pct" not in out  # the best baseline (mean) scores 0
    assert lift_metrics("log_loss", float("nan"), {"majority": 0.7}, lower_is_better=True) == {}
    finite = lift_metrics("log_loss", 0.3, {"majority": math.inf, "random-prior": 0.6},
                          lower_is_better=True)
    assert "lift_majority_baseline_x" not in finite and finite["lift_best_baseline_x"] == 2.0


def test_previous_model_is_not_a_baseline() -> None:
    out = lift_metrics("roc_auc", 0.9, {"majority": 0.5, "previous-model": 0.85},
                       lower_is_better=False)
    assert out["lift_best_baseline_x"] == pytest.approx(1.8)
    assert out["lift_previous_model_pct"] == pytest.approx(100 * 0.05 / 0.85)


@pytest.mark.parametrize("line", [
    "lift over best baseline >= 20%",
    "Accuracy: Better than random baseline by 3x",
    "1.5x better than majority baseline",
    "accuracy lift over majority baseline >= 10%",
    "beat best baseline by 20%",
    "lift >= 5% over previous model",
    "Better than the rule baseline by 2x",
    "lift over random uniform baseline >= 1.5x",
])
def test_lift_keys_match_parsed_targets(line: str) -> None:
    (target,) = parse_targets(line)
    base = {"random-uniform": 0.5, "random-prior": 0.55, "majority": 0.6, "rule": 0.62,
            "previous-model": 0.7}
    out = lift_metrics("accuracy", 0.95, base, lower_is_better=False, ci=(0.93, 0.97))
    assert target.metric_key in out
    (row,) = check_targets([target], out, source="exp-020-evaluation")
    assert row.status != NOT_MEASURED and row.worst_bound_met is not None


def test_lift_keys_for_regression_baselines() -> None:
    (target,) = parse_targets("RMSE improves on the baseline by 15%")
    out = lift_metrics("rmse", 30.0, {"mean": 50.0, "median": 45.0}, lower_is_better=True)
    (row,) = check_targets([target], out)
    assert row.status == MET and row.value == pytest.approx(100 * 15 / 45)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"metric": "ROC AUC"}, r"lower snake case, got 'ROC AUC'"),
    ({"ci": (0.9, 0.8)}, r"low <= high"),
    ({"ci": (0.8,)}, r"\(low, high\) pair"),
    ({"value": "0.9"}, r"accuracy value must be a number"),
    ({"baselines": {"majority": "x"}}, r"baseline 'majority' accuracy must be a number"),
    ({"baselines": {"--": 0.5}}, r"baseline name '--' has no letters"),
])
def test_lift_metrics_bad_input(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"metric": "accuracy", "value": 0.9, "baselines": {"majority": 0.5},
                               "lower_is_better": False}
    with pytest.raises(RecordError, match=match):
        lift_metrics(**{**args, **kwargs})  # type: ignore[arg-type]


def _rows() -> list[GateRow]:
    targets = [
        *parse_targets("precision >= 0.99"), *parse_targets("RMSE < $50"),
        *parse_targets("latency_p99 < 100 ms"), *parse_targets("throughput >= 1000 req/s"),
        *parse_targets("lift over best baseline >= 20%"), *parse_targets("MAPE < 10%"),
    ]
    metrics = {"precision": 0.992, "precision_ci_low": 0.985, "precision_ci_high": 0.997,
               "rmse": 42.5, "latency_p99_ms": 35.2, "throughput_rps": 850.0,
               "lift_best_baseline_pct": 31.0, "lift_best_baseline_pct_ci_low": 22.0,
               "lift_best_baseline_pct_ci_high": math.inf}
    return check_targets(targets, metrics, source="exp-012-evaluation")


def test_gate_passed() -> None:
    rows = _rows()
    assert [r.status for r in rows] == [MET, MET, MET, NOT_MET, MET, NOT_MEASURED]
    assert not gate_passed(rows) and not gate_passed(rows, allow_not_measured=True)
    met_or_missing = [r for r in rows if r.status != NOT_MET]
    assert not gate_passed(met_or_missing)
    assert gate_passed(met_or_missing, allow_not_measured=True)
    assert gate_passed([r for r in rows if r.status == MET])
    assert not gate_passed([]) and not gate_passed([], allow_not_measured=True)
    assert gate_verdict([]) == NO_TARGETS == "no targets"
    assert gate_verdict(rows) == "failed" and gate_verdict([r for r in rows if r.status == MET]) == "passed"


def test_render_gate() -> None:
    rows = _rows()
    text = render_gate(rows)
    for row in rows:
        assert f"`{row.target.render()}`" in text
    lines = text.splitlines()
    assert lines[0].startswith("| target | measured | 95% CI | status | CI worse bound meets? |")
    assert len([ln for ln in lines if ln.startswith("| `")]) == len(rows)
    assert lines[-1] == "4 of 6 targets met; 1 not measured"
    assert "| `precision >= 0.99` | 0.992 | [0.985, 0.997] | ✅ met | no |" in text
    assert "| `RMSE < $50` | $42.5 | — | ✅ met | — |" in text
    assert "| 35.2 ms |" in text and "| 850 req/s |" in text and "❌ not met" in text
    assert "| `MAPE < 10%` | — | — | ⏳ not measured | — |" in text
    assert "| 31% |" in text
    assert render_gate([]).startswith("No targets:") and "not passed" in render_gate([])


def test_gate_json_round_trips() -> None:
    rows = _rows()
    data = gate_json(rows)
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    first = data[0]
    assert first == {"target": "precision >= 0.99", "metric": "precision", "op": ">=",
                     "threshold": 0.99, "unit": "", "relative_to": None,
                     "metric_key": "precision", "status": "met", "value": 0.992,
                     "ci_low": 0.985, "ci_high": 0.997, "worst_bound_met": False,
                     "source": "exp-012-evaluation:precision"}
    assert data[4]["metric_key"] == "lift_best_baseline_pct" and data[5]["value"] is None
    inf_row = GateRow(Target("log_loss", "<", 1.0), NOT_MET, math.inf)
    assert gate_json([inf_row])[0]["value"] is None


def test_gate_row_rejects_unknown_status() -> None:
    with pytest.raises(RecordError, match=r"status must be one of .*got 'passed'"):
        GateRow(Target("recall", ">=", 0.5), "passed")


def test_workflow_lift_lines_compare_with_the_baseline_they_name() -> None:
    # A model at 0.64 accuracy: 3.2x the random baselines' best (0.2), 1.07x the majority (0.6).
    base = {"random-uniform": 0.2, "random-prior": 0.18, "majority": 0.6}
    metrics = {"roc_auc": 0.9, "accuracy": 0.64,
               **lift_metrics("accuracy", 0.64, base, lower_is_better=False, primary=False)}
    over_random = one("- Accuracy: Better than random baseline by 3x", metrics)
    assert (over_random.status, over_random.target.baseline) == (MET, "random")
    assert over_random.value == pytest.approx(3.2)
    over_best = one("- Accuracy: Better than best baseline by 3x", metrics)
    assert (over_best.status, over_best.value) == (NOT_MET, pytest.approx(0.64 / 0.6))
