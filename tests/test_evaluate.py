"""Tests for ``specweave_ray.evaluate._scores``: metrics, bootstrap CIs, thresholds, errors, plots, report."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pandas as pd
import pytest
import sklearn.metrics as skm
from sklearn.preprocessing import label_binarize

from specweave_ray.evaluate import _scores as ev
from specweave_ray.evaluate._bootstrap import weighted_metrics
from specweave_ray.exceptions import ConfigError, DataError
from specweave_ray.spec._grammar import Target

CI_METRICS_BINARY = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss",
                     "positive_rate", "predicted_positive_rate")


def _binary(n: int, seed: int, rate: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Labels and overlapping, tie-rich probabilities (rounded to 2 decimals)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(int)
    p = 1 / (1 + np.exp(-(2.0 * y - 1.0 + rng.normal(0, 1.2, n))))
    return y, np.round(p, 2)


def _multiclass(n: int, seed: int, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k)) + 1.5 * np.eye(k)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba


def _regression(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.gamma(2.0, 50.0, n)
    return y, y + rng.normal(0, 20, n)


# --- score() against scikit-learn -------------------------------------------------------------
def test_score_binary_matches_sklearn(seed: int) -> None:
    y, p = _binary(2000, seed)
    got = ev.score(y, problem_type="classification", proba=np.c_[1 - p, p], threshold=0.4)
    lab = (p >= 0.4).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y, lab).ravel()
    want = {
        "accuracy": skm.accuracy_score(y, lab), "precision": skm.precision_score(y, lab),
        "recall": skm.recall_score(y, lab), "f1": skm.f1_score(y, lab),
        "roc_auc": skm.roc_auc_score(y, p), "pr_auc": skm.average_precision_score(y, p),
        "log_loss": skm.log_loss(y, np.c_[1 - p, p]), "tn": tn, "fp": fp, "fn": fn, "tp": tp,
        "positive_rate": y.mean(), "predicted_positive_rate": lab.mean(),
    }
    assert got.keys() == want.keys()
    for name, value in want.items():
        assert got[name] == pytest.approx(value, rel=1e-12), name
    one_d = ev.score(y, problem_type="classification", proba=p, threshold=0.4)
    assert one_d == got


def test_score_multiclass_matches_sklearn(seed: int) -> None:
    y, proba = _multiclass(1500, seed, k=4)
    got = ev.score(y, problem_type="classification", proba=proba)
    lab = proba.argmax(axis=1)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, lab))
    for name in ("precision", "recall", "f1"):
        want = getattr(skm, f"{name}_score")(y, lab, average="macro")
        assert got[name] == pytest.approx(want), name
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    assert got["pr_auc"] == pytest.approx(
        skm.average_precision_score(label_binarize(y, classes=range(4)), proba, average="macro"))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    assert "tp" not in got and "positive_rate" not in got


def test_score_regression_matches_sklearn_and_mape_is_percent(seed: int) -> None:
    y, pred = _regression(1000, seed)
    got = ev.score(y, problem_type="regression", pred=pred)
    assert got["rmse"] == pytest.approx(skm.root_mean_squared_error(y, pred))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert got["r2"] == pytest.approx(skm.r2_score(y, pred))
    assert got["mape"] == pytest.approx(100 * skm.mean_absolute_percentage_error(y, pred))
    assert got["mape_rows"] == 1000
    # rows with a true value of 0 are skipped, and the count says so
    got = ev.score([0.0, 100.0, 200.0], problem_type="regression", pred=[5.0, 110.0, 180.0])
    assert got["mape"] == pytest.approx(10.0)
    assert got["mape_rows"] == 2


def test_score_labels_only_classification() -> None:
    got = ev.score([0, 1, 1, 0], problem_type="classification", pred=[0, 1, 0, 0])
    assert got["recall"] == 0.5 and got["precision"] == 1.0
    assert "roc_auc" not in got and got["tp"] == 1


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"problem_type": "ranking", "pred": [1.0, 2.0]}, ConfigError, "unknown problem type 'ranking'"),
    ({"problem_type": "classification", "proba": [0.2, 0.8], "threshold": 1.5}, ConfigError,
     "threshold must lie"),
    ({"problem_type": "classification", "proba": [0.2, 0.8, 0.5]}, DataError, "shape"),
    ({"problem_type": "classification"}, DataError, "needs proba"),
    ({"problem_type": "classification", "proba": [1.2, 0.8]}, DataError, r"\[0, 1\]"),
    ({"problem_type": "regression", "pred": [1.0, np.nan]}, DataError, "NaN"),
    ({"problem_type": "regression"}, DataError, "needs pred"),
])
def test_score_rejects_bad_input(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        ev.score([0, 1], **kwargs)


def test_score_rejects_string_labels() -> None:
    with pytest.raises(DataError, match="integer-encoded"):
        ev.score(["no", "yes"], problem_type="classification", proba=[0.1, 0.9])


# --- the bootstrap's weighted kernels reproduce score() ---------------------------------------
@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_weighted_kernels_equal_sklearn_on_repeated_rows(kind: str, seed: int) -> None:
    if kind == "regression":
        y, pred = _regression(300, seed)
        kwargs = {"problem_type": "regression", "pred": pred}
    else:
        y, proba = _binary(300, seed) if kind == "binary" else _multiclass(300, seed)
        kwargs = {"problem_type": "classification", "proba": proba, "threshold": 0.45}
    d = ev._prepare(y, kwargs["problem_type"], kwargs.get("proba"), kwargs.get("pred"), 0.45)
    counts = np.random.default_rng(seed).integers(0, 4, y.size)
    counts[[0, 1]] = 1  # keep both classes of the two first rows
    if kind != "regression":
        counts[[np.flatnonzero(d.y == c)[0] for c in np.unique(d.y)]] = 1
    weighted = weighted_metrics(d, np.vstack([np.ones(y.size), counts]).astype(float))
    plain = ev.score(y, **kwargs)
    rows = np.repeat(np.arange(y.size), counts)
    repeated_kwargs = {k: (np.asarray(v)[rows] if k in ("proba", "pred") else v)
                       for k, v in kwargs.items()}
    repeated = ev.score(np.asarray(y)[rows], **repeated_kwargs)
    assert set(weighted) == set(plain) - {"tn", "fp", "fn", "tp", "mape_rows"}
    for name, values in weighted.items():
        assert values[0] == pytest.approx(plain[name], rel=1e-9, abs=1e-12), name
        assert values[1] == pytest.approx(repeated[name], rel=1e-9, abs=1e-12), name


# --- bootstrap_ci -----------------------------------------------------------------------------
def test_ci_contains_point_estimate_and_narrows_with_rows(seed: int) -> None:
    widths = []
    for n in (400, 10_000):
        y, p = _binary(n, seed)
        point = ev.score(y, problem_type="classification", proba=p)
        ci = ev.bootstrap_ci(y, problem_type="classification", proba=p, n_boot=300, seed=seed)
        assert set(ci) == {f"{m}_ci_{s}" for m in CI_METRICS_BINARY for s in ("low", "high")}
        for name in ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss"):
            assert ci[f"{name}_ci_low"] <= point[name] <= ci[f"{name}_ci_high"], (n, name)
        widths.append({m: ci[f"{m}_ci_high"] - ci[f"{m}_ci_low"] for m in ("roc_auc", "f1")})
    assert widths[1]["roc_auc"] < widths[0]["roc_auc"] / 2
    assert widths[1]["f1"] < widths[0]["f1"] / 2


def test_regression_ci_contains_point_estimate(seed: int) -> None:
    y, pred = _regression(2000, seed)
    y[:5] = 0.0
    point = ev.score(y, problem_type="regression", pred=pred)
    ci = ev.bootstrap_ci(y, problem_type="regression", pred=pred, n_boot=300, seed=seed)
    assert set(ci) == {f"{m}_ci_{s}" for m in ("rmse", "mae", "r2", "mape")
                       for s in ("low", "high")}
    for name in ("rmse", "mae", "r2", "mape"):
        assert ci[f"{name}_ci_low"] <= point[name] <= ci[f"{name}_ci_high"], name


def test_stratified_bootstrap_on_rare_positives_stays_finite(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = np.zeros(5000, dtype=int)
    y[rng.choice(5000, 10, replace=False)] = 1  # 0.2% positives
    p = np.clip(rng.random(5000) * 0.5 + 0.45 * y, 0, 1)
    ci = ev.bootstrap_ci(y, problem_type="classification", proba=p, n_boot=500, seed=seed)
    assert all(math.isfinite(v) for v in ci.values()), ci
    # stratified: each resample keeps the 10 positives, so the positive rate never moves
    assert ci["positive_rate_ci_low"] == ci["positive_rate_ci_high"] == pytest.approx(0.002)


def test_multiclass_bootstrap_keys_and_finiteness(seed: int) -> None:
    y, proba = _multiclass(600, seed)
    ci = ev.bootstrap_ci(y, problem_type="classification", proba=proba, n_boot=200, seed=seed)
    assert set(ci) == {f"{m}_ci_{s}" for m in ("accuracy", "precision", "recall", "f1", "roc_auc",
                                                "pr_auc", "log_loss") for s in ("low", "high")}
    assert all(math.isfinite(v) for v in ci.values())


def test_bootstrap_is_deterministic_with_a_seed(seed: int) -> None:
    y, p = _binary(1000, seed)
    a = ev.bootstrap_ci(y, problem_type="classification", proba=p, n_boot=100, seed=seed)
    b = ev.bootstrap_ci(y, problem_type="classification", proba=p, n_boot=100, seed=seed)
    c = ev.bootstrap_ci(y, problem_type="classification", proba=p, n_boot=100, seed=seed + 1)
    assert a == b
    assert a != c


@pytest.mark.parametrize(("kwargs", "match"), [({"n_boot": 0}, "n_boot"), ({"alpha": 1.0}, "alpha")])
def test_bootstrap_rejects_bad_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ev.bootstrap_ci([0, 1], problem_type="classification", proba=[0.1, 0.9], **kwargs)


def test_evaluate_merges_score_ci_and_size(seed: int) -> None:
    y, p = _binary(500, seed)
    got = ev.evaluate(y, problem_type="classification", proba=p, threshold=0.3, n_boot=50,
                      seed=seed)
    assert got["n_test"] == 500 and got["threshold"] == 0.3
    assert got["tp"] == ev.score(y, problem_type="classification", proba=p, threshold=0.3)["tp"]
    assert "roc_auc_ci_low" in got and "tp_ci_low" not in got
    y, pred = _regression(100, seed)
    assert "threshold" not in ev.evaluate(y, problem_type="regression", pred=pred, n_boot=20)


# --- tune_threshold ---------------------------------------------------------------------------
# Flagging rows with score >= t:   t     0.95 0.9  0.8  0.7  0.6  0.5  0.4  0.3  0.2  0.1
#                          precision     1    1    1    .75  .8   .833 .714 .75  .667 .6
#                          recall        1/6  2/6  3/6  3/6  4/6  5/6  5/6  1    1    1
SCORES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
LABELS = [0, 0, 1, 0, 1, 1, 0, 1, 1, 1]


def test_tune_threshold_max_recall_meeting_precision() -> None:
    choice = ev.tune_threshold(LABELS, SCORES, targets=[Target("precision", ">=", 0.9)])
    assert (choice.threshold, choice.precision, choice.recall, choice.met) == (0.8, 1.0, 0.5, True)
    assert "precision >= 0.9" in choice.reason
    choice = ev.tune_threshold(LABELS, SCORES, targets=[Target("precision", ">=", 0.8)])
    assert choice.threshold == 0.5 and choice.recall == pytest.approx(5 / 6)
    assert list(choice.curve.columns) == ["threshold", "precision", "recall", "f1", "flagged_rate"]
    row = choice.curve.set_index("threshold").loc[0.5]
    assert row["flagged_rate"] == pytest.approx(0.6) and row["precision"] == pytest.approx(5 / 6)


def test_tune_threshold_recall_target_and_secondary_note() -> None:
    choice = ev.tune_threshold(LABELS, SCORES, targets=[Target("recall", ">=", 0.8)])
    assert choice.threshold == 0.5 and choice.precision == pytest.approx(5 / 6) and choice.met
    both = ev.tune_threshold(LABELS, SCORES, targets=[Target("recall", ">=", 0.8),
                                                       Target("precision", ">=", 0.9)])
    assert both.threshold == 0.8
    assert "recall >= 0.8 is NOT met" in both.reason


def test_tune_threshold_unreachable_target_reports_why() -> None:
    labels = [0, 0, 1, 0, 1, 1, 0, 1, 1, 0]  # the top-scored row is negative
    choice = ev.tune_threshold(labels, SCORES, targets=[Target("precision", ">=", 0.99)])
    assert not choice.met
    assert "no threshold reaches precision >= 0.99" in choice.reason
    # the best precision, 2/3, is reached at t=0.8 (recall 2/5) and t=0.5 (recall 4/5):
    # the tie goes to the higher recall
    assert choice.threshold == 0.5 and choice.precision == pytest.approx(2 / 3)
    assert choice.recall == pytest.approx(0.8)


def test_tune_threshold_falls_back_to_max_f1() -> None:
    choice = ev.tune_threshold(LABELS, SCORES)
    assert choice.threshold == 0.3 and choice.met
    assert choice.f1 == pytest.approx(2 * 0.75 / 1.75)
    assert choice.f1 == pytest.approx(choice.curve["f1"].max())
    fixed = ev.tune_threshold(LABELS, SCORES, default="fixed")
    assert fixed.threshold == 0.5 and fixed.recall == pytest.approx(5 / 6)


BREAST_CANCER_TARGETS = [Target("precision", ">=", 0.8), Target("recall", ">=", 0.7),
                         Target("f1", ">=", 0.75)]


def _breast_cancer_oof() -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold probabilities of a real (deliberately weak: two columns) model."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression())
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    return y, cross_val_predict(model, X[:, :2], y, cv=folds, method="predict_proba")[:, 1]


def test_several_threshold_targets_maximise_the_smallest_relative_slack(tmp_path) -> None:
    y, p = _breast_cancer_oof()
    choice = ev.tune_threshold(y, p, targets=BREAST_CANCER_TARGETS)
    edge = ev.tune_threshold(y, p, targets=BREAST_CANCER_TARGETS[:1])  # one target: today's rule
    assert edge.precision < 0.81  # the single-target rule sits at the edge of precision >= 0.8
    slacks = [choice.precision / 0.8 - 1, choice.recall / 0.7 - 1, choice.f1 / 0.75 - 1]
    assert choice.met and choice.slack == pytest.approx(min(slacks)) and choice.slack > 0.1
    assert choice.precision > 0.9 and "relative slack" in choice.reason
    curve = choice.curve
    meets = (curve["precision"] >= 0.8) & (curve["recall"] >= 0.7) & (curve["f1"] >= 0.75)
    assert choice.slack == pytest.approx(curve.loc[meets, "min_slack"].max())
    edge_slack = curve.set_index("threshold").loc[edge.threshold, "min_slack"]
    assert choice.slack > edge_slack + 0.1
    md = ev.render_report({"roc_auc": 0.9}, problem_type="classification", threshold=choice)
    assert f"{choice.slack:+.1%}" in md
    (path,) = [q for q in ev.write_plots(tmp_path, y, problem_type="classification", proba=p,
                                         threshold=choice.threshold, curve=curve)
               if q.name == "threshold.png"]
    assert path.stat().st_size > 1000
    # nothing meets every target: today's single-target rule, reported as not met
    hard = ev.tune_threshold(y, p, targets=[Target("precision", ">=", 0.99), Target("recall", ">=", 0.99)])
    assert not hard.met and "no threshold meets all of" in hard.reason and hard.slack < 0
    assert hard.threshold == ev.tune_threshold(y, p, targets=[Target("precision", ">=", 0.99)]).threshold


def test_tune_threshold_rejects_bad_input() -> None:
    with pytest.raises(DataError, match="both present"):
        ev.tune_threshold([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ConfigError, match="default must be"):
        ev.tune_threshold(LABELS, SCORES, default="youden")


# --- error_analysis ---------------------------------------------------------------------------
def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "amount": rng.gamma(2.0, 30.0, n),
        "channel": pd.array(rng.choice(["web", "app", "shop"], n), dtype="string"),
        "tier": pd.Categorical(rng.choice(["gold", "silver"], n)),
        "is_new": rng.random(n) < 0.3,
        "when": pd.date_range("2024-01-01", periods=n, freq="h"),
    }, index=pd.RangeIndex(1000, 1000 + n))
    frame.iloc[rng.choice(n, 10, replace=False), 1] = pd.NA
    return frame


def test_error_analysis_binary_worst_rows_and_segments(seed: int) -> None:
    X = _frame(400, seed)
    y, p = _binary(400, seed)
    got = ev.error_analysis(X, y, problem_type="classification", proba=p, threshold=0.4, top=5)
    json.dumps(got, allow_nan=False)  # JSON-serialisable as is
    p_true = np.where(y == 1, p, 1 - p)
    loss = -np.log(np.clip(p_true, np.finfo(float).eps, None))
    assert got["worst_by"] == "log_loss"
    assert [r["log_loss"] for r in got["worst"]] == pytest.approx(np.sort(loss)[::-1][:5])
    first = got["worst"][0]
    i = first["row"] - 1000
    assert first["y_true"] == y[i] and first["amount"] == pytest.approx(X["amount"].iloc[i])
    assert first["when"] == X["when"].iloc[i].isoformat()
    assert set(got["segments"]) == {"channel", "tier", "is_new"}
    lab = (p >= 0.4).astype(int)
    frame = pd.DataFrame({"channel": X["channel"].to_numpy(), "y": y, "lab": lab})
    segs = {s["segment"]: s for s in got["segments"]["channel"]}
    assert got["segment_counts"]["channel"] == 4 and segs[None]["rows"] == 10
    for key, group in frame.dropna().groupby("channel"):
        s = segs[key]
        assert s["rows"] == len(group) and s["positives"] == group["y"].sum()
        assert s["precision"] == pytest.approx(skm.precision_score(group["y"], group["lab"]))
        assert s["recall"] == pytest.approx(skm.recall_score(group["y"], group["lab"]))
        assert s["f1"] == pytest.approx(skm.f1_score(group["y"], group["lab"]))
    capped = ev.error_analysis(X, y, problem_type="classification", proba=p, max_segments=2)
    assert [s["rows"] for s in capped["segments"]["channel"]] == \
        sorted((s["rows"] for s in segs.values()), reverse=True)[:2]


def test_error_analysis_regression(seed: int) -> None:
    X = _frame(300, seed)
    y, pred = _regression(300, seed)
    got = ev.error_analysis(X, y, problem_type="regression", pred=pred, top=3)
    json.dumps(got, allow_nan=False)
    err = np.abs(pred - y)
    assert [r["abs_error"] for r in got["worst"]] == pytest.approx(np.sort(err)[::-1][:3])
    for key, group in pd.DataFrame({"t": X["tier"], "y": y, "p": pred}).groupby("t", observed=True):
        s = next(s for s in got["segments"]["tier"] if s["segment"] == key)
        assert s["rmse"] == pytest.approx(skm.root_mean_squared_error(group["y"], group["p"]))
        assert s["mae"] == pytest.approx(skm.mean_absolute_error(group["y"], group["p"]))
    with pytest.raises(DataError, match="X has 299 rows"):
        ev.error_analysis(X.iloc[1:], y, problem_type="regression", pred=pred)


# --- plots and report -------------------------------------------------------------------------
def _assert_pngs(paths: list, names: list[str]) -> None:
    assert [p.name for p in paths] == names
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 1000


def test_write_plots_binary_multiclass_regression(tmp_path, seed: int) -> None:
    had_pyplot = "matplotlib.pyplot" in sys.modules
    y, p = _binary(500, seed)
    curve = ev.tune_threshold(y, p).curve
    paths = ev.write_plots(tmp_path / "bin", y, problem_type="classification", proba=p,
                           threshold=0.4, curve=curve)
    _assert_pngs(paths, ["roc.png", "pr.png", "confusion_matrix.png", "calibration.png",
                         "threshold.png"])
    y, proba = _multiclass(300, seed)
    paths = ev.write_plots(tmp_path / "multi", y, problem_type="classification", proba=proba)
    _assert_pngs(paths, ["confusion_matrix.png", "roc.png"])
    y, pred = _regression(300, seed)
    paths = ev.write_plots(tmp_path / "reg", y, problem_type="regression", pred=pred)
    _assert_pngs(paths, ["residuals.png", "predicted_vs_actual.png"])
    assert ("matplotlib.pyplot" in sys.modules) == had_pyplot  # no global backend touched


def test_render_report_has_ci_baselines_threshold_errors_and_plots(seed: int) -> None:
    y, p = _binary(800, seed)
    metrics = ev.evaluate(y, problem_type="classification", proba=p, threshold=0.4, n_boot=50)
    baselines = {"majority": ev.score(y, problem_type="classification", proba=np.zeros(y.size)),
                 "random_prior": {"roc_auc": 0.5, "f1": 0.3}}
    choice = ev.tune_threshold(y, p, targets=[Target("precision", ">=", 0.8)])
    errors = ev.error_analysis(_frame(800, seed), y, problem_type="classification", proba=p,
                               top=3)
    md = ev.render_report(metrics, problem_type="classification", threshold=choice,
                          baselines=baselines, previous={"roc_auc": 0.7},
                          errors=errors, imbalance_note="Stratified split; class_weight=balanced.",
                          plots=["roc.png", "pr.png"])
    header = "| metric | value | 95% CI | vs majority | vs random_prior | vs previous best |"
    assert header in md
    roc_line = next(line for line in md.splitlines() if line.startswith("| roc_auc |"))
    assert f"{metrics['roc_auc_ci_low']:.4f}, {metrics['roc_auc_ci_high']:.4f}]" in roc_line
    delta = metrics["roc_auc"] - 0.5
    assert f"0.5000 (Δ {delta:+.4f})" in roc_line and "0.7000 (Δ" in roc_line
    assert "lower is better for log_loss" in md
    assert "## Decision threshold" in md and choice.reason in md
    table = md.split("| threshold | precision | recall | f1 | flagged rate |")[1].split("\n\n")[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert 6 <= len(rows) <= 13 and sum("**" in r for r in rows) == 1
    assert "Stratified split; class_weight=balanced." in md
    assert "### Worst-predicted rows (by log_loss)" in md and "### Segments of `channel`" in md
    assert "(missing)" in md
    assert "![roc](roc.png)" in md and "![pr](pr.png)" in md
    assert "| actual 1 |" in md


def test_tradeoff_rows_span_the_curve() -> None:
    from specweave_ray.evaluate._plots import tradeoff_rows

    rows = tradeoff_rows(20_000, 15_000)
    assert rows[0] == 0 and rows[-1] == 19_999 and 15_000 in rows and 15_001 in rows
    assert len(rows) <= 13
    assert tradeoff_rows(3, 0) == [0, 1, 2]


# --- edge cases -------------------------------------------------------------------------------
def test_one_class_test_set_degrades_gracefully(tmp_path) -> None:
    y, p = np.zeros(60, dtype=int), np.linspace(0.01, 0.99, 60)
    got = ev.score(y, problem_type="classification", proba=p)
    assert math.isnan(got["roc_auc"]) and got["fp"] == 30
    ci = ev.bootstrap_ci(y, problem_type="classification", proba=p, n_boot=20)
    assert math.isnan(ci["roc_auc_ci_low"]) and math.isfinite(ci["accuracy_ci_low"])
    paths = ev.write_plots(tmp_path, y, problem_type="classification", proba=p)
    assert [path.name for path in paths] == ["confusion_matrix.png"]


def test_error_analysis_labels_only_and_multiclass(seed: int) -> None:
    X = pd.DataFrame({"y_true": ["a", "b", "a", "b"], "group": ["x", "x", "y", "y"]})
    got = ev.error_analysis(X, [0, 1, 1, 2], problem_type="classification", pred=[0, 2, 1, 2],
                            top=1)
    assert got["worst_by"] == "misclassified"
    assert got["worst"][0]["row"] == 1 and got["worst"][0]["feature_y_true"] == "b"
    seg = {s["segment"]: s for s in got["segments"]["group"]}
    assert seg["x"]["accuracy"] == 0.5
    assert seg["y"]["f1"] == pytest.approx(skm.f1_score([1, 2], [1, 2], average="macro"))


def test_tune_threshold_accepts_predict_proba_output() -> None:
    proba = np.column_stack([1 - np.asarray(SCORES), SCORES])
    assert ev.tune_threshold(LABELS, proba).threshold == ev.tune_threshold(LABELS, SCORES).threshold


# --- lift: paired bootstrap, expected scores of random baselines -------------------------------
def test_lift_ci_is_paired_and_random_baselines_count_by_their_expected_score(increment, monkeypatch) -> None:
    from sklearn.datasets import load_breast_cancer
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from specweave_ray.evaluate._paired import paired_samples
    from specweave_ray.evaluate.gate import lift_metrics
    from specweave_ray.evaluate.holdout import RANDOM_DRAWS, _baseline_scores
    from specweave_ray.workspace.records import track_experiment

    monkeypatch.setenv("SPECWEAVE_MLFLOW", "0")
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    y_tr, y_te = y_tr.to_numpy(), y_te.to_numpy()
    rows = []
    for name, params in (("random-prior", {"strategy": "stratified", "random_state": 0}),
                         ("majority", {"strategy": "most_frequent"})):
        with track_experiment(f"{name}-trial", increment=increment, kind="trial",
                              model="sklearn.dummy.DummyClassifier") as exp:
            exp.log_params(params)
        rows.append({"kind": "baseline", "record": exp.id, "candidate": name})
    baselines, outputs = _baseline_scores(increment, {"rows": rows}, X_train=X_tr, y_train=y_tr, X_test=X_te,
                                          y_test=y_te, problem=ev.problems.get("classification"), threshold=0.5,
                                          fp="", seed=0)
    draws = [DummyClassifier(strategy="stratified", random_state=k).fit(X_tr, y_tr).predict_proba(X_te)
             for k in range(RANDOM_DRAWS)]
    f1s = [ev.score(y_te, problem_type="classification", proba=p)["f1"] for p in draws]
    assert baselines["random-prior"]["expected_over_draws"] == RANDOM_DRAWS == len(outputs["random-prior"])
    assert baselines["random-prior"]["f1"] == pytest.approx(np.mean(f1s)) and max(f1s) > np.mean(f1s) + 0.01
    assert len(outputs["majority"]) == 1 and "f1_ci_low" in baselines["majority"]

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X_tr, y_tr)
    kw = {"proba": model.predict_proba(X_te), "threshold": 0.5}
    ours, refs = paired_samples(y_te, problem_type="classification", metric="f1", model=kw,
                                references={**outputs, "itself": [kw]}, n_boot=300, seed=0)
    assert ours.shape == refs["random-prior"].shape == (300,)
    np.testing.assert_array_equal(ours, refs["itself"])  # the same rows: a lift over itself is exactly 0
    f1 = ev.score(y_te, problem_type="classification", **kw)["f1"]
    lifts = lift_metrics("f1", f1, {n: m["f1"] for n, m in baselines.items()} | {"itself-baseline": f1},
                         lower_is_better=False, samples=(ours, refs | {"itself-baseline": refs["itself"]}))
    assert (lifts["lift_itself_baseline_pct_ci_low"], lifts["lift_itself_baseline_pct_ci_high"]) == (0.0, 0.0)
    # the random reference is the expected score over the draws, its CI from the same resamples
    assert lifts["lift_random_baseline_x"] == pytest.approx(f1 / np.mean(f1s))
    expected = np.percentile(ours / refs["random-prior"], [2.5, 97.5])
    assert (lifts["lift_random_baseline_x_ci_low"], lifts["lift_random_baseline_x_ci_high"]) == \
        pytest.approx(tuple(expected))
    # unpaired (the model's CI over a fixed base), the lift over itself would look uncertain
    ci = (float(np.percentile(ours, 2.5)), float(np.percentile(ours, 97.5)))
    unpaired = lift_metrics("f1", f1, {"itself-baseline": f1}, lower_is_better=False, ci=ci)
    assert unpaired["lift_itself_baseline_pct_ci_high"] - unpaired["lift_itself_baseline_pct_ci_low"] > 1.0
