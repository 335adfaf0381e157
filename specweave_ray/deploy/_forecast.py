"""Packaged forecasters: the predictor that answers ``forecast(horizon, history, series)``, its
package metadata, and what T-007 explains each forecast step with: the tree contributions of a
gradient-boosted forecast, the additive components (ETS states, STL) of a local model's.

A forecast package is the fitted :class:`~specweave_ray.candidates.forecasters.Forecaster` (its
pickle, hash-checked before it is read), which keeps every series' training history: the package
forecasts the steps after it. ``history`` appends newer observations first (validated: the
model's frequency, contiguous from the step after the stored end, numeric), so the forecast
starts after them: a local statistical model is refitted on the extended history of those series
(statsforecast fits one model per series; the others keep theirs), the global GBM predicts with
mlforecast's ``new_df`` (the same trees, features computed from the extended history).

Answers are per series and step: ``unique_id``, ``ds``, ``step``, ``yhat`` and, where the family
has them, ``yhat-lo-95``, ``yhat-lo-80``, ``yhat-hi-80``, ``yhat-hi-95`` (a statistical model's
own intervals or statsforecast's conformal ones, as T-006 chose; the GBM's conformal ones only
when it was fitted with ``conformal_windows >= 2``; conformal ones only up to the horizon they were
calibrated for). A family without intervals returns none and
says so (``intervals_note``); none is made up.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from specweave_ray.deploy._forecast_components import (
    StepComponents,
    components_kind,
    forecast_components,
)
from specweave_ray.deploy.explain import tree_contributions
from specweave_ray.exceptions import CandidateError, DataError
from specweave_ray.problems.timeseries import SERIES, TIME

__all__ = ["LEVELS", "MAX_HORIZON_FACTOR", "ForecastPredictor", "StepComponents", "StepContributions",
           "forecast_metadata", "with_conformal_intervals"]

LEVELS = (80, 95)
# A recursive or local model can forecast any number of steps; a request may ask for at most
# this many times the horizon the model was evaluated for (the work it asks for stays bounded,
# and far past the evaluated horizon nothing vouches for the numbers). A direct model: its own.
MAX_HORIZON_FACTOR = 10
_INTERVAL_ORDER = ("yhat-lo-95", "yhat-lo-80", "yhat-hi-80", "yhat-hi-95")
_SHOWN = 5


def _is_gbm(model: Any) -> bool:
    return hasattr(model, "mlf_")


def with_conformal_intervals(model: Any, windows: int, *, local_windows: int | None = None) -> Any:
    """The model with the intervals T-006 measured: a fitted global GBM without conformal scores
    refitted on its own history with ``windows`` conformal windows (the same booster and seed:
    the same point forecast); a local statistical model for which T-006 chose statsforecast's
    conformal intervals (``local_windows``, None: its own) refitted on its history with them (the
    same model fits: the same point forecast); any other model as it is."""
    if _is_gbm(model):
        if getattr(model, "conformal_scores_", None) is not None:
            return model
    elif not local_windows or "conformal_windows" not in model.get_params() \
            or int(getattr(model, "conformal_windows", None) or 0) == int(local_windows):
        return model
    else:
        windows = int(local_windows)
    hist = model.history_
    X = hist.drop(columns="y").reset_index(drop=True)
    X.attrs["forecast"] = {"freq": model.freq_, "season_length": int(model.season_length_),
                           "horizon": int(model.horizon_), "step": int(model.horizon_)}
    return clone(model).set_params(conformal_windows=int(windows)).fit(X, hist["y"].to_numpy())


def _offset(freq: str) -> Any:
    return pd.tseries.frequencies.to_offset(freq)


def _after(start: Any, n: int, freq: str) -> pd.DatetimeIndex:
    """The ``n`` timestamps after ``start`` on the ``freq`` grid."""
    return pd.date_range(start, periods=n + 1, freq=_offset(freq))[1:]


def _levels_of(model: Any) -> tuple[list[int], str]:
    """The interval levels ``model`` gives (LEVELS or none) and the sentence that says why."""
    if _is_gbm(model):
        if getattr(model, "conformal_scores_", None) is not None:
            return list(LEVELS), (f"split-conformal intervals from {model.conformal_windows_} backtest windows "
                                  f"(errors scaled by each series' level, pooled per step), up to "
                                  f"{model.horizon_} steps")
        if int(getattr(model, "conformal_windows", 0) or 0) >= 2:
            return [], f"none: {' '.join(model.notes_) or 'the history was too short for 2 backtest windows'}"
        return [], ("none: the global GBM was fitted without conformal windows (give the candidate "
                    "conformal_windows >= 2 for conformal intervals)")
    try:
        fc = model.forecast(1, level=list(LEVELS))
    except Exception as err:  # noqa: BLE001 - a family without intervals is a note, not a failure
        return [], f"none: {type(model).__name__} gives no prediction intervals ({type(err).__name__})"
    if all(c in fc.columns for c in _INTERVAL_ORDER):
        if getattr(model, "conformal_h_", None):
            return list(LEVELS), (f"statsforecast's conformal intervals from {model.conformal_windows} backtest "
                                  f"windows of each series' history, up to {model.conformal_h_} steps")
        return list(LEVELS), "the model's own prediction intervals (statsforecast)"
    return [], f"none: {type(model).__name__} gives no prediction intervals"


def forecast_metadata(*, model: Any, columns: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata fields a forecast package adds: the frequency, horizon and season the model
    was fitted for, its series (count, a few ids, where the history ends), the user's column
    names, the exogenous columns it reads, what intervals it gives and its explainer."""
    levels, note = _levels_of(model)
    last = pd.Series(model.last_)
    ids = [str(s) for s in model.last_]
    return {
        "kind": ForecastPredictor.kind, "freq": model.freq_, "season_length": int(model.season_length_),
        "horizon": int(model.horizon_), "max_horizon": _max_horizon(model),
        "n_series": len(ids), "series_sample": ids[:_SHOWN],
        "history_end": {"min": str(pd.Timestamp(last.min())), "max": str(pd.Timestamp(last.max()))},
        "columns": {"series": columns.get("series"), "time": columns.get("time"), "value": columns.get("value"),
                    "exogenous": list(model.exogenous_) if _is_gbm(model) else []},
        "intervals": levels, "intervals_note": note,
        "input_schema": {"request": {"horizon": "positive integer (default the fitted horizon)",
                                     "series": "list of series ids (default all)",
                                     "history": "new observations after the stored history",
                                     "future": "future values of the exogenous columns"}},
        "fast_path": False, "explainer": _explainer(model),
    }


