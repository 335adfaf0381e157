"""Forecasters with one contract: fit on a long frame, forecast the next steps of every series.

Every forecaster is a scikit-learn estimator whose ``X`` is a long frame with a ``unique_id`` and
a ``ds`` column (the timeseries problem type renames the user's columns to these, sorts the
rows and puts the frequency, season length and horizon in ``X.attrs["forecast"]``), plus any
numeric exogenous columns, and whose ``y`` is each row's value. ``fit`` keeps each series'
history and its MASE scale (``scales_``, the in-sample seasonal-naive MAE); a family only fits
(``_fit``) and forecasts (``_forecast``).

``forecast(h, X_future=None, level=None)`` answers, per series and step, the point forecast
(``yhat``) and, with ``level=[80, 95]``, the intervals (``yhat-lo-80`` …) where the family has
them; ``predict(X)`` is the forecast of exactly the rows ``X`` names (the steps after each
series' history), aligned with them, which is what backtests and held-out scoring read.

| family | class | library |
| --- | --- | --- |
| naive, seasonal naive, drift, window mean | :class:`NaiveForecaster` … | statsforecast ``Naive``, ``SeasonalNaive``, ``RandomWalkWithDrift``, ``WindowAverage`` |
| ETS | :class:`ETSForecaster` | statsforecast ``AutoETS`` (no seasonal model above a season of 24: see below) |
| ARIMA | :class:`ARIMAForecaster` | statsforecast ``AutoARIMA``, its search capped (``nmodels``) |
| Theta | :class:`ThetaForecaster` | statsforecast ``AutoTheta`` |
| LightGBM / XGBoost | ``specweave_ray.candidates._mlforecast.GBMForecaster`` | mlforecast: one global model on lags, rolling means, calendar features |

Intervals: a statistical family's own (statsforecast's), or, with ``conformal_windows >= 2``,
statsforecast's conformal ones (``ConformalIntervals``: the absolute errors of each series' own
forecasts from its last ``conformal_windows`` origins, a horizon apart), calibrated for the fitted
horizon; :meth:`StatsForecaster.backtest_intervals` measures both on backtest windows of the
history, which is how T-006 chooses between them.

Local (statistical) models fit one model per series; a series on which a model fails, or whose
fit runs past ``series_time_limit_s``, gets the naive forecast, counted in ``fallbacks_`` (and
``timed_out_``). In a sweep's trial the series are fitted in chunks spread over Ray workers
(:func:`using_chunk_map`, set by ``search/_ray``; this module stays Ray-free).

A backtest fold needs only the forecast of its window: ``fit(X, y, window=X_valid)`` on a
statsforecast family (``fits_for_window``) fits and forecasts every series in one pass
(statsforecast's ``forecast``, as the timeseries problem type's folds ask), keeping no per-series
fitted model (none is shipped back from the worker processes, no conformal scores are computed);
its ``predict`` of the window is the one ``fit(X, y).predict(X_valid)`` gives.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import signal
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from specweave_ray.exceptions import CandidateError, DataError
from specweave_ray.metrics import seasonal_scale
from specweave_ray.problems.timeseries import SERIES, TIME, forecast_info, season_length_for

__all__ = ["ARIMAForecaster", "DriftForecaster", "ETSForecaster", "Forecaster", "NaiveForecaster",
           "SeasonalNaiveForecaster", "StatsForecaster", "ThetaForecaster", "WindowMeanForecaster"]

# AutoETS fits no seasonal model for a season longer than 24 (statsforecast's own limit; it
# would silently fall back): above it the model is fitted non-seasonal, and says so in notes_.
ETS_MAX_SEASON = 24
LEVELS = (80, 95)

# -- the fit of local models over many series: chunks and a per-series time limit ------------------
# A trial runner that can fan out (the sweep's Ray layer) sets a map over chunks for the fits it
# runs: ``(map, workers)``, ``map(fn, [args, ...]) -> [fn(*args), ...]``. Unset (in-process use,
# reproduce, refits) every series is fitted here with statsforecast's own ``n_jobs``.
_CHUNK_MAP: contextvars.ContextVar[tuple[Callable[[Callable, list[tuple]], list], int] | None] = \
    contextvars.ContextVar("specweave_chunk_map", default=None)
MIN_CHUNK = 25   # fewer series per chunk than this are not worth a task (numba load, data transfer)
SERIES_TIME_LIMIT_S = 30.0
_FALLBACK = "specweave_fallback_"  # set on a fallback's fitted model: "timeout" or "error"
_OWN_INTERVALS = "specweave_own_intervals_"  # set on a conformal model's series too short for its windows


@contextlib.contextmanager
def using_chunk_map(map_chunks: Callable[[Callable, list[tuple]], list], workers: int) -> Iterator[None]:
    """Within the block, a local model over at least ``2 * MIN_CHUNK`` series fits its series in
    up to ``workers`` chunks through ``map_chunks`` (each chunk's fit must be run as given: a
    pickled function and its arguments)."""
    token = _CHUNK_MAP.set((map_chunks, int(workers)))
    try:
        yield
    finally:
        _CHUNK_MAP.reset(token)


def _chunk_ids(ids: np.ndarray, workers: int) -> list[np.ndarray]:
    """The sorted series ids split into at most ``workers`` contiguous chunks of ``MIN_CHUNK`` or more."""
    n = max(1, min(int(workers), len(ids) // MIN_CHUNK))
    return [c for c in np.array_split(np.asarray(ids), n) if len(c)]


def _pieces(data: pd.DataFrame, chunks: list[np.ndarray]) -> list[pd.DataFrame]:
    """``data`` (sorted by series) cut into the rows of each chunk of contiguous series ids."""
    at = data[SERIES].searchsorted([c[0] for c in chunks[1:]])
    return [data.iloc[idx] for idx in np.split(np.arange(len(data)), at)]


def _on_alarm(signum: int, frame: Any) -> None:
    """The interval timer's handler: ends one series' fit (caught in ``_TimeLimited.fit``)."""
    raise TimeoutError("the series' fit ran past its time limit")


class _TimeLimited:
    """A statsforecast model whose fit of one series is interrupted past ``limit_s`` (an interval
    timer, ``signal.setitimer``: its handler raises between the model's Python steps, so
    AutoARIMA's search and AutoETS's candidate loop stop there, not after). A series over the
    limit, or one whose model raises, gets the naive model, marked on the fitted model
    (``_FALLBACK``) so the count survives pools, chunks and pickling. Only what
    ``GroupedArray.fit`` calls (``new``, ``fit``) and ``GroupedArray.forecast`` calls
    (``forecast``: a series' fit and forecast in one pass) is wrapped: the fitted entries are the
    model's own, so the fitted StatsForecast predicts and pickles as a plain one. ``forecast``
    leaves no fitted model to mark: it appends each series' fallback kind (or None) to ``kinds``
    (one wrapper a process: see :func:`_forecast_chunk`)."""

    def __init__(self, model: Any, limit_s: float | None) -> None:
        self.model = model
        self.limit_s = limit_s
        self.alias = getattr(model, "alias", None)
        self.kinds: list[str | None] = []

    def __repr__(self) -> str:
        return repr(self.model)

    @property
    def uses_exog(self) -> bool:  # read by StatsForecast.forecast
        return bool(getattr(self.model, "uses_exog", False))

    def new(self) -> _TimeLimited:
        return _TimeLimited(self.model.new(), self.limit_s)

    @contextlib.contextmanager
    def _limited(self) -> Iterator[None]:
        """The timer armed around one series' work (only the main thread can take SIGALRM)."""
        armed = bool(self.limit_s) and threading.current_thread() is threading.main_thread()
        if armed:
            old = signal.signal(signal.SIGALRM, _on_alarm)
            signal.setitimer(signal.ITIMER_REAL, float(self.limit_s))
        try:
            yield
        finally:
            if armed:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old)

    def _fallback(self) -> Any:
        from statsforecast.models import Naive

        return Naive(alias=self.alias) if self.alias else Naive()

    def forecast(self, y: np.ndarray, h: int, X: np.ndarray | None = None, X_future: np.ndarray | None = None,
                 fitted: bool = False) -> dict[str, Any]:
        """The model's fit and point forecast of one series in one pass (no ``level``: the
        backtest window it serves is scored on points), limited, with the fallback, as ``fit``."""
        kind = None
        try:
            with self._limited():
                out = self.model.forecast(y=y, h=h, X=X, X_future=X_future, fitted=fitted)
        except TimeoutError:
            kind = "timeout"
        except Exception:  # noqa: BLE001 - statsforecast's fallback rule: any model error
            kind = "error"
        self.kinds.append(kind)
        if kind is None:
            return out
        return self._fallback().forecast(y=y, h=h, X=X, X_future=X_future, fitted=fitted)

    def fit(self, y: np.ndarray, X: np.ndarray | None = None) -> Any:
        kind = None
        model = self.model
        pi = getattr(model, "prediction_intervals", None)
        if pi is not None and len(y) < 2 * pi.h + 1:
            # statsforecast's conformal scores need 2 windows of h after one point: this series
            # keeps the model's own intervals (marked, counted in notes_) instead of failing
            model = model.new()
            model.prediction_intervals = None
            setattr(model, _OWN_INTERVALS, True)
        try:
            with self._limited():
                return model.fit(y=y, X=X)
        except TimeoutError:
            kind = "timeout"
        except Exception:  # noqa: BLE001 - statsforecast's fallback rule: any model error
            kind = "error"
        fitted = self._fallback().fit(y=y, X=X)
        setattr(fitted, _FALLBACK, kind)
        return fitted


