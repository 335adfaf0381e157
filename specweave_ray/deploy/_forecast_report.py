"""T-007 for forecasts: what drives each step of the packaged forecaster's forecast.

* A gradient-boosted forecaster (mlforecast over LightGBM/XGBoost): the tree contributions of
  every feature it reads (lags, rolling means, calendar and exogenous features) at every step of
  the held-out window's forecast (:meth:`ForecastPredictor.contributions`): ``contributions.csv``
  (long: series, step, feature, value, contribution), ``by_step.csv`` (mean |contribution| per
  feature and step), ``contributions_by_step.png``, the forecasts with the largest errors
  explained one by one (``examples.json``), and ``explainability.md``.
* A local statistical model (ETS, Theta, ARIMA, the baselines) reads no features, so feature
  contributions (SHAP) do not apply; each step's point forecast is split into the additive
  components it extrapolates (:meth:`ForecastPredictor.components`: ETS's level, trend and season
  from its fitted state; otherwise an STL of history + forecast into trend, season and
  remainder), in the same files: ``contributions.csv`` (series, step, component, value,
  contribution), ``by_step.csv``, ``contributions_by_step.png``, ``decomposition.png`` (the
  components stacked over each step), ``examples.json`` (the largest errors, each split into its
  components, which sum to the forecast) and ``explainability.md``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from specweave_ray._fs import atomic_write_json
from specweave_ray.deploy._forecast import ForecastPredictor
from specweave_ray.deploy._forecast_components import (
    ETS_STATES,
    LAST_VALUE,
    STL,
    additivity_error,
    component_order,
)
from specweave_ray.exceptions import DataError
from specweave_ray.problems.timeseries import SERIES, TIME
from specweave_ray.workspace.increment import Increment
from specweave_ray.workspace.records import track_experiment

__all__ = ["write_forecast_explainability"]

MAX_SERIES = 200      # series whose held-out forecast is explained (the first ones)
EXAMPLES = 5          # forecasts explained one by one: the largest absolute errors
TOP = 5               # contributions shown per example
PLOTTED = 10          # features drawn in the by-step plot (largest mean |contribution|)
DECOMPOSED = 4        # series whose components are plotted for a statistical model


def write_forecast_explainability(inc: Increment, predictor: ForecastPredictor, X: pd.DataFrame, y: pd.Series, *,
                                  seed: int = 0, data_fingerprint: str | None = None) -> str:
    """Explain the package's forecast of the held-out window (``X``: its rows, ``y``: the
    actual values) and record it; returns the record id."""
    meta = {"data_fingerprint": data_fingerprint, "package": f"model-v{predictor.version}",
            "explainer": predictor.explainer_kind}
    with track_experiment("explainability", increment=inc, kind="explainability",
                          model=predictor.metadata.get("estimator"), meta=meta) as exp:
        if predictor.explainer_kind == "tree-contributions":
            _gbm_report(exp, predictor, X, y, inc.id)
        else:
            _local_report(exp, predictor, X, y, inc.id)
    return exp.id


def _gbm_report(exp: Any, predictor: ForecastPredictor, X: pd.DataFrame, y: pd.Series, inc_id: str) -> None:
    ids = [s for s in pd.unique(X[SERIES]) if s in set(predictor.series)][:MAX_SERIES]
    if not ids:
        raise DataError("none of the held-out series is one the package forecasts")
    h = int(X.groupby(SERIES).size().max())
    future = X if predictor.exogenous else None
    c = predictor.contributions(h, ids, future=future)
    frame = c.frame.copy()
    actual = pd.Series(np.asarray(y, dtype=np.float64),
                       index=pd.MultiIndex.from_arrays([X[SERIES].to_numpy(), pd.DatetimeIndex(X[TIME])]))
    frame["actual"] = actual.reindex(pd.MultiIndex.from_arrays([frame[SERIES], frame[TIME]])).to_numpy()
    frame["base"], frame["output"] = c.base, c.output
    additivity = float(np.max(np.abs(c.base + c.contributions.sum(axis=1) - c.output)))

    long = pd.DataFrame({SERIES: np.repeat(frame[SERIES].to_numpy(), len(c.features)),
                         TIME: np.repeat(frame[TIME].to_numpy(), len(c.features)),
                         "step": np.repeat(frame["step"].to_numpy(), len(c.features)),
                         "feature": np.tile(c.features, len(frame)),
                         "value": c.values.reshape(-1), "contribution": c.contributions.reshape(-1)})
    long.to_csv(exp.path / "contributions.csv", index=False, float_format="%.6g")
    by_step = (long.assign(abs=long["contribution"].abs()).pivot_table(index="feature", columns="step", values="abs",
                                                                        aggfunc="mean"))
    by_step = by_step.loc[by_step.mean(axis=1).sort_values(ascending=False).index]
    by_step.columns = [f"step_{s}" for s in by_step.columns]
    by_step.to_csv(exp.path / "by_step.csv", float_format="%.6g")
    _by_step_plot(exp.path / "contributions_by_step.png", by_step, c.target_space)

    errors = (frame["yhat"] - frame["actual"]).abs()
    picks = errors.fillna(-1).sort_values(ascending=False, kind="stable").index[:EXAMPLES]
    examples = []
    for i in picks:
        order = np.argsort(-np.abs(c.contributions[i]), kind="stable")
        examples.append({
            "series": str(frame.at[i, SERIES]), "ds": frame.at[i, TIME].isoformat(), "step": int(frame.at[i, "step"]),
            "prediction": float(frame.at[i, "yhat"]), "actual": _num(frame.at[i, "actual"]),
            "output": c.target_space, "base_value": float(c.base[i]), "output_value": float(c.output[i]),
            "contributions": [{"feature": c.features[j], "value": float(c.values[i, j]),
                               "contribution": float(c.contributions[i, j])} for j in order[:TOP]],
            "other": float(c.contributions[i, order[TOP:]].sum())})
    atomic_write_json(exp.path / "examples.json", examples)

    overall = by_step.mean(axis=1)
    exp.log_params({"method": "tree-contributions", "target_space": c.target_space, "series": len(ids), "steps": h,
                    "features": len(c.features), "strategy": getattr(predictor.model, "strategy", None),
                    "package": f"model-v{predictor.version}"})
    exp.log_metrics({"series_explained": float(len(ids)), "forecasts_explained": float(len(frame)),
                     "additivity_max_error": additivity,
                     **{f"mean_abs_contribution_{_snake(f)}": float(v) for f, v in overall.items()}})
    lines = [f"# Explainability — {inc_id} (model-v{predictor.version}, "
             f"{predictor.metadata.get('candidate')})", "",
             f"Tree contributions (exact tree SHAP, computed by the booster: LightGBM `pred_contrib` / XGBoost "
             f"`pred_contribs`) of every feature the global GBM reads, at each of the {h} steps of its forecast of "
             f"{len(ids)} series' held-out window. The feature rows are mlforecast's own, captured at each step "
             f"(`before_predict_callback`); in a recursive forecast the lags of later steps are earlier steps' "
             f"forecasts. Contributions are in the space the trees model: **{c.target_space}**; "
             f"base + contributions = the booster's output (largest error {additivity:.2g}), which the target "
             f"transform then turns into the forecast.", "",
             "## Mean |contribution| by step", "", "![by step](contributions_by_step.png)", "",
             "| feature | " + " | ".join(by_step.columns) + " | all steps |",
             "|---|" + "---|" * (len(by_step.columns) + 1)]
    lines += [f"| {f} | " + " | ".join(f"{v:.4g}" for v in row) + f" | {overall[f]:.4g} |"
              for f, row in by_step.iterrows()]
    lines += ["", "Per series, step and feature: `contributions.csv`; this table: `by_step.csv`.", "",
              "## Explained forecasts", "", f"The {len(examples)} forecasts with the largest absolute errors on the "
              f"held-out window, each with its {TOP} largest contributions ({c.target_space}). Detail: "
              "`examples.json`.", ""]
    for n, ex in enumerate(examples, 1):
        lines += [f"{n}. series `{ex['series']}` at {ex['ds'][:10]} (step {ex['step']}): forecast "
                  f"**{ex['prediction']:.4g}**, actual **{_fmt(ex['actual'])}**; base {ex['base_value']:.4g} → "
                  f"output {ex['output_value']:.4g}", "", "   | feature | value | contribution |", "   |---|---|---|"]
        lines += [f"   | {e['feature']} | {e['value']:.4g} | {e['contribution']:+.4g} |" for e in ex["contributions"]]
        lines += [f"   | all other features | | {ex['other']:+.4g} |", ""]
    exp.save_report("explainability.md", "\n".join(lines) + "\n")


def _local_report(exp: Any, predictor: ForecastPredictor, X: pd.DataFrame, y: pd.Series, inc_id: str) -> None:
    ids = [s for s in pd.unique(X[SERIES]) if s in set(predictor.series)][:MAX_SERIES]
    if not ids:
        raise DataError("none of the held-out series is one the package forecasts")
    h = int(X.groupby(SERIES).size().max())
    c = predictor.components(h, ids)
    frame = c.frame.copy()
    actual = pd.Series(np.asarray(y, dtype=np.float64),
                       index=pd.MultiIndex.from_arrays([X[SERIES].to_numpy(), pd.DatetimeIndex(X[TIME])]))
    frame["actual"] = actual.reindex(pd.MultiIndex.from_arrays([frame[SERIES], frame[TIME]])).to_numpy()
    additivity = additivity_error(c)
    long = c.long
    long.to_csv(exp.path / "contributions.csv", index=False, float_format="%.6g")
    names = component_order(long["component"])
    by_step = (long.assign(abs=long["contribution"].abs())
               .pivot_table(index="component", columns="step", values="abs", aggfunc="mean").reindex(names))
    by_step.columns = [f"step_{s}" for s in by_step.columns]
    by_step.to_csv(exp.path / "by_step.csv", float_format="%.6g")
    _by_step_plot(exp.path / "contributions_by_step.png", by_step, "the values")
    _components_plot(exp.path / "decomposition.png", predictor.model, c, ids[:DECOMPOSED])

    keyed = dict(list(long.groupby([SERIES, "step"], sort=False)))
    errors = (frame["yhat"] - frame["actual"]).abs()
    picks = errors.fillna(-1).sort_values(ascending=False, kind="stable").index[:EXAMPLES]
    examples = []
    for i in picks:
        parts = keyed[(frame.at[i, SERIES], frame.at[i, "step"])]
        contrib = parts["contribution"].to_numpy(dtype=np.float64)
        order = np.argsort(-np.abs(contrib), kind="stable")
        examples.append({
            "series": str(frame.at[i, SERIES]), "ds": frame.at[i, TIME].isoformat(), "step": int(frame.at[i, "step"]),
            "prediction": float(frame.at[i, "yhat"]), "actual": _num(frame.at[i, "actual"]),
            "method": _METHOD_NAMES[frame.at[i, "method"]], "model": c.models[frame.at[i, SERIES]],
            "output": "the values", "base_value": 0.0, "output_value": float(contrib.sum()),
            "contributions": [{"feature": str(parts["component"].iloc[j]), "value": float(parts["value"].iloc[j]),
                               "contribution": float(contrib[j])} for j in order[:TOP]],
            "other": float(contrib[order[TOP:]].sum())})
    atomic_write_json(exp.path / "examples.json", examples)

    counts = frame.drop_duplicates(SERIES)["method"].value_counts()
    method = "+".join(_METHOD_NAMES[m] for m in counts.index)
    overall = by_step.mean(axis=1)
    exp.log_params({"method": method, "reason": _reason(predictor.model), "series": len(ids), "steps": h,
                    "components": names, "package": f"model-v{predictor.version}",
                    "series_methods": {_METHOD_NAMES[m]: int(n) for m, n in counts.items()}})
    exp.log_metrics({"series_explained": float(len(ids)), "forecasts_explained": float(len(frame)),
                     "additivity_max_error": additivity,
                     **{f"series_{_snake(_METHOD_NAMES[m])}": float(n) for m, n in counts.items()},
                     **{f"mean_abs_contribution_{_snake(f)}": float(v) for f, v in overall.items()}})
    lines = [f"# Explainability — {inc_id} (model-v{predictor.version}, {predictor.metadata.get('candidate')})", "",
             f"Feature contributions (SHAP) do not apply: {_reason(predictor.model)}. What it does is extrapolate "
             f"each series' own past, so each of the {h} steps of its forecast of {len(ids)} series' held-out "
             f"window is split into the additive components it extrapolates, in the forecast's units; per step "
             f"they sum to the forecast (largest error {additivity:.2g}).", "", "## Components", ""]
    lines += [f"- **{_METHOD_NAMES[m]}** ({n} series): {_METHOD_TEXT[m]}" for m, n in counts.items()]
    lines += ["", "## Mean |component| by step", "", "![by step](contributions_by_step.png)", "",
              "| component | " + " | ".join(by_step.columns) + " | all steps |",
              "|---|" + "---|" * (len(by_step.columns) + 1)]
    lines += [f"| {f} | " + " | ".join(f"{v:.4g}" for v in row) + f" | {overall[f]:.4g} |"
              for f, row in by_step.iterrows()]
    lines += ["", "Per series, step and component: `contributions.csv` (value: the state the component comes "
              "from, e.g. ETS's level, slope or seasonal index); this table: `by_step.csv`.", "",
              "![decomposition](decomposition.png)", "",
              "## Explained forecasts", "", f"The {len(examples)} forecasts with the largest absolute errors on the "
              "held-out window, each split into its components. Detail: `examples.json`.", ""]
    for n, ex in enumerate(examples, 1):
        lines += [f"{n}. series `{ex['series']}` at {ex['ds'][:10]} (step {ex['step']}, {ex['model']}): forecast "
                  f"**{ex['prediction']:.4g}**, actual **{_fmt(ex['actual'])}**", "",
                  "   | component | value | contribution |", "   |---|---|---|"]
        lines += [f"   | {e['feature']} | {e['value']:.4g} | {e['contribution']:+.4g} |" for e in ex["contributions"]]
        lines += [""]
    exp.save_report("explainability.md", "\n".join(lines) + "\n")


_METHOD_NAMES = {ETS_STATES: "ets-states", STL: "stl-decomposition", LAST_VALUE: "last-value"}
_METHOD_TEXT = {
    ETS_STATES: "from each series' fitted ETS state: **level** (the last level), **trend** (what the "
                "(damped) trend adds to it by that step) and **season** (what the season adds to level + trend; "
                "for a multiplicative season its share, (index − 1) × (level + trend)), the same recursion "
                "statsforecast forecasts with.",
    STL: "no state to read (Theta, ARIMA, a baseline, or an ETS series that got the naive fallback): an STL "
         "decomposition (statsmodels, robust, period the season length) of the series' history followed by "
         "its forecast; the forecast steps' **trend**, **season** and **remainder** (trend + season + "
         "remainder = forecast).",
    LAST_VALUE: "no season for STL (or under two seasons of data): the **last value** observed and the "
                "**change** the model forecasts from it.",
}


def _reason(model: Any) -> str:
    return (f"{type(model).__name__} is a local statistical model: one model per series fitted on the series' "
            f"own past values, reading no features")


def _components_plot(path: Path, model: Any, c: Any, ids: list[Any]) -> None:
    """Per series: the history's last two seasons, and the components added up in order over
    the forecast steps (level, + trend, + season: the last line is the forecast)."""
    fig = _figure(10, 2.2 * len(ids) + 0.5)
    hist = model.history_
    tail = max(2 * int(model.season_length_), 24)
    for i, sid in enumerate(ids):
        ax = fig.add_subplot(len(ids), 1, i + 1)
        past = hist.loc[hist[SERIES] == sid].tail(tail)
        ax.plot(past[TIME], past["y"], color="#999999", linewidth=1, label="history")
        part = c.long.loc[c.long[SERIES] == sid]
        names = component_order(part["component"])
        ds = pd.DatetimeIndex(part.loc[part["component"] == names[0], TIME])
        running = np.zeros(len(ds))
        for k, name in enumerate(names):
            running = running + part.loc[part["component"] == name, "contribution"].to_numpy(dtype=np.float64)
            ax.plot(ds, running, marker=".", linewidth=1.2, label=name if k == 0 else f"+ {name}")
        ax.set_title(f"series {sid}: {c.models[sid]}", fontsize=9)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _by_step_plot(path: Path, by_step: pd.DataFrame, space: str) -> None:
    fig = _figure(8, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    steps = np.arange(1, by_step.shape[1] + 1)
    for feature, row in by_step.head(PLOTTED).iterrows():
        ax.plot(steps, row.to_numpy(), marker="o", label=str(feature))
    ax.set_xlabel("forecast step")
    ax.set_ylabel(f"mean |contribution| ({space})")
    ax.set_title("What drives each step of the forecast")
    ax.set_xticks(steps)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _snake(name: Any) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", str(name).lower()).strip("_") or "feature"


def _num(value: Any) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.4g}"