def _explainer(model: Any) -> str:
    """How T-007 explains the model's steps: tree contributions for the GBM; for a local model
    its forecast's components (ETS states, or an STL decomposition)."""
    return "tree-contributions" if _is_gbm(model) else components_kind(model)


def _max_horizon(model: Any) -> int:
    if _is_gbm(model) and getattr(model, "strategy", "recursive") == "direct":
        return int(model.horizon_)
    return int(model.horizon_) * MAX_HORIZON_FACTOR


@dataclass(frozen=True)
class StepContributions:
    """Tree contributions of every forecast step of a GBM forecaster.

    Attributes:
        frame: ``unique_id``, ``ds``, ``step``, ``yhat`` (the forecast, in the values' space).
        features: The model's feature names (lags, rolling means, calendar, exogenous columns).
        values: ``(rows, features)`` the feature values the booster read at each step (in a
            recursive forecast, later steps' lags are earlier steps' forecasts).
        contributions: ``(rows, features)`` their contributions to the booster's output.
        base: ``(rows,)``; ``base + contributions.sum(axis=1) == output`` for every row.
        output: ``(rows,)`` the booster's output, in the space it models (``target_space``).
        target_space: What the trees model: the values, ``log1p`` of them, their differences.
    """

    frame: pd.DataFrame
    features: list[str]
    values: np.ndarray
    contributions: np.ndarray
    base: np.ndarray
    output: np.ndarray
    target_space: str


