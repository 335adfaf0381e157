"""T-006 for forecasts: the last ``horizon`` points of every series, forecast once from the rest.

The chosen model (the sweep's best, refitted on every training point) and every baseline
(refitted here on the same points) forecast each series' held-out window. Reported: mape, smape
(M4, 0–200), mase (each series' MAE over its in-sample seasonal-naive MAE; the seasonality used
is stored as ``mase_seasonality``), rmse, mae and bias, each with a 95% CI that resamples series
(the unit a forecast is made for; lifts over the baselines use the same resamples, paired);
the error by horizon step (``by_step.csv``, a plot); the prediction intervals at 80% and 95%
where the model gives them (a statistical model's own or statsforecast's conformal ones, whichever
covered closer to nominal on backtest windows of the training part, :func:`choose_intervals`; for
the global GBM split-conformal ones from backtest windows of the training part, scores pooled over
series after scaling each by its level),
with their measured coverage of the test window, on which they were never calibrated; the
residual analysis of the chosen model (its one-step in-sample residuals on at most
``RESIDUAL_SERIES`` series: Ljung–Box per series, the share that look like white noise, a
residual plot); per-series metrics (``per_series.csv``); and a forecast plot of a few series.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from specweave_ray._fs import atomic_write_json
from specweave_ray.evaluate.gate import check_targets, gate_json, lift_metrics, render_gate
from specweave_ray.metrics import FORECAST_METRICS, get_metric
from specweave_ray.problems import ProblemType
from specweave_ray.problems.timeseries import SERIES, TIME, forecast_info
from specweave_ray.workspace.increment import Increment
from specweave_ray.workspace.records import read_record, track_experiment

__all__ = ["choose_intervals", "evaluate_forecasts", "ljung_box_lags", "residual_diagnostics", "series_table", "table_scores"]

REPORTED = (*FORECAST_METRICS, "bias")
LEVELS = (80, 95)
PLOTTED_SERIES = 4
CONFORMAL_WINDOWS = 6   # backtest windows of the GBM's conformal scores (fewer when the history is short)
# A statistical model's intervals: its own or statsforecast's conformal ones, whichever covers
# closer to 80/95% on up to INTERVAL_BACKTESTS windows of the training part (never the test
# window), the conformal ones from up to STATS_CONFORMAL_WINDOWS windows of each series' history
INTERVAL_BACKTESTS = 3
STATS_CONFORMAL_WINDOWS = 4
RESIDUAL_SERIES = 30    # the residual analysis refits and tests at most this many series (the first ones)


def _import(path: str) -> type:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def series_table(y: np.ndarray, pred: np.ndarray, ids: np.ndarray, scales: Mapping[Any, float]) -> pd.DataFrame:
    """Per series: the sums every pooled metric is made of, and its own MASE."""
    err = pred - y
    frame = pd.DataFrame({"series": ids, "n": 1.0, "abs": np.abs(err), "sq": err ** 2, "err": err,
                          "ape": np.where(y != 0, np.abs(err) / np.where(y != 0, np.abs(y), 1.0), 0.0),
                          "ape_n": (y != 0).astype(float),
                          "sape": np.where(np.abs(y) + np.abs(pred) > 0,
                                           np.abs(err) / np.maximum(np.abs(y) + np.abs(pred), 1e-300), 0.0)})
    table = frame.groupby("series", sort=False).sum()
    table["scale"] = [scales.get(s, np.nan) for s in table.index]
    table["mase"] = table["abs"] / table["n"] / table["scale"]
    return table


def table_scores(table: pd.DataFrame, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every metric from a :func:`series_table`, for each row of ``weights`` (resampled series
    counts, ``(draws, series)``; None: each series once). Equal to ``metrics.forecast_scores``."""
    w = np.ones((1, len(table))) if weights is None else np.asarray(weights, dtype=np.float64)
    col = {c: table[c].to_numpy(dtype=np.float64) for c in table.columns}
    n = w @ col["n"]
    finite = np.isfinite(col["mase"])
    wf = w[:, finite]
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"mape": 100.0 * (w @ col["ape"]) / (w @ col["ape_n"]), "smape": 200.0 * (w @ col["sape"]) / n,
                "rmse": np.sqrt((w @ col["sq"]) / n), "mae": (w @ col["abs"]) / n, "bias": (w @ col["err"]) / n,
                "mase": (wf @ col["mase"][finite]) / wf.sum(axis=1)}