def _fit_chunk(model: Any, freq: str, limit_s: float | None, df: pd.DataFrame, n_jobs: int) -> tuple[Any, np.ndarray]:
    """Fit ``model`` on every series of ``df``: (their ids in statsforecast's order, ``fitted_``)."""
    from statsforecast import StatsForecast
    from statsforecast.models import Naive

    alias = getattr(model, "alias", None)
    sf = StatsForecast(models=[_TimeLimited(model, limit_s)], freq=freq, n_jobs=n_jobs,
                       fallback_model=Naive(alias=alias) if alias else Naive())
    sf.fit(df)
    return np.asarray(sf.uids), sf.fitted_


def _forecast_chunk(model: Any, freq: str, limit_s: float | None, h: int, df: pd.DataFrame
                    ) -> tuple[pd.DataFrame, list[str | None]]:
    """Fit and forecast ``h`` steps of every series of ``df`` in one pass, in this process
    (statsforecast's ``forecast``, which keeps no fitted model): (the forecast frame, each
    series' fallback kind or None).

    In this process rather than statsforecast's own ``n_jobs`` pool: that pool pickles the
    model to its workers, so the wrapper's fallback kinds (no fitted model is left to mark) would
    stay there; the caller spreads the chunks instead (:func:`_map_local`, or the chunk map)."""
    from statsforecast import StatsForecast

    wrapped = _TimeLimited(model, limit_s)
    sf = StatsForecast(models=[wrapped], freq=freq, n_jobs=1)
    with threadpool_limits(limits=1):  # one BLAS thread a process, as statsforecast's pool workers
        fc = sf.forecast(df=df, h=h)
    return fc, wrapped.kinds