class ForecastPredictor:
    """A verified forecast package, ready to answer.

    Attributes:
        metadata, version, folder: as :class:`~specweave_ray.deploy.Predictor`.
        model: The fitted :class:`~specweave_ray.candidates.forecasters.Forecaster`.
        horizon: The horizon it was fitted and evaluated for (the default of :meth:`forecast`).
        max_horizon: The longest horizon a call may ask for.
        series: The series ids it forecasts, in its order.
        intervals: The interval levels it gives (``[80, 95]`` or ``[]``), ``intervals_note`` why.
    """

    kind = "forecaster"
    route = "/forecast"
    classes = None
    input_columns = ["horizon", "series", "history", "future"]

    def __init__(self, metadata: Mapping[str, Any], folder: str | os.PathLike[str], *, model: Any) -> None:
        self.metadata = dict(metadata)
        self.folder = Path(folder)
        self.version = int(self.metadata["version"])
        self.problem_type = self.metadata.get("problem_type")
        self.model = model
        self.freq = model.freq_
        self.horizon = int(model.horizon_)
        self.max_horizon = int(self.metadata.get("max_horizon") or _max_horizon(model))
        self.series = list(model.last_)
        self._by_text = {str(s): s for s in self.series}
        cols = self.metadata.get("columns") or {}
        self.columns = {"series": cols.get("series"), "time": cols.get("time"), "value": cols.get("value")}
        self.exogenous = list(model.exogenous_) if _is_gbm(model) else []
        levels, note = ((list(self.metadata["intervals"]), self.metadata.get("intervals_note", ""))
                        if "intervals" in self.metadata else _levels_of(model))
        self.intervals, self.intervals_note = levels, note
        self._lock = threading.Lock()  # mlforecast's predict state and a refit are not thread-safe

    def __repr__(self) -> str:
        return (f"<ForecastPredictor {self.metadata.get('increment')} model-v{self.version} "
                f"{self.metadata.get('candidate')} ({len(self.series)} series, h={self.horizon}, {self.freq})>")

    @property
    def explainer_kind(self) -> str:
        return _explainer(self.model)

    # -- the request's parts -----------------------------------------------------------------
    def _horizon(self, horizon: Any) -> int:
        h = self.horizon if horizon is None else horizon
        if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1:
            raise DataError(f"horizon must be a positive integer, got {h!r}")
        if h > self.max_horizon:
            why = ("a direct model has one booster per step of its horizon" if self.max_horizon == self.horizon
                   else f"{MAX_HORIZON_FACTOR}x the fitted horizon of {self.horizon}")
            raise DataError(f"horizon {int(h)} is longer than this model supports: at most {self.max_horizon} "
                            f"steps ({why})")
        return int(h)

    def _series(self, series: Any) -> list[Any]:
        if series is None:
            return list(self.series)
        if isinstance(series, (str, int, np.integer)) and not isinstance(series, bool):
            series = [series]
        if not isinstance(series, (list, tuple, np.ndarray, pd.Index)) or not len(series):
            raise DataError(f"series must be a non-empty list of series ids, got {series!r}")
        out, unknown = [], []
        for raw in series:
            if raw is None or isinstance(raw, (bool, dict, list)):
                raise DataError(f"a series id must be a string or an integer, got {raw!r}")
            sid = self._by_text.get(str(raw))
            (unknown.append(raw) if sid is None else out.append(sid))
        if unknown:
            known = ", ".join(repr(str(s)) for s in self.series[:_SHOWN])
            more = f" (+{len(self.series) - _SHOWN} more)" if len(self.series) > _SHOWN else ""
            raise DataError(f"unknown series {unknown[0]!r}" + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1
                                                                 else "") + f"; the model forecasts {known}{more}")
        return list(dict.fromkeys(out))

    def _frame(self, data: Any, what: str, *, value: bool, exogenous: list[str]) -> pd.DataFrame:
        """A long frame (DataFrame or records) in the user's or the canonical column names →
        ``unique_id``, ``ds`` (and ``y``) and the exogenous columns, checked."""
        if isinstance(data, pd.DataFrame):
            frame = data.copy()
        elif isinstance(data, Mapping):
            frame = pd.DataFrame([dict(data)])
        elif isinstance(data, (list, tuple)):
            for i, row in enumerate(data):
                if not isinstance(row, Mapping):
                    raise DataError(f"{what} row {i} must be an object of column → value, got {type(row).__name__}")
            frame = pd.DataFrame.from_records(list(data))
        else:
            raise DataError(f"{what} must be a DataFrame or a list of row objects, got {type(data).__name__}")
        if frame.empty:
            raise DataError(f"{what} has no rows")
        frame.columns = [str(c) for c in frame.columns]
        roles = [("series", SERIES), ("time", TIME)] + ([("value", "y")] if value else [])
        for role, canonical in roles:
            names = [n for n in dict.fromkeys([canonical, self.columns.get(role)]) if n and n in frame.columns]
            if len(names) > 1:
                raise DataError(f"{what} names the {role} column twice: {names[0]!r} and {names[1]!r}")
            if names:
                frame = frame.rename(columns={names[0]: canonical})
        if SERIES not in frame.columns and len(self.series) == 1:
            frame[SERIES] = self.series[0]
        need = [c for c, _ in ((SERIES, "series"), (TIME, "time"), *([("y", "value")] if value else []))]
        missing = [self._name(c) for c in need if c not in frame.columns]
        missing += [c for c in exogenous if c not in frame.columns]
        if missing:
            raise DataError(f"{what} lacks the column(s) {missing}" + (
                f"; this model reads exogenous columns {exogenous}, needed for every step" if exogenous else ""))
        allowed = {*need, *exogenous}
        extra = [c for c in frame.columns if c not in allowed]
        if extra:
            raise DataError(f"{what} has unexpected column(s) {extra}; accepted: "
                            f"{[self._name(c) for c in need] + exogenous}")
        times = pd.to_datetime(frame[TIME], errors="coerce")
        bad = times.isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{what} row {row}: {self._name(TIME)!r} is not a date: {frame[TIME].iloc[row]!r}")
        if getattr(times.dt, "tz", None) is not None:
            times = times.dt.tz_localize(None)
        frame[TIME] = times
        for col in ([("y")] if value else []) + exogenous:
            raw = frame[col]
            numbers = pd.to_numeric(raw.where(~raw.map(lambda v: isinstance(v, bool))), errors="coerce")
            bad = numbers.isna() | ~np.isfinite(numbers.to_numpy(dtype=np.float64, na_value=np.nan))
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(f"{what} row {row}: {self._name(col)!r} must be a finite number, "
                                f"got {raw.iloc[row]!r}")
            frame[col] = numbers.astype(np.float64)
        frame[SERIES] = frame[SERIES].map(lambda s: self._by_text.get(str(s), s))
        unknown = [s for s in pd.unique(frame[SERIES]) if s not in self._by_text.values()]
        if unknown:
            raise DataError(f"{what} names unknown series {unknown[0]!r}; the model forecasts "
                            f"{', '.join(repr(str(s)) for s in self.series[:_SHOWN])}"
                            + (f" (+{len(self.series) - _SHOWN} more)" if len(self.series) > _SHOWN else ""))
        dup = frame.duplicated([SERIES, TIME])
        if dup.any():
            row = frame[dup].iloc[0]
            raise DataError(f"{what} has series {row[SERIES]!r} at {row[TIME]} twice")
        return frame.sort_values([SERIES, TIME], kind="stable").reset_index(drop=True)

    def _name(self, canonical: str) -> str:
        role = {SERIES: "series", TIME: "time", "y": "value"}.get(canonical)
        return self.columns.get(role) or canonical if role else canonical

    def _history(self, history: Any) -> pd.DataFrame:
        """New observations, checked to continue each series right after its stored history."""
        frame = self._frame(history, "history", value=True, exogenous=self.exogenous)
        for sid, part in frame.groupby(SERIES, sort=False):
            last = pd.Timestamp(self.model.last_[sid])
            expected = _after(last, len(part), self.freq)
            got = pd.DatetimeIndex(part[TIME])
            if got[0] != expected[0]:
                where = "is not after" if got[0] <= last else "leaves a gap after"
                raise DataError(f"history for series {str(sid)!r} starts at {got[0]}, which {where} the stored "
                                f"history (it ends {last}); it must start at {expected[0]} ({self.freq})")
            off = np.flatnonzero(got != expected)
            if len(off):
                raise DataError(f"history for series {str(sid)!r} is not contiguous at {self.freq}: "
                                f"{got[off[0]]} where {expected[off[0]]} was expected")
        return frame

    def _future(self, future: Any, ids: list[Any], h: int, origin: Mapping[Any, Any]) -> pd.DataFrame | None:
        """The exogenous columns on every step 1 … ``h`` of every series asked (the GBM reads
        them at each step; a missing one is an error naming it, never filled in)."""
        if not self.exogenous:
            return None
        if future is None:
            raise DataError(f"this model reads exogenous columns {self.exogenous}: give their future values "
                            f"for the {h} forecast steps (future: rows of {self._name(SERIES)}, "
                            f"{self._name(TIME)} and those columns)")
        frame = self._frame(future, "future", value=False, exogenous=self.exogenous)
        grid = pd.DataFrame([(sid, ts) for sid in ids for ts in _after(origin[sid], h, self.freq)],
                            columns=[SERIES, TIME])
        merged = grid.merge(frame, on=[SERIES, TIME], how="left")
        gaps = merged[self.exogenous].isna().any(axis=1)
        if gaps.any():
            row = merged[gaps].iloc[0]
            raise DataError(f"future values of {self.exogenous} are missing for series {str(row[SERIES])!r} at "
                            f"{row[TIME]}" + (f" (and {int(gaps.sum()) - 1} more steps)" if gaps.sum() > 1 else "")
                            + f"; the forecast of {h} steps needs each of them")
        return merged

    # -- forecasting -------------------------------------------------------------------------
    def forecast(self, horizon: int | None = None, history: Any = None, series: Any = None, *,
                 future: Any = None) -> pd.DataFrame:
        """The next ``horizon`` steps of each series asked: ``unique_id``, ``ds``, ``step``,
        ``yhat`` and the 80/95% intervals where the model gives them (:attr:`intervals`).

        Args:
            horizon: Steps to forecast; default the horizon the model was fitted for; at most
                :attr:`max_horizon`.
            history: New observations after the stored history (a long DataFrame or records in
                the data's column names, or ``unique_id``/``ds``/``y``): the forecast of each
                series named starts after its last one.
            series: Series ids to forecast (default all).
            future: The future values of the exogenous columns, for a model that reads them.

        Raises:
            DataError: A bad horizon, an unknown series, history that does not continue the
                stored one at the model's frequency, a non-numeric value, or a missing future
                exogenous value; each named in the message.
        """
        h, ids, new, origin, X_future = self._request(horizon, series, history, future)
        if _is_gbm(self.model):
            fc, note = self._gbm(h, ids, new, X_future)
        else:
            fc, note = self._local(h, ids, new)
        return self._tidy(fc, ids, h, origin, note)

    def _request(self, horizon: Any, series: Any, history: Any, future: Any
                 ) -> tuple[int, list[Any], pd.DataFrame | None, dict[Any, Any], pd.DataFrame | None]:
        """A call's checked inputs: the horizon, the series ids, the new history (or None), each
        series' forecast origin (its last timestamp, new history included) and the future
        exogenous frame (or None)."""
        h = self._horizon(horizon)
        ids = self._series(series)
        new = self._history(history) if history is not None else None
        origin = dict(self.model.last_)
        if new is not None:
            origin.update(new.groupby(SERIES, sort=False)[TIME].max().to_dict())
        return h, ids, new, origin, self._future(future, ids, h, origin)

    def _gbm(self, h: int, ids: list[Any], new: pd.DataFrame | None, X_future: pd.DataFrame | None,
             callbacks: Mapping[str, Any] | None = None) -> tuple[pd.DataFrame, str | None]:
        level = list(LEVELS) if self.intervals and h <= self.horizon else None
        note = None if level or not self.intervals else (
            f"no intervals beyond the {self.horizon} steps the conformal intervals were calibrated for")
        kwargs: dict[str, Any] = dict(callbacks or {})
        with self._lock:
            mlf = self.model.mlf_
            if new is not None:
                # mlforecast keeps the state of new_df's series after predicting with it: a copy,
                # so the package's own history stays what it was
                mlf = copy.deepcopy(mlf)
                kwargs["new_df"] = self._extended(ids, new)
            elif len(ids) < len(self.series):
                kwargs["ids"] = [str(s) for s in ids]
            fc = mlf.predict(h, X_df=X_future, **kwargs)
        if level:
            # the model's own split-conformal bounds (calibrated at fit, scaled by each series'
            # stored level): the same with new history, whose errors were not seen
            fc = self.model.conformal_intervals(fc, level)
        return fc, note

    def _extended(self, ids: list[Any], new: pd.DataFrame) -> pd.DataFrame:
        stored = self.model.history_
        cols = [SERIES, TIME, "y", *self.exogenous]
        old = stored.loc[stored[SERIES].isin(ids), cols]
        added = new.loc[new[SERIES].isin(ids), cols]
        return pd.concat([old, added], ignore_index=True).sort_values([SERIES, TIME], kind="stable")

    def _local(self, h: int, ids: list[Any], new: pd.DataFrame | None) -> tuple[pd.DataFrame, str | None]:
        level = list(LEVELS) if self.intervals else None
        calibrated = getattr(self.model, "conformal_h_", None)
        note = (f"no intervals beyond the {calibrated} steps the conformal intervals were calibrated for"
                if level and calibrated and h > calibrated else None)
        refit = [] if new is None else [s for s in ids if s in set(new[SERIES])]
        parts = []
        with self._lock:
            kept = [s for s in ids if s not in set(refit)]
            if kept:
                fc = self.model.forecast(h, level=level)
                parts.append(fc[fc[SERIES].isin(kept)])
            if refit:
                ext = self._extended(refit, new)
                X = ext[[SERIES, TIME, *[c for c in self.model.exogenous_ if c in ext.columns]]].reset_index(drop=True)
                X.attrs["forecast"] = {"freq": self.freq, "season_length": int(self.model.season_length_),
                                       "horizon": self.horizon, "step": self.horizon}
                fresh = clone(self.model).fit(X, ext["y"].to_numpy())
                parts.append(fresh.forecast(h, level=level))
        return pd.concat(parts, ignore_index=True), note

    def _tidy(self, fc: pd.DataFrame, ids: list[Any], h: int, origin: Mapping[Any, Any],
              note: str | None) -> pd.DataFrame:
        fc = fc.reset_index() if SERIES not in fc.columns else fc
        fc = fc.assign(**{TIME: pd.DatetimeIndex(fc[TIME])})
        rank = {s: i for i, s in enumerate(ids)}
        fc = fc[fc[SERIES].isin(rank)].copy()
        fc["_order"] = fc[SERIES].map(rank)
        fc = fc.sort_values(["_order", TIME], kind="stable").drop(columns="_order").reset_index(drop=True)
        fc.insert(2, "step", fc.groupby(SERIES, sort=False).cumcount().to_numpy() + 1)
        cols = [SERIES, TIME, "step", "yhat", *[c for c in _INTERVAL_ORDER if c in fc.columns]]
        out = fc[cols]
        if len(out) != len(ids) * h:
            raise CandidateError(f"the model answered {len(out)} forecasts for {len(ids)} series x {h} steps")
        levels = list(self.intervals) if all(c in out.columns for c in _INTERVAL_ORDER) else []
        out.attrs["intervals"] = levels
        out.attrs["intervals_note"] = note or self.intervals_note
        return out

    def answer(self, horizon: Any = None, history: Any = None, series: Any = None, *,
               future: Any = None) -> dict[str, Any]:
        """:meth:`forecast` as JSON-ready data: ``{"forecasts": [{unique_id, ds, step, yhat,
        yhat-lo-80 …}], "horizon", "intervals", "intervals_note"}`` (``ds`` as ISO text)."""
        fc = self.forecast(horizon, history, series, future=future)
        records = fc.assign(**{TIME: fc[TIME].map(pd.Timestamp.isoformat),
                               SERIES: fc[SERIES].map(str)}).to_dict("records")
        return {"forecasts": records, "horizon": int(fc["step"].max()), "series": int(fc[SERIES].nunique()),
                "intervals": fc.attrs["intervals"], "intervals_note": fc.attrs["intervals_note"]}

    def predict(self, request: Any = None) -> Any:
        """A request as one object, ``{"horizon", "series", "history", "future"}`` (all
        optional) → :meth:`answer`'s dict; a DataFrame is taken as ``history`` (what an MLflow
        pyfunc caller sends)."""
        if isinstance(request, pd.DataFrame):
            request = {"history": request} if not request.empty else {}
        if request is not None and not isinstance(request, Mapping):
            raise DataError(f"a forecast request is an object of {', '.join(self.input_columns)}, "
                            f"got {type(request).__name__}")
        request = dict(request or {})
        unknown = sorted(set(request) - set(self.input_columns))
        if unknown:
            raise DataError(f"unknown field(s) {unknown}; accepted: {', '.join(self.input_columns)}")
        return self.answer(request.get("horizon"), request.get("history"), request.get("series"),
                           future=request.get("future"))

    # -- explanations ------------------------------------------------------------------------
    def components(self, horizon: int | None = None, series: Any = None) -> StepComponents:
        """Per series and forecast step of a local statistical model, the additive components
        of its point forecast from the stored history (they sum to ``yhat``): ETS's level,
        trend and season from each series' fitted state, or, for any other model, the trend,
        season and remainder of an STL of the history and forecast
        (:mod:`~specweave_ray.deploy._forecast_components`).

        Raises:
            CandidateError: The model is the global GBM (its steps have tree contributions:
                :meth:`contributions`).
            DataError: As :meth:`forecast`.
        """
        if _is_gbm(self.model):
            raise CandidateError("the global GBM's steps are explained by tree contributions (contributions())")
        fc = self.forecast(horizon, series=series)
        with self._lock:
            return forecast_components(self.model, fc)

    def contributions(self, horizon: int | None = None, series: Any = None, *, history: Any = None,
                      future: Any = None) -> StepContributions:
        """Per series and forecast step, the tree contributions of every feature the GBM read
        (its lags, rolling means, calendar and exogenous features), captured at each recursive
        step through mlforecast's ``before_predict_callback`` and computed by the booster itself
        (LightGBM ``pred_contrib``, XGBoost ``pred_contribs``: exact tree SHAP).

        Raises:
            CandidateError: The model is a local statistical model (it reads no features).
            DataError: As :meth:`forecast`.
        """
        if not _is_gbm(self.model):
            raise CandidateError(f"{type(self.model).__name__} is a local statistical model: it reads no "
                                 f"features, so feature contributions do not apply")
        h, ids, new, origin, X_future = self._request(horizon, series, history, future)
        frames: list[pd.DataFrame] = []

        def before(features: pd.DataFrame) -> pd.DataFrame:
            frames.append(features.copy())
            return features

        fc, _ = self._gbm(h, ids, new, X_future, {"before_predict_callback": before})
        fc = self._tidy(fc, ids, h, origin, None)[[SERIES, TIME, "step", "yhat"]]
        models = self.model.mlf_.models_["yhat"]
        # direct: one booster per step ({step index: booster}); recursive: one for every step
        boosters = [models[i] for i in range(h)] if isinstance(models, Mapping) else [models] * h
        if len(frames) != h:
            raise CandidateError(f"mlforecast built {len(frames)} feature frames for {h} steps")
        n = len(ids)
        values, contrib, base = [], [], []
        for step in range(h):
            X = frames[step]
            booster = boosters[step]
            family = "xgboost" if hasattr(booster, "get_booster") else "lightgbm"
            raw = booster.get_booster() if family == "xgboost" else booster.booster_
            phi, bias = tree_contributions(raw, X.to_numpy(dtype=np.float64), family=family)
            values.append(X.to_numpy(dtype=np.float64))
            contrib.append(phi)
            base.append(bias)
        # frames hold the series in mlforecast's order (sorted ids); the answer in the order asked
        order = sorted(range(n), key=lambda i: str(ids[i]))
        back = np.empty(n, dtype=np.intp)
        back[order] = np.arange(n)
        rows = np.asarray([step * n + back[i] for i in range(n) for step in range(h)])
        stack = {k: np.concatenate(v)[rows] for k, v in (("values", values), ("contrib", contrib), ("base", base))}
        output = stack["base"] + stack["contrib"].sum(axis=1)
        transform = getattr(self.model, "target_transform", "none")
        space = {"log": "log1p of the values", "log-diff1": "first differences of log1p of the values",
                 "diff1": "first differences of the values", "none": "the values"}.get(transform, transform)
        return StepContributions(fc, [str(c) for c in frames[0].columns], stack["values"], stack["contrib"],
                                 stack["base"], output, space)