def _with_ci(table: pd.DataFrame, draws: np.ndarray) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    point = {k: float(v[0]) for k, v in table_scores(table).items()}
    boot = table_scores(table, draws)
    out = dict(point)
    for name, values in boot.items():
        finite = values[np.isfinite(values)]
        if len(finite):
            out[f"{name}_ci_low"], out[f"{name}_ci_high"] = (float(q) for q in np.quantile(finite, [0.025, 0.975]))
    return out, boot


def _steps(X: pd.DataFrame) -> np.ndarray:
    """Each row's step within its series' window (1 … horizon)."""
    order = np.lexsort((X[TIME].to_numpy(), pd.factorize(X[SERIES].to_numpy())[0]))
    ranks = np.empty(len(X), dtype=np.int64)
    ranks[order] = X.iloc[order].groupby(SERIES, sort=False).cumcount().to_numpy() + 1
    return ranks


def _by_step(y: np.ndarray, preds: Mapping[str, np.ndarray], steps: np.ndarray) -> pd.DataFrame:
    rows = []
    for step in np.unique(steps):
        mask = steps == step
        row: dict[str, Any] = {"step": int(step)}
        for name, p in preds.items():
            e = p[mask] - y[mask]
            row[f"{name}_mae"] = float(np.mean(np.abs(e)))
            denom = np.abs(y[mask]) + np.abs(p[mask])
            row[f"{name}_smape"] = float(200 * np.mean(np.where(denom > 0, np.abs(e) / np.maximum(denom, 1e-300), 0)))
        rows.append(row)
    return pd.DataFrame(rows)


def _intervals(model: Any, X_test: pd.DataFrame, y: np.ndarray) -> tuple[dict[str, float], pd.DataFrame | None, str]:
    """Coverage of the model's own 80/95% intervals on the test window, or why there are none."""
    future = X_test if getattr(model, "exogenous_", None) else None
    try:
        fc = model.forecast(int(_steps(X_test).max()), X_future=future, level=list(LEVELS))
    except Exception as err:  # noqa: BLE001 - intervals are extra; a model without them is a note
        return {}, None, f"no intervals: {type(err).__name__}: {err}"
    if not all(f"yhat-lo-{lv}" in fc.columns for lv in LEVELS):
        return {}, fc, f"{type(model).__name__} gives no prediction intervals"
    keyed = fc.set_index([SERIES, TIME])
    idx = pd.MultiIndex.from_arrays([X_test[SERIES].to_numpy(), pd.DatetimeIndex(X_test[TIME])])
    out = {}
    for lv in LEVELS:
        lo = keyed[f"yhat-lo-{lv}"].reindex(idx).to_numpy(dtype=np.float64)
        hi = keyed[f"yhat-hi-{lv}"].reindex(idx).to_numpy(dtype=np.float64)
        out[f"coverage_{lv}"] = float(np.mean((y >= lo) & (y <= hi)))
        out[f"interval_width_{lv}"] = float(np.mean(hi - lo))
    own = getattr(model, "conformal_scores_", None) is None
    return out, fc, "the model's own intervals (statsforecast)" if own else "split-conformal intervals"


def _first_origin(model: Any) -> int:
    """The points every backtest origin keeps: two seasons and a point (a seasonal family needs
    them), else a horizon and a point."""
    h, m = int(model.horizon_), int(model.season_length_)
    return 2 * m + 1 if m > 1 else h + 1


def _conformal_copy(model: Any, windows: int, X: pd.DataFrame, y: pd.Series) -> Any:
    """The chosen model's settings with ``windows`` conformal windows, fitted on the same points."""
    return type(model)(**{**model.get_params(), "conformal_windows": windows}).fit(X, y)