def _map_local(fn: Callable[[pd.DataFrame], Any], data: pd.DataFrame, n_jobs: int) -> list[Any]:
    """``fn`` over ``data``'s series: in this process with one job, else in a pool of ``n_jobs``
    processes over chunks of about ``MIN_CHUNK`` contiguous series (at least one a job), which the
    processes take in turn as they finish (one slow chunk holds up one process, not the others)."""
    ids = pd.unique(data[SERIES])
    if n_jobs < 2 or len(ids) < 2:
        return [fn(data)]
    n = min(len(ids), max(n_jobs, len(ids) // MIN_CHUNK))
    chunks = [c for c in np.array_split(np.asarray(ids), n) if len(c)]
    # the pool statsforecast's own forecast uses (forked on Linux: the workers share this
    # process's imports and data)
    with ProcessPoolExecutor(max_workers=min(n_jobs, len(chunks))) as pool:
        return list(pool.map(fn, _pieces(data, chunks)))


class Forecaster(BaseEstimator):
    """Base class: the long frame → per-series histories, MASE scales, aligned forecasts.

    Attributes (after ``fit``):
        freq_, season_length_: The frequency and season length used (from the frame, or the
            ``freq``/``season_length`` parameters where a family has them).
        history_: ``unique_id``, ``ds``, ``y`` (and exogenous columns), sorted.
        scales_: Series id → MASE scale of its history (seasonality ``season_length_``).
        last_: Series id → its last timestamp.
        notes_: What the family changed to fit (a season it cannot model, fallbacks).
    """

    requires_raw_frame = True   # the sweep hands it the long frame, never encoded features
    supports_gpu = False
    # fit(..., window=X_valid) fits and forecasts the window in one pass (``_fit_window``); a
    # family without it fits as usual and predicts the window from its fitted models
    fits_for_window = False

    def fit(self, X: pd.DataFrame, y: Any = None, *, window: pd.DataFrame | None = None) -> Forecaster:
        """Keep each series' history and fit the family.

        Args:
            window: The rows (``unique_id``, ``ds``) a backtest fold will predict, the steps after
                each series' history. A family with ``fits_for_window`` then fits and forecasts
                them in one pass and keeps only that forecast: ``predict`` answers those rows
                (and ``forecast`` up to as many steps, points only) exactly as after a plain fit,
                anything more is refused (refit without ``window``).

        Raises:
            DataError: ``X`` lacks ``unique_id``/``ds`` or was not framed, or ``y`` is missing;
                a ``window`` row is not a step after its series' history.
        """
        missing = [c for c in (SERIES, TIME) if c not in getattr(X, "columns", ())]
        if missing or y is None:
            raise DataError(f"a forecaster is fitted on a long frame with {SERIES!r} and {TIME!r} columns and "
                            f"the values as y; missing {missing or ['y']}")
        info = forecast_info(X)
        self.freq_ = getattr(self, "freq", None) or info["freq"]
        self.season_length_ = int(getattr(self, "season_length", None) or info.get("season_length")
                                  or season_length_for(self.freq_))
        self.horizon_ = int(info["horizon"])
        df = pd.DataFrame({SERIES: X[SERIES].to_numpy(), TIME: pd.DatetimeIndex(X[TIME]),
                           "y": np.asarray(y, dtype=np.float64)})
        self.exogenous_ = [str(c) for c in X.columns if c not in (SERIES, TIME)]
        for col in self.exogenous_:
            df[col] = X[col].to_numpy(dtype=np.float64)
        df = df.sort_values([SERIES, TIME], kind="stable").reset_index(drop=True)
        self.history_ = df
        grouped = df.groupby(SERIES, sort=False)
        self.scales_ = {sid: seasonal_scale(g.to_numpy(), self.season_length_) for sid, g in grouped["y"]}
        self.last_ = grouped[TIME].max().to_dict()
        self.notes_: list[str] = []
        if window is not None and len(window) and self.fits_for_window:
            _, _, steps = self._row_steps(window)
            self._fit_window(df, int(steps.max()))
        else:
            self._fit(df)
        return self

    # -- what a family implements -------------------------------------------------------------
    def _fit(self, df: pd.DataFrame) -> None:
        raise NotImplementedError

    def _fit_window(self, df: pd.DataFrame, h: int) -> None:
        """Fit for the next ``h`` steps only (``fits_for_window`` families)."""
        raise NotImplementedError

    def _fitted(self, df: pd.DataFrame) -> pd.DataFrame | None:
        """One-step in-sample fitted values of the series in ``df`` (their histories):
        ``unique_id``, ``ds``, ``y``, ``fitted``; None for a family without them."""
        return None

    def _forecast(self, h: int, X_future: pd.DataFrame | None, level: Sequence[int] | None) -> pd.DataFrame:
        """``unique_id``, ``ds``, ``yhat`` (and ``yhat-lo-L``/``yhat-hi-L`` per level it has)."""
        raise NotImplementedError

    # -- the contract ---------------------------------------------------------------------------
    def forecast(self, h: int | None = None, X_future: pd.DataFrame | None = None,
                 level: Sequence[int] | None = None) -> pd.DataFrame:
        """The next ``h`` steps (default: the horizon it was fitted for) of every series.

        Args:
            X_future: The exogenous columns' future values (``unique_id``, ``ds``, columns),
                needed by a family that reads them.
            level: Interval levels in percent (``[80, 95]``); a family without intervals
                returns none.

        Raises:
            CandidateError: ``h`` is not a positive integer.
        """
        check_is_fitted(self, "history_")
        h = self.horizon_ if h is None else h
        if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1:
            raise CandidateError(f"h must be a positive integer, got {h!r}")
        return self._forecast(int(h), X_future, list(level) if level else None)

    def fitted_values(self, series: Sequence[Any] | None = None) -> pd.DataFrame | None:
        """The one-step in-sample fitted values of the named series (all by default), from a
        refit of the family on their histories (statsforecast's and mlforecast's ``fitted=True``):
        ``unique_id``, ``ds``, ``y``, ``fitted`` (NaN where the model has none yet, e.g. the
        first point); None for a family without them. The residuals ``y − fitted`` are what a
        residual analysis (Ljung–Box) reads."""
        check_is_fitted(self, "history_")
        df = self.history_ if series is None else self.history_[self.history_[SERIES].isin(list(series))]
        notes = list(self.notes_)
        try:
            return self._fitted(df)
        finally:
            self.notes_ = notes  # a refit's notes repeat the fit's

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The point forecast of every row of ``X``: rows of the fitted series at steps after
        their history (a backtest window, the test window), in ``X``'s order.

        Raises:
            DataError: a row's series was not fitted, or its time is not a step after the history.
        """
        check_is_fitted(self, "history_")
        ids, ds, steps = self._row_steps(X)
        future = X[[c for c in X.columns if c in self.exogenous_ or c in (SERIES, TIME)]] if self.exogenous_ else None
        fc = self.forecast(int(steps.max()), X_future=future)
        keyed = fc.set_index([SERIES, TIME])["yhat"]
        out = keyed.reindex(pd.MultiIndex.from_arrays([ids, ds])).to_numpy(dtype=np.float64)
        if np.isnan(out).any():
            bad = int(np.flatnonzero(np.isnan(out))[0])
            raise DataError(f"no forecast for {ids[bad]!r} at {ds[bad]} (off the series' {self.freq_} grid?)")
        return out

    def _row_steps(self, X: pd.DataFrame) -> tuple[np.ndarray, pd.DatetimeIndex, np.ndarray]:
        """The rows' series ids, times and steps after their series' history.

        Raises:
            DataError: a row's series was not fitted, or its time is not a step after the history.
        """
        ds = pd.DatetimeIndex(X[TIME])
        ids = X[SERIES].to_numpy()
        unknown = sorted({str(s) for s in pd.unique(ids) if s not in self.last_})
        if unknown:
            raise DataError(f"series {unknown[0]!r} was not in the forecaster's history ({len(unknown)} unknown)")
        last = pd.DatetimeIndex([self.last_[s] for s in ids])
        offset = pd.tseries.frequencies.to_offset(self.freq_)
        steps = _steps(last, ds, offset)
        if (steps < 1).any():
            bad = int(np.flatnonzero(steps < 1)[0])
            raise DataError(f"row {bad + 1} ({ids[bad]!r} at {ds[bad]}) is not after the series' history "
                            f"(which ends {last[bad]})")
        return ids, ds, steps


def _steps(last: pd.DatetimeIndex, ds: pd.DatetimeIndex, offset: Any) -> np.ndarray:
    """Steps from ``last`` to ``ds`` on the ``offset`` grid, for many rows (one grid per series)."""
    out = np.empty(len(ds), dtype=np.int64)
    for start in pd.unique(last):
        mask = last == start
        grid = pd.date_range(start, ds[mask].max(), freq=offset)
        out[mask] = grid.get_indexer(ds[mask])  # -1: off the grid, 0: not after the history
    return out


class StatsForecaster(Forecaster):
    """A statsforecast model, one per series (``_model`` builds it for a season length).

    The series are fitted here with statsforecast's ``n_jobs`` or, inside
    :func:`using_chunk_map` (the sweep's trials) and with at least ``2 * MIN_CHUNK`` series, in
    chunks through that map; either way ``sf_`` is one fitted StatsForecast over every series.
    ``series_time_limit_s`` (the ETS, ARIMA and Theta families; ``None``: none) caps one series'
    fit (:class:`_TimeLimited`).

    ``fit(X, y, window=X_valid)`` (a backtest fold) runs statsforecast's ``forecast`` instead, in
    chunks in a pool of ``n_jobs`` processes (:func:`_map_local`) or through the chunk map: ``sf_``
    is then None and ``window_`` holds the window's point forecasts (``window_h_`` steps).

    Attributes (after ``fit``): ``fallbacks_`` (series that got the naive model), ``timed_out_``
    (of those, the ones over the time limit), ``chunks_`` (how many chunks the series were fitted
    in), ``fit_counts_`` (the first two, as the trial records them).
    """

    fits_in_chunks = True  # the sweep gives its trials one-CPU bundles and a chunk map (search/_ray)
    fits_for_window = True

    # statsforecast's column for the model: its alias
    _ALIAS = "model"

    def _model(self, season_length: int) -> Any:
        raise NotImplementedError

    def _fit(self, df: pd.DataFrame) -> None:
        from statsforecast import StatsForecast
        from statsforecast.models import Naive

        model = self._model(self.season_length_)
        windows = int(getattr(self, "conformal_windows", None) or 0)
        self.conformal_h_ = None
        if windows >= 2:
            from statsforecast.utils import ConformalIntervals

            # statsforecast's own conformal intervals, calibrated for the fitted horizon
            model.prediction_intervals = ConformalIntervals(h=self.horizon_, n_windows=windows)
            self.conformal_h_ = self.horizon_
        limit = getattr(self, "series_time_limit_s", None)
        self.sf_ = StatsForecast(models=[model], freq=self.freq_, n_jobs=1, fallback_model=Naive(alias=self._ALIAS))
        # the local models read no exogenous columns: only the GBM forecaster does
        data = df[[SERIES, TIME, "y"]]
        mapper = _CHUNK_MAP.get()
        chunks = _chunk_ids(pd.unique(data[SERIES]), mapper[1] if mapper else 1)
        fit_one = functools.partial(_fit_chunk, model, self.freq_, limit)
        if mapper is None or len(chunks) < 2:
            # the cheap path: every series here, statsforecast's own process pool (the trial's CPUs)
            parts = [fit_one(data, self._jobs())]
        else:
            # one task per chunk through the trial runner's map (Ray tasks in the trial's
            # placement group); each chunk is a contiguous run of the sorted ids
            parts = mapper[0](fit_one, [(piece, 1) for piece in _pieces(data, chunks)])
        # one StatsForecast as if fitted in one process: the full frame's ids, last dates and
        # arrays (statsforecast's own _prepare_fit), the chunks' fitted models stacked in order
        self.sf_._prepare_fit(data)
        uids = np.concatenate([np.asarray(u) for u, _ in parts])
        if not np.array_equal(uids, np.asarray(self.sf_.uids)):
            raise CandidateError("the chunks' fitted series are not the frame's series, in order")
        self.sf_.fitted_ = np.vstack([fm for _, fm in parts])
        self.sf_.n_jobs = 1
        self.window_h_ = self.window_ = None
        self._count([getattr(m, _FALLBACK, None) for m in self.sf_.fitted_[:, 0]], chunks=len(parts))
        fitted = self.sf_.fitted_[:, 0]
        own = sum(bool(getattr(m, _OWN_INTERVALS, False)) for m in fitted)
        if own:
            self.notes_.append(f"{own} of {len(fitted)} series are too short for conformal windows of "
                               f"{self.horizon_} steps (2 windows and a point: {2 * self.horizon_ + 1}): "
                               "they keep the model's own intervals")

    def _fit_window(self, df: pd.DataFrame, h: int) -> None:
        # statsforecast's forecast (fit and forecast in one pass per series, nothing kept): the
        # same point forecasts as fit then predict, without shipping every fitted model back
        # from the workers, and without conformal scores (a window is scored on its points)
        model = self._model(self.season_length_)
        limit = getattr(self, "series_time_limit_s", None)
        data = df[[SERIES, TIME, "y"]]
        one = functools.partial(_forecast_chunk, model, self.freq_, limit, h)
        mapper = _CHUNK_MAP.get()
        chunks = _chunk_ids(pd.unique(data[SERIES]), mapper[1]) if mapper else []
        if len(chunks) >= 2:
            parts = mapper[0](one, [(piece,) for piece in _pieces(data, chunks)])  # as _fit's chunks
        else:
            parts = _map_local(one, data, self._jobs())
        fc = pd.concat([part for part, _ in parts], ignore_index=True)
        fc = fc.reset_index() if SERIES not in fc.columns else fc
        if len(fc) != h * len(self.last_):
            raise CandidateError("the chunks' forecasts are not every series' window")
        self.sf_ = None
        self.window_h_, self.window_ = h, fc.rename(columns={self._ALIAS: "yhat"})[[SERIES, TIME, "yhat"]]
        self._count([k for _, kinds in parts for k in kinds], chunks=len(parts))

    def _jobs(self) -> int:
        return max(1, int(getattr(self, "n_jobs", 1) or 1))

    def _count(self, kinds: list[str | None], *, chunks: int) -> None:
        """The series' fallbacks (their kinds, None for none) as attributes and a note."""
        limit = getattr(self, "series_time_limit_s", None)
        self.fallbacks_ = sum(k is not None for k in kinds)
        self.timed_out_ = kinds.count("timeout")
        self.chunks_ = chunks
        self.fit_counts_ = {"series_fallbacks": self.fallbacks_, "series_timed_out": self.timed_out_}
        if self.fallbacks_:
            self.notes_.append(f"{self.fallbacks_} of {len(kinds)} series got the naive fallback "
                               f"({self.timed_out_} over the per-series time limit of {limit} s)")

    def _fitted(self, df: pd.DataFrame) -> pd.DataFrame | None:
        from statsforecast import StatsForecast

        # no fallback model: its fitted values would pass for the model's (WindowAverage has none)
        sf = StatsForecast(models=[self._model(self.season_length_)], freq=self.freq_, n_jobs=1)
        try:
            sf.forecast(df=df[[SERIES, TIME, "y"]], h=1, fitted=True)
            fv = sf.forecast_fitted_values()
        except Exception:  # noqa: BLE001 - a model without in-sample fitted values (WindowAverage)
            return None
        fv = fv.reset_index() if SERIES not in fv.columns else fv
        return fv.rename(columns={self._ALIAS: "fitted"})[[SERIES, TIME, "y", "fitted"]]

    def _forecast(self, h: int, X_future: pd.DataFrame | None, level: Sequence[int] | None) -> pd.DataFrame:
        if getattr(self, "sf_", None) is None:  # fitted for a backtest window (fit(..., window=))
            if level or h > self.window_h_:
                raise CandidateError(f"this forecaster was fitted for a backtest window of {self.window_h_} steps "
                                     f"(fit(..., window=...)) and keeps only those points; refit it without "
                                     f"window= to forecast {h} steps" + (" with intervals" if level else ""))
            fc = self.window_
            if h < self.window_h_:
                fc = fc[fc.groupby(SERIES, sort=False).cumcount().to_numpy() < h].reset_index(drop=True)
            return fc.copy()
        calibrated = getattr(self, "conformal_h_", None)
        if level and calibrated and h > calibrated:
            level = None  # conformal scores exist for the calibrated steps only: points beyond them
        # conformal bounds are per step: a shorter forecast is the calibrated one's first h steps
        steps = calibrated if level and calibrated else h
        try:
            with warnings.catch_warnings():
                # a conformal model asked for points only: statsforecast warns that it gives none
                warnings.filterwarnings("ignore", message="Prediction intervals are set")
                fc = self.sf_.predict(h=steps, level=level) if level else self.sf_.predict(h=steps)
        except Exception:  # noqa: BLE001 - a model without intervals (WindowAverage): points only
            if not level:
                raise
            fc = self.sf_.predict(h=h)
        fc = fc.reset_index() if SERIES not in fc.columns else fc
        if len(fc) > h * len(self.last_):
            fc = fc[fc.groupby(SERIES, sort=False).cumcount().to_numpy() < h].reset_index(drop=True)
        return fc.rename(columns=lambda c: c.replace(self._ALIAS, "yhat", 1) if c.startswith(self._ALIAS) else c)

    def backtest_intervals(self, windows: int, conformal_windows: int,
                           level: Sequence[int] = LEVELS) -> pd.DataFrame:
        """The model's own and statsforecast's conformal intervals on the last ``windows``
        backtest windows of the fitted history (each the fitted horizon long, origins a horizon
        apart), for choosing between them without the test window.

        One statsforecast ``cross_validation`` over ``windows + conformal_windows`` origins
        fits each series once an origin (its own intervals come with it); the conformal interval
        of a window is built from the absolute errors of the ``conformal_windows`` origins before
        it, which are exactly the scores ``ConformalIntervals(h, conformal_windows)`` would
        compute at that origin (statsforecast refits at the same origins), so each origin is
        fitted once instead of ``conformal_windows + 1`` times.

        Returns:
            One row per series, window and step: ``unique_id``, ``ds``, ``cutoff``, ``y``,
            ``yhat``, ``model-lo-L``/``model-hi-L`` and ``conformal-lo-L``/``conformal-hi-L``.

        Raises:
            DataError: The shortest series is too short for that many windows.
        """
        from statsforecast import StatsForecast
        from statsforecast.models import Naive

        check_is_fitted(self, "history_")
        h, total = int(self.horizon_), int(windows) + int(conformal_windows)
        shortest = int(self.history_.groupby(SERIES).size().min())
        if windows < 1 or conformal_windows < 2 or shortest < total * h + 1:
            raise DataError(f"a backtest of {windows} windows with {conformal_windows} conformal windows of {h} "
                            f"steps needs {total * h + 1} points a series; the shortest has {shortest}")
        level = sorted(int(lv) for lv in level)
        notes = list(self.notes_)
        model = self._model(self.season_length_)
        self.notes_ = notes  # building the model again repeats the fit's notes
        sf = StatsForecast(models=[model], freq=self.freq_, n_jobs=max(1, int(getattr(self, "n_jobs", 1) or 1)),
                           fallback_model=Naive(alias=self._ALIAS))
        cv = sf.cross_validation(h=h, df=self.history_[[SERIES, TIME, "y"]], n_windows=total, step_size=h,
                                 level=level)
        cv = cv.reset_index() if SERIES not in cv.columns else cv
        cv = cv.rename(columns={self._ALIAS: "yhat"}).sort_values([SERIES, "cutoff", TIME], kind="stable")
        n = cv[SERIES].nunique()
        err = np.abs(cv["y"] - cv["yhat"]).to_numpy(dtype=np.float64).reshape(n, total, h)
        mean = cv["yhat"].to_numpy(dtype=np.float64).reshape(n, total, h)
        out = cv.groupby(SERIES, sort=False).tail(windows * h).reset_index(drop=True)
        bounds = {f"conformal-{side}-{lv}": np.empty((n, windows, h)) for lv in level for side in ("lo", "hi")}
        for w in range(windows):
            at = conformal_windows + w
            scores = err[:, at - conformal_windows:at, :]                    # (series, windows before, h)
            paths = np.concatenate([mean[:, at:at + 1] - scores, mean[:, at:at + 1] + scores], axis=1)
            for lv in level:
                # statsforecast's "conformal_distribution" (models._add_conformal_distribution_intervals):
                # the quantiles of ŷ ± score at α/2 and 1 − α/2
                alpha = (100 - lv) / 200
                bounds[f"conformal-lo-{lv}"][:, w] = np.quantile(paths, alpha, axis=1)
                bounds[f"conformal-hi-{lv}"][:, w] = np.quantile(paths, 1 - alpha, axis=1)
        for name, values in bounds.items():
            out[name] = values.reshape(-1)
        return out


class NaiveForecaster(StatsForecaster):
    """The last value, repeated (statsforecast ``Naive``)."""

    def __init__(self, *, n_jobs: int = 1) -> None:
        self.n_jobs = n_jobs

    def _model(self, season_length: int) -> Any:
        from statsforecast.models import Naive

        return Naive(alias=self._ALIAS)


class SeasonalNaiveForecaster(StatsForecaster):
    """The value one season earlier (statsforecast ``SeasonalNaive``); ``season_length``
    defaults to the frequency's (W 52, M 12 …)."""

    def __init__(self, *, season_length: int | None = None, n_jobs: int = 1) -> None:
        self.season_length = season_length
        self.n_jobs = n_jobs

    def _model(self, season_length: int) -> Any:
        from statsforecast.models import SeasonalNaive

        return SeasonalNaive(season_length=season_length, alias=self._ALIAS)


class DriftForecaster(StatsForecaster):
    """The line from the first to the last value, extended (statsforecast ``RandomWalkWithDrift``)."""

    def __init__(self, *, n_jobs: int = 1) -> None:
        self.n_jobs = n_jobs

    def _model(self, season_length: int) -> Any:
        from statsforecast.models import RandomWalkWithDrift

        return RandomWalkWithDrift(alias=self._ALIAS)


class WindowMeanForecaster(StatsForecaster):
    """The mean of the last ``window`` values (statsforecast ``WindowAverage``); default one season."""

    def __init__(self, *, window: int | None = None, n_jobs: int = 1) -> None:
        self.window = window
        self.n_jobs = n_jobs

    def _model(self, season_length: int) -> Any:
        from statsforecast.models import WindowAverage

        return WindowAverage(window_size=int(self.window or max(season_length, 2)), alias=self._ALIAS)


class ETSForecaster(StatsForecaster):
    """statsforecast ``AutoETS``: error/trend/season chosen by AICc (``model="ZZZ"``).

    Args:
        model: The ETS spec (``"ZZZ"`` chooses each part; ``"AAN"`` …).
        damped: ``None`` lets AICc choose a damped trend, ``True``/``False`` forces it.
        season_length: Default the frequency's; above 24 the model is fitted without a season
            (AutoETS's own limit), noted in ``notes_``.
        conformal_windows: ``None``: the model's own intervals; ``>= 2``: statsforecast's
            conformal intervals from that many windows of each series' history (as ARIMA and Theta).
    """

    def __init__(self, *, model: str = "ZZZ", damped: bool | None = None, season_length: int | None = None,
                 series_time_limit_s: float | None = SERIES_TIME_LIMIT_S, conformal_windows: int | None = None,
                 n_jobs: int = 1) -> None:
        self.model = model
        self.damped = damped
        self.season_length = season_length
        self.series_time_limit_s = series_time_limit_s
        self.conformal_windows = conformal_windows
        self.n_jobs = n_jobs

    def _model(self, season_length: int) -> Any:
        from statsforecast.models import AutoETS

        if season_length > ETS_MAX_SEASON:
            self.notes_.append(f"AutoETS fits no season longer than {ETS_MAX_SEASON}: fitted without the "
                               f"season of {season_length}")
            season_length = 1
        return AutoETS(season_length=season_length, model=self.model, damped=self.damped, alias=self._ALIAS)


class ARIMAForecaster(StatsForecaster):
    """statsforecast ``AutoARIMA`` (Hyndman–Khandakar stepwise search).

    Its search is capped so that one slow series can't hold the sweep: at most ``nmodels``
    models per series (statsforecast's default is 94), the approximation of the likelihood
    during the search, and seasonal terms only up to ``max_season`` (a weekly season of 52
    took ~240 s on one series here; above it the seasonality is left to differencing-free
    non-seasonal ARIMA, noted in ``notes_``).
    """

    def __init__(self, *, nmodels: int = 20, max_p: int = 3, max_q: int = 3, approximation: bool = True,
                 max_season: int = 24, season_length: int | None = None,
                 series_time_limit_s: float | None = SERIES_TIME_LIMIT_S, conformal_windows: int | None = None,
                 n_jobs: int = 1) -> None:
        self.nmodels = nmodels
        self.max_p = max_p
        self.max_q = max_q
        self.approximation = approximation
        self.max_season = max_season
        self.season_length = season_length
        self.series_time_limit_s = series_time_limit_s
        self.conformal_windows = conformal_windows
        self.n_jobs = n_jobs

    def _model(self, season_length: int) -> Any:
        from statsforecast.models import AutoARIMA

        if season_length > self.max_season:
            self.notes_.append(f"AutoARIMA's seasonal search is capped at a season of {self.max_season}: "
                               f"fitted without the season of {season_length}")
            season_length = 1
        return AutoARIMA(season_length=season_length, nmodels=self.nmodels, max_p=self.max_p, max_q=self.max_q,
                         approximation=self.approximation, alias=self._ALIAS)


class ThetaForecaster(StatsForecaster):
    """statsforecast ``AutoTheta``: the Theta model chosen among its variants, on the
    seasonally adjusted series (classical decomposition at any season length)."""

    def __init__(self, *, decomposition_type: str = "multiplicative", model: str | None = None,
                 season_length: int | None = None, series_time_limit_s: float | None = SERIES_TIME_LIMIT_S,
                 conformal_windows: int | None = None, n_jobs: int = 1) -> None:
        self.decomposition_type = decomposition_type
        self.model = model
        self.season_length = season_length
        self.series_time_limit_s = series_time_limit_s
        self.conformal_windows = conformal_windows
        self.n_jobs = n_jobs

    def _model(self, season_length: int) -> Any:
        from statsforecast.models import AutoTheta

        return AutoTheta(season_length=season_length, decomposition_type=self.decomposition_type,
                         model=self.model, alias=self._ALIAS)
