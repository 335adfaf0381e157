"""What a local statistical forecaster's forecast is made of, step by step (T-007).

A local model (ETS, Theta, ARIMA, the baselines) reads no features, so feature contributions
(SHAP) do not apply; what it does is extrapolate its own series. Each step's point forecast is
split into additive components, in the forecast's units, that sum to it:

* **ETS** (statsforecast ``AutoETS``; a series' fitted model keeps its final state
  ``model_["states"][-1]``, its spec ``components`` and parameters ``par``): the forecast is the
  library's ``level ⊕ (damped) trend ⊗ season`` recursion (``ets.pegelsfcast_C``, R's
  ``forecast::ets``), rewritten here term by term because statsforecast computes it in one
  compiled call. ``level`` is the last level ``l``; ``trend`` what the trend adds to it by step
  k (additive ``φ*_k·b``, multiplicative ``l·(b^φ*_k − 1)``, with statsforecast's damping sum
  ``φ*_1 = φ``, ``φ*_k = φ*_{k−1} + φ^{k−1}``); ``season`` what the season adds to level + trend
  (additive ``s``, multiplicative ``(s − 1)·(level + trend)``: the season's share, so the parts
  stay additive in the forecast's units).
* **Any other model**, and an ETS series that got the naive fallback: an STL decomposition
  (statsmodels, robust, period the season length) of the series' history followed by its
  forecast; the forecast steps' ``trend``, ``season`` and ``remainder`` (STL is additive:
  trend + season + remainder = the forecast). Without a season (or under two seasons of data)
  no STL: ``last value`` (the last observation) and ``change`` (the forecast minus it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from specweave_ray.problems.timeseries import SERIES, TIME

__all__ = ["ETS_STATES", "LAST_VALUE", "STL", "StepComponents", "additivity_error", "component_order",
           "components_kind", "forecast_components"]

ETS_STATES, STL, LAST_VALUE = "ets-states", "stl", "last-value"


@dataclass(frozen=True)
class StepComponents:
    """The additive components of every forecast step of a local model.

    Attributes:
        frame: ``unique_id``, ``ds``, ``step``, ``yhat`` (the forecast) and ``method`` (how the
            series was decomposed: ``ets-states``, ``stl`` or ``last-value``).
        long: One row per series, step and component: ``unique_id``, ``ds``, ``step``,
            ``component``, ``value`` (the state it comes from: ETS level, slope or seasonal
            index; the component itself otherwise) and ``contribution`` (in the forecast's units).
            Per series and step the contributions sum to ``yhat``.
        models: Series id → what was decomposed (``ETS(M,Ad,N) states``, ``STL of AutoTheta's forecast`` …).
    """

    frame: pd.DataFrame
    long: pd.DataFrame
    models: Mapping[Any, str]


def _fitted_by_series(model: Any) -> dict[Any, Any]:
    sf = getattr(model, "sf_", None)
    if sf is None:
        return {}
    return {sid: fitted[0] for sid, fitted in zip(sf.uids, sf.fitted_, strict=True)}


def _ets_state(fitted: Any) -> Mapping[str, Any] | None:
    """The fitted statsforecast ETS model's dict, or None for any other fitted model."""
    from statsforecast.models import AutoETS

    state = getattr(fitted, "model_", None)
    if isinstance(fitted, AutoETS) and isinstance(state, Mapping) and {"states", "components", "par"} <= set(state):
        return state
    return None


def components_kind(model: Any) -> str:
    """``ets-states`` for a model whose series hold ETS states, else ``stl-decomposition``."""
    fitted = _fitted_by_series(model)
    return "ets-states" if any(_ets_state(f) is not None for f in fitted.values()) else "stl-decomposition"


def _ets(state: Mapping[str, Any], h: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(component, value, contribution) of the ETS forecast's ``h`` steps from its last state."""
    _, trend, season, damped = str(state["components"])[:4]
    x = np.asarray(state["states"][-1], dtype=np.float64)
    m = max(1, int(state["m"]))
    phi = 1.0 if damped == "N" else float(state["par"][3])
    level = float(x[0])
    slope = float(x[1]) if trend != "N" else 0.0
    # statsforecast's damping sum (ets.c): phi*_1 = phi, then phi*_k = phi*_{k-1} + phi^(k-1)
    phistar = phi + np.concatenate([[0.0], np.cumsum(phi ** np.arange(1, h))])
    if trend == "A":
        with_trend = level + phistar * slope
    elif trend == "M":
        with_trend = level * slope ** phistar
    else:
        with_trend = np.full(h, level)
    out = [("level", np.full(h, level), np.full(h, level))]
    if trend != "N":
        out.append(("trend", np.full(h, slope), with_trend - level))
    if season != "N":
        first = 1 + (trend != "N")
        index = x[first:first + m][(m - 1 - np.arange(h)) % m]  # step k reads the state of k − m
        total = with_trend + index if season == "A" else with_trend * index
        out.append(("season", index, total - with_trend))
    return out


def _stl(history: np.ndarray, yhat: np.ndarray, m: int) -> list[tuple[str, np.ndarray, np.ndarray]] | None:
    """Trend, season and remainder of the forecast steps of an STL of history + forecast."""
    from statsmodels.tsa.seasonal import STL as _STLFit

    series = np.concatenate([history, yhat])
    if m < 2 or len(series) < 2 * m + 1:
        return None
    fit = _STLFit(series, period=m, robust=True).fit()
    h = len(yhat)
    trend, season = np.asarray(fit.trend)[-h:], np.asarray(fit.seasonal)[-h:]
    remainder = yhat - trend - season  # STL's own remainder, as the forecast's difference
    return [("trend", trend, trend), ("season", season, season), ("remainder", remainder, remainder)]


def forecast_components(model: Any, fc: pd.DataFrame) -> StepComponents:
    """Decompose ``fc`` (``unique_id``, ``ds``, ``step``, ``yhat``: ``model``'s forecast from
    the end of its stored history) into additive components per series and step."""
    fitted = _fitted_by_series(model)
    hist = model.history_
    m = int(model.season_length_)
    name = type(model).__name__
    rows, methods, models = [], [], {}
    for sid, part in fc.groupby(SERIES, sort=False):
        yhat = part["yhat"].to_numpy(dtype=np.float64)
        state = _ets_state(fitted.get(sid))
        if state is not None:
            parts, method = _ets(state, len(yhat)), ETS_STATES
            models[sid] = f"{state.get('method', 'ETS')} states"
        else:
            y = hist.loc[hist[SERIES] == sid, "y"].to_numpy(dtype=np.float64)
            parts, method = _stl(y, yhat, m), STL
            models[sid] = f"STL (period {m}) of {name}'s history and forecast"
            if parts is None:
                last = np.full(len(yhat), y[-1])
                parts, method = [("last value", last, last), ("change", yhat - last, yhat - last)], LAST_VALUE
                models[sid] = f"{name}'s forecast against the last value (no season of 2+ for STL)"
        methods += [method] * len(yhat)
        for component, value, contribution in parts:
            rows.append(pd.DataFrame({SERIES: sid, TIME: part[TIME].to_numpy(), "step": part["step"].to_numpy(),
                                      "component": component, "value": value, "contribution": contribution}))
    frame = fc[[SERIES, TIME, "step", "yhat"]].reset_index(drop=True).assign(method=methods)
    return StepComponents(frame, pd.concat(rows, ignore_index=True), models)


def additivity_error(c: StepComponents) -> float:
    """The largest |sum of a step's contributions − its forecast|."""
    total = c.long.groupby([SERIES, "step"], sort=False)["contribution"].sum()
    want = c.frame.set_index([SERIES, "step"])["yhat"]
    return float(np.max(np.abs(total.reindex(want.index).to_numpy() - want.to_numpy())))


def component_order(names: Sequence[str]) -> list[str]:
    """Components in the order they build the forecast."""
    order = ["level", "trend", "season", "remainder", "last value", "change"]
    return sorted(dict.fromkeys(names), key=lambda n: order.index(n) if n in order else len(order))