def _backtest_windows(model: Any) -> tuple[int, int] | None:
    """(backtest windows, conformal windows) the shortest training history allows, or None:
    every origin keeps two seasons and a point (a seasonal family needs them) or a horizon and a
    point, the conformal scores at least 2 windows and the backtest at least 1."""
    h = int(model.horizon_)
    shortest = int(model.history_.groupby(SERIES).size().min())
    spare = (shortest - _first_origin(model)) // h
    if spare < 3:
        return None
    conformal = min(STATS_CONFORMAL_WINDOWS, spare - 1)
    return min(INTERVAL_BACKTESTS, spare - conformal), conformal


def choose_intervals(model: Any) -> tuple[str, dict[str, float], str]:
    """A statistical model's own intervals or statsforecast's conformal ones, whichever covers
    closer to nominal (the sum of |coverage − level| at 80 and 95%) on backtest windows of its
    training history (:meth:`StatsForecaster.backtest_intervals`); ties keep its own.

    Returns:
        ``(method, metrics, note)``: ``"model"`` or ``"conformal"``; both backtest coverages
        (``interval_backtest_coverage_80_model`` …), the windows used (``interval_backtest_windows``,
        ``conformal_windows``); the sentence the evaluation prints.
    """
    windows = _backtest_windows(model)
    if windows is None:
        h = int(model.horizon_)
        need = _first_origin(model) + 3 * h
        return "model", {}, (f"the model's own intervals (conformal ones need {need} points a series: 2 seasons "
                             f"and 3 windows of {h}; the shortest series is shorter)")
    n_bt, n_cf = windows
    bt = model.backtest_intervals(n_bt, n_cf, level=LEVELS)
    y = bt["y"].to_numpy(dtype=np.float64)
    metrics: dict[str, float] = {"interval_backtest_windows": float(n_bt), "conformal_windows": float(n_cf)}
    distance = {}
    for method in ("model", "conformal"):
        gap = 0.0
        for lv in LEVELS:
            lo, hi = bt[f"{method}-lo-{lv}"].to_numpy(), bt[f"{method}-hi-{lv}"].to_numpy()
            cover = float(np.mean((y >= lo) & (y <= hi)))
            metrics[f"interval_backtest_coverage_{lv}_{method}"] = cover
            gap += abs(cover - lv / 100)
        distance[method] = gap
    chosen = "conformal" if distance["conformal"] < distance["model"] else "model"
    shown = {m: "/".join(f"{metrics[f'interval_backtest_coverage_{lv}_{m}']:.1%}" for lv in LEVELS)
             for m in ("model", "conformal")}
    how = ("statsforecast's conformal intervals (ConformalIntervals: the absolute errors of each series' "
           f"forecasts from its last {n_cf} origins)" if chosen == "conformal" else "the model's own intervals")
    note = (f"{how}, chosen on {n_bt} backtest windows of the training part (80/95% coverage there: own "
            f"{shown['model']}, conformal from {n_cf} windows {shown['conformal']})")
    return chosen, metrics, note


def ljung_box_lags(n: int, season_length: int) -> int:
    """Lags of the Ljung–Box test: 2 seasons for seasonal data, 10 otherwise, at most n/5
    (Hyndman & Athanasopoulos, FPP3 §5.4), at least 1."""
    wanted = 2 * season_length if season_length > 1 else 10
    return int(max(1, min(wanted, n // 5)))


def residual_diagnostics(fitted: pd.DataFrame, season_length: int) -> tuple[dict[str, float], pd.DataFrame]:
    """Ljung–Box (statsmodels ``acorr_ljungbox``) on each series' residuals ``y − fitted``.

    Returns:
        ``(metrics, per_series)``: ``ljung_box_white_noise_share`` (the share of series whose
        test does not reject white noise at 5%), ``ljung_box_median_p``, ``ljung_box_series``
        and ``ljung_box_lags`` (the median lags used), ``residual_mean``/``residual_std``
        (pooled, in the target's units); ``per_series`` one row a series (n, lags, statistic, p).
    """
    from statsmodels.stats.diagnostic import acorr_ljungbox

    rows = []
    for sid, part in fitted.groupby(SERIES, sort=False):
        r = (part["y"] - part["fitted"]).to_numpy(dtype=np.float64)
        r = r[np.isfinite(r)]
        if len(r) < 10 or np.std(r) == 0:
            continue
        lags = ljung_box_lags(len(r), season_length)
        test = acorr_ljungbox(r, lags=[lags])
        rows.append({"series": sid, "n": len(r), "lags": lags, "lb_stat": float(test["lb_stat"].iloc[0]),
                     "lb_pvalue": float(test["lb_pvalue"].iloc[0])})
    table = pd.DataFrame(rows, columns=["series", "n", "lags", "lb_stat", "lb_pvalue"])
    if table.empty:
        return {}, table
    resid = (fitted["y"] - fitted["fitted"]).to_numpy(dtype=np.float64)
    resid = resid[np.isfinite(resid)]
    return {"ljung_box_white_noise_share": float(np.mean(table["lb_pvalue"] >= 0.05)),
            "ljung_box_median_p": float(table["lb_pvalue"].median()), "ljung_box_series": float(len(table)),
            "ljung_box_lags": float(table["lags"].median()), "residual_mean": float(np.mean(resid)),
            "residual_std": float(np.std(resid))}, table


def _residuals(model: Any, X_train: pd.DataFrame, season_length: int
               ) -> tuple[dict[str, float], pd.DataFrame | None, pd.DataFrame | None, str]:
    """The chosen model's one-step in-sample residuals on the first ``RESIDUAL_SERIES`` series
    and their Ljung–Box tests, or why there are none."""
    series = list(pd.unique(X_train[SERIES]))[:RESIDUAL_SERIES]
    try:
        fitted = model.fitted_values(series)
    except Exception as err:  # noqa: BLE001 - diagnostics are extra; a model without them is a note
        return {}, None, None, f"no in-sample fitted values: {type(err).__name__}: {err}"
    if fitted is None or fitted.empty:
        return {}, None, None, f"{type(model).__name__} gives no in-sample fitted values"
    metrics, table = residual_diagnostics(fitted, season_length)
    if not metrics:
        return {}, fitted, None, "every series' residuals were too short (under 10) or constant to test"
    return metrics, fitted, table, (f"one-step in-sample residuals of the model refitted on the first "
                                    f"{len(series)} series' training histories")


def evaluate_forecasts(inc: Increment, spec: Any, comp: Mapping[str, Any], *, problem: ProblemType,
                       model: Any, best: Any, X_train: pd.DataFrame, y_train: pd.Series,
                       X_test: pd.DataFrame, y_test: pd.Series, seed: int = 0,
                       data_fingerprint: str | None = None, n_boot: int = 1000) -> tuple[dict[str, Any], list[Any]]:
    """Score the chosen forecaster and the baselines on every series' held-out window.

    Returns:
        ``(summary, gate_rows)`` as :func:`~specweave_ray.evaluate.evaluate_holdout`.
    """
    primary = comp["metric"]
    info = forecast_info(X_train)
    y = np.asarray(y_test, dtype=np.float64)
    ids = X_test[SERIES].to_numpy()
    series = pd.unique(ids)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(len(series), np.full(len(series), 1 / len(series)), size=n_boot).astype(np.float64)
    pred = model.predict(X_test)
    table = series_table(y, pred, ids, model.scales_)
    metrics, boot = _with_ci(table, draws)
    metrics.update({"mase_seasonality": float(info["season_length"]), "horizon": float(info["horizon"]),
                    "series": float(len(series)), "n_test": float(len(y))})
    cover, fc, interval_note = _intervals(model, X_test, y)
    interval_method = "model" if cover else None
    if cover and hasattr(model, "backtest_intervals"):
        # a statistical model: its own intervals or conformal ones, chosen on backtest windows of
        # the training part; the conformal copy is the same model with the scores (same points)
        interval_method, chosen, choice_note = choose_intervals(model)
        metrics.update(chosen)
        if interval_method == "conformal":
            windows = int(chosen["conformal_windows"])
            conformal = _conformal_copy(model, windows, X_train, y_train)
            cover, fc, _ = _intervals(conformal, X_test, y)
            choice_note = "; ".join([choice_note, *[n for n in conformal.notes_ if n not in model.notes_]])
        interval_note = choice_note
    elif not cover and "conformal_windows" in model.get_params():
        # the global model's intervals: split conformal, from backtest windows of the training
        # part only (the same booster settings, so its point forecast is the chosen model's)
        conformal = _conformal_copy(model, CONFORMAL_WINDOWS, X_train, y_train)
        cover, fc, interval_note = _intervals(conformal, X_test, y)
        if cover:
            windows = int(conformal.conformal_windows_)
            cover["conformal_windows"] = float(windows)
            interval_method = "split-conformal"
            interval_note = (f"split-conformal intervals from {windows} backtest windows of the training part "
                             f"(absolute errors scaled by each series' mean level, one quantile per step pooled "
                             f"over {len(series)} series: {windows * len(series)} scores a step)")
        else:
            interval_note = "; ".join([interval_note, *conformal.notes_])
    metrics.update(cover)
    resid_metrics, fitted, lb_table, resid_note = _residuals(model, X_train, int(info["season_length"]))
    metrics.update(resid_metrics)

    baselines: dict[str, dict[str, float]] = {}
    base_boot: dict[str, dict[str, np.ndarray]] = {}
    preds = {"model": pred}
    for row in comp["rows"]:
        if row["kind"] != "baseline":
            continue
        rec = read_record(inc.experiments_dir / row["record"])
        base = _import(rec.meta["model"])(**rec.params).fit(X_train, np.asarray(y_train, dtype=np.float64))
        bpred = base.predict(X_test)
        preds[row["candidate"]] = bpred
        scores, base_boot[row["candidate"]] = _with_ci(series_table(y, bpred, ids, base.scales_), draws)
        scores.update({"mase_seasonality": float(info["season_length"]), "n_test": float(len(y))})
        with track_experiment(f"evaluation-baseline-{row['candidate']}", increment=inc, kind="baseline-evaluation",
                              model=rec.meta["model"], meta={"data_fingerprint": data_fingerprint or "",
                                                             "candidate": row["candidate"], "trial_record": rec.id}) as exp:
            exp.log_params({**rec.params, "split": f"held-out test (each series' last {info['horizon']} points)"})
            exp.log_metrics({n: v for n, v in scores.items() if np.isfinite(v)})
        baselines[row["candidate"]] = scores

    metric_def = get_metric(primary)
    ci = (metrics.get(f"{primary}_ci_low"), metrics.get(f"{primary}_ci_high"))
    lifts = lift_metrics(primary, metrics[primary], {n: m[primary] for n, m in baselines.items()},
                         lower_is_better=metric_def.mode == "min", ci=ci if None not in ci else None,
                         samples=(boot[primary], {n: b[primary] for n, b in base_boot.items()}) if baselines else None)
    beside = {f"baseline_{n.replace('-', '_')}_{m}": v[m] for n, v in baselines.items() for m in REPORTED if m in v}
    gate = check_targets(spec.targets, {**metrics, **lifts}, source=None)
    steps = _steps(X_test)
    by_step = _by_step(y, preds, steps)
    with track_experiment("evaluation", increment=inc, kind="evaluation", model=best.meta.get("model"),
                          meta={"data_fingerprint": data_fingerprint, "candidate": best.meta.get("candidate"),
                                "trial_record": best.id, "threshold": None}) as exp:
        exp.log_params({"candidate": best.meta.get("candidate"), "trial_record": best.id,
                        "split": f"held-out test (each series' last {info['horizon']} points)",
                        "freq": info["freq"], "season_length": info["season_length"], "intervals": interval_note,
                        "intervals_method": interval_method,
                        "notes": list(getattr(model, "notes_", [])),
                        **{f"model.{p}": v for p, v in best.params.items()}})
        exp.log_metrics({n: v for n, v in {**metrics, **lifts, **beside}.items() if np.isfinite(v)})
        table.assign(mase=table["mase"]).to_csv(exp.path / "per_series.csv")
        by_step.to_csv(exp.path / "by_step.csv", index=False)
        plots = _plots(exp.path, by_step, X_train, y_train, X_test, y, pred, fc)
        if fitted is not None and lb_table is not None:
            lb_table.to_csv(exp.path / "ljung_box.csv", index=False)
            plots.append(_residual_plot(exp.path, fitted, int(info["season_length"])))
        report = _render(metrics, baselines, lifts, primary=primary, candidate=best.meta.get("candidate"),
                         info=info, interval_note=interval_note, notes=list(getattr(model, "notes_", [])),
                         table=table, by_step=by_step, plots=plots, resid_note=resid_note)
        gate_md = render_gate(gate)
        exp.save_report("evaluation.md", report + "\n## Gate: spec targets\n\n" + gate_md)
        exp.save_report("gate.md", gate_md)
        atomic_write_json(exp.path / "gate.json", gate_json(gate))
    summary = {"record": exp.id, "candidate": best.meta.get("candidate"), "trial_record": best.id,
               "threshold": None, "metrics": {**metrics, **lifts}, "baselines": baselines, "previous": None,
               "metric": primary}
    return summary, gate


def _plots(folder: Path, by_step: pd.DataFrame, X_train: pd.DataFrame, y_train: pd.Series, X_test: pd.DataFrame,
           y: np.ndarray, pred: np.ndarray, fc: pd.DataFrame | None) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for col in [c for c in by_step.columns if c.endswith("_smape")]:
        ax.plot(by_step["step"], by_step[col], marker="o", label=col[: -len("_smape")])
    ax.set_xlabel("horizon step")
    ax.set_ylabel("sMAPE (0–200)")
    ax.set_title("Error by horizon step")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "error-by-step.png", dpi=100)
    plt.close(fig)
    names.append("error-by-step.png")

    shown = list(pd.unique(X_test[SERIES]))[:PLOTTED_SERIES]
    fig, axes = plt.subplots(len(shown), 1, figsize=(8, 2.2 * len(shown)), squeeze=False)
    train_y = np.asarray(y_train, dtype=np.float64)
    for ax, sid in zip(axes[:, 0], shown, strict=True):
        hist = X_train[SERIES].to_numpy() == sid
        tail = max(0, int(hist.sum()) - 104)
        ax.plot(pd.DatetimeIndex(X_train[TIME][hist])[tail:], train_y[hist][tail:], color="black", lw=1, label="history")
        test = X_test[SERIES].to_numpy() == sid
        ds = pd.DatetimeIndex(X_test[TIME][test])
        ax.plot(ds, y[test], color="black", lw=1, ls="--", label="actual")
        ax.plot(ds, pred[test], color="tab:blue", lw=1.5, label="forecast")
        if fc is not None and "yhat-lo-95" in fc.columns:
            part = fc[fc[SERIES] == sid]
            for lv, alpha in ((95, 0.15), (80, 0.3)):
                ax.fill_between(pd.DatetimeIndex(part[TIME]), part[f"yhat-lo-{lv}"], part[f"yhat-hi-{lv}"],
                                color="tab:blue", alpha=alpha, lw=0, label=f"{lv}% interval")
        ax.set_title(str(sid), fontsize=8)
    axes[0, 0].legend(fontsize=7, ncol=5)
    fig.tight_layout()
    fig.savefig(folder / "forecast.png", dpi=100)
    plt.close(fig)
    names.append("forecast.png")
    return names


def _residual_plot(folder: Path, fitted: pd.DataFrame, season_length: int) -> str:
    """``residuals.png``: the first series' residuals over time, the histogram of every tested
    series' residuals (each divided by its standard deviation) and the first series' residual ACF."""
    from matplotlib.figure import Figure
    from statsmodels.graphics.tsaplots import plot_acf

    resid = fitted.assign(r=fitted["y"] - fitted["fitted"]).dropna(subset=["r"])
    first = resid[SERIES].iloc[0]
    part = resid[resid[SERIES] == first]
    std = resid.groupby(SERIES, sort=False)["r"].transform(lambda v: v / (v.std() or 1.0))
    fig = Figure(figsize=(12, 3.5))
    ax = fig.add_subplot(1, 3, 1)
    ax.plot(pd.DatetimeIndex(part[TIME]), part["r"], color="tab:blue", lw=1)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_title(f"residuals of {first}", fontsize=9)
    ax.tick_params(axis="x", labelsize=7, labelrotation=30)
    ax = fig.add_subplot(1, 3, 2)
    ax.hist(std.to_numpy(dtype=np.float64), bins=40, color="tab:blue")
    ax.set_title(f"standardised residuals, {resid[SERIES].nunique()} series", fontsize=9)
    ax = fig.add_subplot(1, 3, 3)
    plot_acf(part["r"].to_numpy(dtype=np.float64), ax=ax, title=f"ACF of the residuals of {first}",
             lags=max(1, min(ljung_box_lags(len(part), season_length) * 2, len(part) // 2 - 1)))
    ax.title.set_fontsize(9)
    fig.tight_layout()
    fig.savefig(folder / "residuals.png", dpi=100)
    return "residuals.png"


def _fmt(value: Any) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{value:.4g}"


def _render(metrics: Mapping[str, float], baselines: Mapping[str, Mapping[str, float]],
            lifts: Mapping[str, float], *, primary: str, candidate: Any, info: Mapping[str, Any],
            interval_note: str, notes: Sequence[str], table: pd.DataFrame, by_step: pd.DataFrame,
            plots: Sequence[str], resid_note: str = "") -> str:
    lines = [f"# Evaluation (held-out test): {candidate}", "",
             f"Each series' last {info['horizon']} points ({info['freq']}) were held out and forecast once from "
             f"the rest; {int(metrics['series'])} series, {int(metrics['n_test'])} points. Primary metric: "
             f"`{primary}`. 95% CIs resample series. MASE is scaled by each series' in-sample seasonal-naive "
             f"error with seasonality {info['season_length']}; sMAPE is the M4 definition (0–200).", "",
             "| metric | model | 95% CI | " + " | ".join(baselines) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in baselines) + " |"]
    for m in REPORTED:
        ci = f"[{_fmt(metrics.get(f'{m}_ci_low'))}, {_fmt(metrics.get(f'{m}_ci_high'))}]"
        lines.append(f"| {m} | {_fmt(metrics.get(m))} | {ci} | "
                     + " | ".join(_fmt(b.get(m)) for b in baselines.values()) + " |")
    if "lift_best_baseline_pct" in lifts:
        lines += ["", f"Lift of {primary} over the best baseline: {_fmt(lifts['lift_best_baseline_pct'])}% "
                  f"(95% CI [{_fmt(lifts.get('lift_best_baseline_pct_ci_low'))}, "
                  f"{_fmt(lifts.get('lift_best_baseline_pct_ci_high'))}], paired over series)."]
    lines += ["", "## Prediction intervals", ""]
    if "coverage_80" in metrics:
        lines += [f"{interval_note}: the 80% interval covers {metrics['coverage_80']:.1%} of the test points, "
                  f"the 95% interval {metrics['coverage_95']:.1%}."]
    else:
        lines += [f"Not measured: {interval_note}."]
    lines += ["", "## Residuals", ""]
    if "ljung_box_white_noise_share" in metrics:
        lines += [f"{resid_note[:1].upper()}{resid_note[1:]} (`ljung_box.csv`, `residuals.png`). Ljung–Box at "
                  f"{int(metrics['ljung_box_lags'])} lags (median): "
                  f"{metrics['ljung_box_white_noise_share']:.0%} of {int(metrics['ljung_box_series'])} series look "
                  f"like white noise at 5% (median p {metrics['ljung_box_median_p']:.3g}); the rest keep "
                  f"autocorrelation the model did not use. Residual mean {_fmt(metrics['residual_mean'])}, "
                  f"standard deviation {_fmt(metrics['residual_std'])}."]
    else:
        lines += [f"Not measured: {resid_note}."]
    lines += ["", "## Error by horizon step", "", "`by_step.csv`: MAE and sMAPE of the model and each baseline "
              "at every step of the window.", "",
              "| step | model sMAPE | " + " | ".join(f"{b} sMAPE" for b in baselines) + " |",
              "| --- | --- | " + " | ".join("---" for _ in baselines) + " |"]
    for _, row in by_step.iterrows():
        lines.append(f"| {int(row['step'])} | {_fmt(row['model_smape'])} | "
                     + " | ".join(_fmt(row.get(f"{b}_smape")) for b in baselines) + " |")
    worst = table.sort_values("mase", ascending=False).head(5)
    lines += ["", "## Series", "", f"MASE per series (`per_series.csv`): median {_fmt(table['mase'].median())}, "
              f"worst: " + ", ".join(f"{s} {_fmt(v)}" for s, v in worst["mase"].items()) + "."]
    if notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    lines += ["", *[f"![{p}]({p})" for p in plots]]
    return "\n".join(lines) + "\n"
