"""Time-series forecasting: the next ``horizon`` values of one or many series.

The data is a long table: a time column, a value column (the target), an optional series-id
column (many series in one file) and optional numeric exogenous columns known in advance
(holidays, promotions). :meth:`TimeSeries.frame` renames the roles to ``unique_id``/``ds`` (the
names statsforecast and mlforecast read), checks the series before anything is written (gaps,
duplicated timestamps, irregular or unreadable times, non-numeric values, series too short for
the horizon and the season) and sorts the rows by series then time. What the rows mean as a
forecast (the frequency, the season length it implies, the horizon and the backtest step) rides
on the frame as ``X.attrs["forecast"]`` (pandas keeps ``attrs`` through ``iloc``, masks and
pickling), so the folds, the models and the evaluation all read the same values.

Validation is never random: the last ``horizon`` points of every series are the held-out test
set, and the folds inside each trial are rolling-origin backtests with an expanding window
(:class:`RollingOrigin`). Forecasting models read the raw frame (``uses_features = False``),
and score with the series' own history (MASE's scale).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from specweave_ray.exceptions import ConfigError, DataError
from specweave_ray.metrics import MetricDef, forecast_scores
from specweave_ray.problems._base import ProblemType, sample_groups

__all__ = ["SERIES", "TIME", "RollingOrigin", "TimeSeries", "forecast_info", "season_length_for", "stl_strength"]

SERIES, TIME = "unique_id", "ds"
FCST = "specweave_ray.candidates.forecasters"
GBM = "specweave_ray.candidates._mlforecast.GBMForecaster"
ONE_SERIES = "series"          # the id of the single series of a file without a series column
_SHOWN = 3                     # timestamps named in a message

# Season length and default horizon by the frequency's base unit (the M4 convention).
_SEASON = {"H": 24, "h": 24, "D": 7, "B": 5, "W": 52, "M": 12, "MS": 12, "ME": 12, "Q": 4, "QS": 4,
           "QE": 4, "Y": 1, "YS": 1, "YE": 1, "A": 1, "AS": 1, "T": 60, "min": 60, "S": 60, "s": 60}
_HORIZON = {24: 24, 7: 14, 5: 10, 52: 12, 12: 12, 4: 4, 1: 2, 60: 60}


def _base(freq: str) -> str:
    """``W-SUN`` → ``W``, ``2D`` → ``D``, ``QS-OCT`` → ``QS``."""
    return re.sub(r"^\d+", "", str(freq)).split("-")[0]


def season_length_for(freq: str) -> int:
    """The season length a frequency implies: H 24, D 7, B 5, W 52, M 12, Q 4, Y 1 (else 1)."""
    base = _base(freq)
    return _SEASON.get(base, _SEASON.get(base.upper(), 1))


def forecast_info(X: Any) -> dict[str, Any]:
    """What a framed frame forecasts (``freq``, ``season_length``, ``horizon``, ``step``).

    Raises:
        DataError: ``X`` was not framed by :meth:`TimeSeries.frame` (no ``attrs["forecast"]``).
    """
    info = getattr(X, "attrs", {}).get("forecast")
    if not info:
        raise DataError("a forecasting frame carries its frequency and horizon in X.attrs['forecast'] "
                        "(set by the timeseries problem type's frame); frame the data first")
    return dict(info)


def _stamps(values: Any) -> str:
    shown = [str(pd.Timestamp(v)) for v in list(values)[:_SHOWN]]
    more = len(values) - len(shown)
    return ", ".join(shown) + (f" (+{more} more)" if more > 0 else "")


class RollingOrigin:
    """Rolling-origin backtests with an expanding window, within every series.

    Fold ``i`` of ``n_windows`` validates, in each series, the ``horizon`` points that start
    ``(n_windows - 1 - i) * step + horizon`` points before the series' end, after training on
    every earlier point of every series: the last fold's window ends where the series ends (the
    training part's end; the held-out test window lies beyond it). Never the future, never
    random. ``horizon`` and ``step`` are read from the frame (``X.attrs["forecast"]``) unless
    given.
    """

    def __init__(self, n_windows: int = 3, *, horizon: int | None = None, step: int | None = None) -> None:
        if n_windows < 1:
            raise ConfigError(f"a backtest needs n_windows >= 1, got {n_windows}")
        self.n_windows = n_windows
        self.horizon = horizon
        self.step = step
        self._seen: dict[str, Any] = {}

    def __repr__(self) -> str:
        seen = "".join(f", {k}={v!r}" for k, v in self._seen.items())
        return f"RollingOrigin(n_windows={self.n_windows}, horizon={self.horizon}, step={self.step}{seen})"

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.n_windows

    def split(self, X: pd.DataFrame, y: Any = None, groups: Any = None):
        info = forecast_info(X)
        self.horizon = int(self.horizon or info["horizon"])
        self.step = int(self.step or info.get("step") or self.horizon)
        self._seen = {"freq": info.get("freq"), "season_length": info.get("season_length")}
        codes = pd.factorize(X[SERIES].to_numpy())[0]
        order = np.lexsort((X[TIME].to_numpy(), codes))
        counts = np.bincount(codes)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        position = np.empty(len(X), dtype=np.int64)
        position[order] = np.arange(len(X)) - starts[codes[order]]
        from_end = counts[codes] - position  # 1 for a series' last point
        for i in range(self.n_windows):
            end = (self.n_windows - 1 - i) * self.step  # points after the window, per series
            valid = (from_end > end) & (from_end <= end + self.horizon)
            train = from_end > end + self.horizon
            yield np.flatnonzero(train), np.flatnonzero(valid)


class TimeSeries(ProblemType):
    name = "timeseries"
    aliases = ("forecasting", "time series", "time-series forecasting", "forecast",
               "time series forecasting", "demand forecasting")
    summary = "the next horizon values of one or many series; rolling-origin backtests; MASE/sMAPE/MAPE"
    target_kind = "value"
    output = "forecasts"
    metrics = ("mase", "smape", "mape", "rmse", "mae")
    report_extras = ("bias",)
    default_metric = "mase"
    default_criteria = ("MAPE < 10%", "MASE < 1.0", "lift over best baseline >= 20%")
    uses_features = False
    estimators = {
        "naive": f"{FCST}.NaiveForecaster",
        "seasonal-naive": f"{FCST}.SeasonalNaiveForecaster",
        "drift": f"{FCST}.DriftForecaster",
        "window-mean": f"{FCST}.WindowMeanForecaster",
        "ets": f"{FCST}.ETSForecaster",
        "autoets": f"{FCST}.ETSForecaster",
        "arima": f"{FCST}.ARIMAForecaster",
        "autoarima": f"{FCST}.ARIMAForecaster",
        "theta": f"{FCST}.ThetaForecaster",
        "autotheta": f"{FCST}.ThetaForecaster",
        "lightgbm": GBM,
        "mlforecast": GBM,
        "xgboost": GBM,
    }
    # Sized for a laptop with two cores: AutoARIMA's search is capped (nmodels) and left out of
    # the defaults (a config adds it); the GBM's few searched parameters.
    default_candidates = (
        {"name": "ets", "estimator": "ets", "params": {"damped": {"choice": [None, True]}}, "num_samples": 2},
        {"name": "theta", "estimator": "theta",
         "params": {"decomposition_type": {"choice": ["multiplicative", "additive"]}}, "num_samples": 2},
        {"name": "lightgbm", "estimator": "lightgbm",
         "params": {"family": "lightgbm", "n_estimators": {"randint": [100, 300]},
                    "learning_rate": {"loguniform": [0.02, 0.2]}, "num_leaves": {"randint": [8, 48]},
                    "target_transform": {"choice": ["log", "log-diff1"]}}, "num_samples": 4},
    )

    # -- metrics -----------------------------------------------------------------------------
    def score_model(self, metric: MetricDef, model: Any, X: pd.DataFrame, y: Any) -> float:
        """``metric`` of ``model``'s forecast of the rows ``X`` (the steps after its training
        history), MASE scaled by each series' training history."""
        pred = model.predict(X)
        return forecast_scores(np.asarray(y, dtype=np.float64), pred, X[SERIES].to_numpy(), model.scales_)[metric.name]

    def fit_fold(self, estimator: Any, X_train: pd.DataFrame, y_train: Any, X_valid: pd.DataFrame) -> Any:
        """A backtest fold's fit. A forecaster that can (``fits_for_window``: the statsforecast
        families) fits and forecasts the window in one pass, ``fit(..., window=X_valid)``: the
        same forecasts of the window, without the per-series fitted models that only later
        forecasts would read."""
        if getattr(estimator, "fits_for_window", False):
            return estimator.fit(X_train, y_train, window=X_valid)
        return estimator.fit(X_train, y_train)

    # -- data --------------------------------------------------------------------------------
    def frame(self, df: pd.DataFrame, *, target: str | None = None,
              columns: Mapping[str, Any] | None = None) -> tuple[pd.DataFrame, pd.Series]:
        """A long table → ``X`` (``unique_id``, ``ds``, exogenous columns; sorted by series and
        time; ``attrs["forecast"]``) and ``y`` (the values).

        ``columns``: ``time_column`` (required), ``series_column``, ``horizon``, ``frequency``
        (a pandas alias; inferred per series when absent), ``step`` (between backtest windows;
        default the horizon).

        Raises:
            ConfigError: no target or time column named, a bad horizon, step or frequency alias.
            DataError: a named column is missing, a time is unreadable, a value is not a number,
                a timestamp is duplicated, a series has gaps or is too short, or the frequency
                cannot be inferred (the message says how to set it).
        """
        cols = dict(columns or {})
        time_col, series_col = cols.get("time_column"), cols.get("series_column")
        if target is None or not time_col:
            raise ConfigError("forecasting data needs data.target (the values) and data.time_column "
                              "(--target V --time-column C)")
        for what, col in (("value column", target), ("time column", time_col), ("series column", series_col)):
            if col is not None and col not in df.columns:
                raise DataError(f"{what} {col!r} is not in the data: {', '.join(map(str, df.columns[:20]))}")
        values = df[target]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            bad = pd.to_numeric(values, errors="coerce").isna() & values.notna()
            row = int(np.flatnonzero(bad.to_numpy())[0]) if bad.any() else 0
            raise DataError(f"value column {target!r} must be numeric: row {row + 1} holds "
                            f"{values.iloc[row]!r}")
        ds = _times(df[time_col], time_col)
        ids = (df[series_col].astype(str).to_numpy() if series_col is not None
               else np.full(len(df), ONE_SERIES, dtype=object))
        if series_col is not None and df[series_col].isna().any():
            row = int(np.flatnonzero(df[series_col].isna().to_numpy())[0])
            raise DataError(f"series column {series_col!r} is missing at row {row + 1}; drop those rows")
        exog = [c for c in df.columns if c not in (target, time_col, series_col)]
        for col in exog:
            if not pd.api.types.is_numeric_dtype(df[col]):
                raise DataError(f"column {col!r} is not numeric: columns beside the series, time and value are "
                                f"exogenous values known in advance and must be numbers; drop or encode it")
            if df[col].isna().any():
                raise DataError(f"exogenous column {col!r} has {int(df[col].isna().sum())} missing value(s); "
                                f"its future values must be known")
        X = pd.DataFrame({SERIES: ids, TIME: ds}, index=df.index)
        for col in exog:
            X[str(col)] = df[col].to_numpy()
        order = np.lexsort((X[TIME].to_numpy(), X[SERIES].to_numpy()))
        X, y = X.iloc[order], values.iloc[order].astype(np.float64).rename(str(target))
        dup = X.duplicated([SERIES, TIME], keep=False)
        if dup.any():
            first = X[dup].iloc[0]
            n = int(X[dup & (X[SERIES] == first[SERIES])][TIME].nunique())
            raise DataError(f"series {first[SERIES]!r} has duplicated timestamps: {first[TIME]} and {n - 1} "
                            f"more appear twice or more; aggregate or drop the duplicates")
        freq = _frequency(X, cols.get("frequency"))
        season = int(cols.get("season_length") or season_length_for(freq))
        horizon = cols.get("horizon")
        horizon = int(horizon) if horizon is not None else _HORIZON.get(season, 12)
        step = int(cols.get("step") or horizon)
        if horizon < 1 or step < 1:
            raise ConfigError(f"horizon and step must be >= 1, got horizon={horizon}, step={step}")
        _check_gaps(X, freq)
        lengths = X.groupby(SERIES, sort=False).size()
        short = lengths[lengths < 2 * horizon + 1]
        if len(short):
            raise DataError(f"series {short.index[0]!r} has {int(short.iloc[0])} points: a horizon of {horizon} "
                            f"needs at least {2 * horizon + 1} (the test window, one backtest window and one "
                            f"point to fit on); shorten the horizon (data.horizon) or drop the series"
                            + (f" ({len(short) - 1} more series too short)" if len(short) > 1 else ""))
        X.attrs["forecast"] = {"freq": freq, "season_length": season, "horizon": horizon, "step": step}
        return X, y

    def check_data(self, X: pd.DataFrame, y: Any, *, metric: str, cv: int | None = None) -> None:
        """Refuse series too short for the season plus the backtest: the first fold must train
        on more than one season (seasonal naive and MASE's scale need it)."""
        if cv is None:
            return
        info = forecast_info(X)
        h, step, m = info["horizon"], info["step"], info["season_length"]
        need = m + 1 + h * 2 + (cv - 1) * step  # a season + 1 to fit, cv windows, the test window
        lengths = X.groupby(SERIES, sort=False).size()
        short = lengths[lengths < need]
        if len(short):
            raise DataError(f"series {short.index[0]!r} has {int(short.iloc[0])} points; a season of {m} "
                            f"({info['freq']}), {cv} backtest windows of {h} every {step} and the {h}-point "
                            f"test window need {need}; use fewer windows (sweep.cv), a shorter horizon, or "
                            f"drop the series" + (f" ({len(short) - 1} more too short)" if len(short) > 1 else ""))

    def time_aware(self, X: Any) -> bool:
        return True

    def split_report(self, X_train: pd.DataFrame, X_test: pd.DataFrame) -> dict[str, Any]:
        info = forecast_info(X_train)
        return {"series": int(X_test[SERIES].nunique()), "test_points_per_series": info["horizon"],
                "test_start": str(X_test[TIME].min()), "test_end": str(X_test[TIME].max()),
                **{k: info[k] for k in ("freq", "season_length", "horizon", "step")}}

    # -- target ------------------------------------------------------------------------------
    def fits(self, y: Any) -> bool:
        return False  # a forecast is named (time column, horizon), never inferred from values

    def _check_values(self, y: pd.Series) -> None:
        if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
            raise DataError(f"value column {y.name!r} must be numeric, got dtype {y.dtype}")
        if not np.isfinite(np.asarray(y, dtype=np.float64)).all():
            raise DataError(f"value column {y.name!r} has infinite values")

    def encode_target(self, y: Any) -> tuple[None, np.ndarray]:
        return None, np.asarray(y, dtype=np.float64)

    # -- splits ------------------------------------------------------------------------------
    def holdout_split(self, X: pd.DataFrame, y: pd.Series, *, test_size: float = 0.2, seed: int = 0,
                      time_column: str | None = None
                      ) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
        """The last ``horizon`` points of every series are the test set (``test_size`` and
        ``seed`` do not apply: never random)."""
        if len(X) != len(y):
            raise DataError(f"X has {len(X)} rows but y has {len(y)}")
        train, test = next(RollingOrigin(1).split(X))
        test_mask = np.zeros(len(X), dtype=bool)
        test_mask[test] = True
        return X[~test_mask], X[test_mask], y[~test_mask], y[test_mask]

    def splitter(self, n_splits: int, *, seed: int) -> RollingOrigin:
        return RollingOrigin(n_splits)

    def folds(self, X: Any, y: np.ndarray, *, cv: int | Any, seed: int) -> tuple[list[Any], str]:
        """``cv`` backtest windows (:class:`RollingOrigin`); one window is enough here."""
        if isinstance(cv, int) and not isinstance(cv, bool) and cv == 1:
            cv = RollingOrigin(1)
        return super().folds(X, y, cv=cv, seed=seed)

    def sample(self, df: pd.DataFrame, *, target: str, n: int, seed: int = 0) -> pd.DataFrame:
        """Whole series at random until ``n`` points: sampled points would break the histories."""
        if n >= len(df) or SERIES not in df.columns:
            return df.copy() if n >= len(df) else df.iloc[:n].copy()
        return sample_groups(df, SERIES, n, seed=seed)

    # -- models ------------------------------------------------------------------------------
    def baselines(self, *, rule: str | None = None, seed: int = 0) -> dict[str, tuple[str, dict[str, Any]]]:
        if rule is not None:
            raise ConfigError(f"a rule baseline predicts labels; timeseries has none (got rule {rule!r})")
        return {"naive": (f"{FCST}.NaiveForecaster", {}),
                "seasonal-naive": (f"{FCST}.SeasonalNaiveForecaster", {}),
                "drift": (f"{FCST}.DriftForecaster", {}),
                "window-mean": (f"{FCST}.WindowMeanForecaster", {})}

    def predict(self, model: Any, X: Any) -> np.ndarray:
        """The point forecast of each row of ``X`` (the steps after the model's history)."""
        return np.asarray(model.predict(X), dtype=np.float64)

    # -- reports -----------------------------------------------------------------------------
    def target_profile(self, y: pd.Series) -> dict[str, Any]:
        v = pd.Series(np.asarray(y, dtype=np.float64))
        return {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()), "max": float(v.max()),
                "zeros": int((v == 0).sum())}

    def data_profile(self, X: pd.DataFrame, y: Any) -> dict[str, Any]:
        """Series, their lengths and span, and what the forecast reads (frequency, season, horizon)."""
        if SERIES not in X.columns:
            return {}
        lengths = X.groupby(SERIES, sort=False).size()
        out = {"series": int(len(lengths)), "points": int(len(X)),
               "points_per_series": {q: float(lengths.quantile(p)) for q, p in
                                     (("min", 0), ("median", 0.5), ("max", 1))},
               "start": str(X[TIME].min()), "end": str(X[TIME].max()),
               "exogenous": [str(c) for c in X.columns if c not in (SERIES, TIME)]}
        info = X.attrs.get("forecast")
        if y is not None and len(y) == len(X):
            out["stationarity"] = _stationarity(X, np.asarray(y, dtype=np.float64))
            if info:
                out["stl"] = _strengths(X, np.asarray(y, dtype=np.float64), int(info["season_length"]))
        return {**out, **(info or {})}

    def eda_section(self, df: pd.DataFrame, section: dict[str, Any], directory: Any, *,
                    target: str) -> tuple[list[str], list[str]]:
        """Stationarity (ADF, KPSS) and STL strengths over the tested series, and for a few
        representative series (the first, the largest by volume) the STL decomposition
        (``stl-decomposition.png``) and the ACF/PACF (``acf-pacf.png``)."""
        if SERIES not in df.columns or target not in df.columns:
            return [], []
        lines = ["", "## Series", ""]
        if section:
            lines.append(f"- {section.get('series')} series, {section.get('points_per_series', {}).get('median')} "
                         f"points each (median); {section.get('freq')}, season {section.get('season_length')}, "
                         f"horizon {section.get('horizon')}")
        st = section.get("stationarity") or {}
        if st:
            lines.append(f"- stationarity ({st['tested_series']} series, 5%): ADF calls "
                         f"{st['adf_stationary_share']:.0%} stationary (median p {st['adf_median_p']:.3g}), KPSS "
                         f"{st['kpss_stationary_share']:.0%} (median p {st['kpss_median_p']:.3g})")
        stl = section.get("stl") or {}
        if stl.get("tested_series"):
            lines.append(f"- STL (period {stl['period']}, {stl['tested_series']} series): strength of trend F_T "
                         f"median {stl['trend_strength_median']:.2f}, of seasonality F_S median "
                         f"{stl['seasonal_strength_median']:.2f} (0: none, 1: all of the variation; Hyndman & "
                         f"Athanasopoulos, FPP3 §4.3)")
        elif stl.get("note"):
            lines.append(f"- STL: {stl['note']}")
        plots = _series_plots(df, target, section.get("season_length") or 1, directory)
        return lines, plots

    def leakage_score(self, values: np.ndarray, y: pd.Series) -> tuple[float, str]:
        target = np.asarray(y, dtype=np.float64)
        finite = np.isfinite(values)
        if finite.sum() > 2 and np.std(values[finite]) > 0 and np.std(target[finite]) > 0:
            return abs(float(np.corrcoef(values[finite], target[finite])[0, 1])), "abs_corr"
        return 0.0, "abs_corr"

    def ab_inputs(self, control: Mapping[str, float], *, target: str) -> tuple[dict[str, Any], str, bool]:
        """The control's absolute forecast error per series-step, to decrease: its mean is the
        MAE, its standard deviation sqrt(RMSE² − MAE²) (E|e|² is the mean squared error)."""
        if "mae" not in control or "rmse" not in control:
            raise DataError("the A/B control has no measured mae and rmse (run T-006 with baselines)")
        mae, rmse = float(control["mae"]), float(control["rmse"])
        std = float(np.sqrt(max(rmse ** 2 - mae ** 2, 0.0))) or max(mae, 1e-12)
        return ({"baseline_rate": None, "baseline_mean": mae, "baseline_std": std},
                f"absolute forecast error of {target} per series and step", True)


STATIONARITY_SERIES = 50  # the tests run on at most this many series (the first ones), at 5%


def _stationarity(X: pd.DataFrame, y: np.ndarray) -> dict[str, Any]:
    """ADF (null: a unit root) and KPSS (null: level-stationary) per series, statsmodels'
    tests, summarised as the share of series each calls stationary at 5% and the median p-values."""
    import warnings

    from statsmodels.tsa.stattools import adfuller, kpss

    adf_p, kpss_p = [], []
    codes = X[SERIES].to_numpy()
    for sid in list(pd.unique(codes))[:STATIONARITY_SERIES]:
        values = y[codes == sid]
        if len(values) < 8 or np.std(values) == 0:
            continue
        with warnings.catch_warnings():  # KPSS warns when its p-value is outside its table
            warnings.simplefilter("ignore")
            adf_p.append(float(adfuller(values, autolag="AIC")[1]))
            kpss_p.append(float(kpss(values, regression="c", nlags="auto")[1]))
    if not adf_p:
        return {}
    return {"tested_series": len(adf_p), "adf_stationary_share": float(np.mean(np.array(adf_p) < 0.05)),
            "kpss_stationary_share": float(np.mean(np.array(kpss_p) >= 0.05)),
            "adf_median_p": float(np.median(adf_p)), "kpss_median_p": float(np.median(kpss_p)),
            "note": "ADF rejects a unit root below p 0.05; KPSS rejects stationarity below 0.05 "
                    "(its p-values are clipped to [0.01, 0.1])"}


STL_SERIES = 50      # the STL strengths are computed on at most this many series (the first ones)
PLOTTED_SERIES = 2   # the EDA plots show the first series and the largest by volume
# STL's seasonal smoother: statsmodels' default of 7 cycles reads a season into white noise when a
# series has few cycles (F_S ≈ 0.4 on 8 years of monthly noise, 0.6 on 4 years of weekly noise);
# 13 and the robust fit bring that to ≈ 0.2 and 0.3 while a true season stays ≈ 0.9 (measured).
STL_SEASONAL = 13


def stl_strength(values: Any, period: int) -> tuple[float, float] | None:
    """Hyndman's strengths of trend and seasonality from an STL decomposition (statsmodels
    ``STL``): ``F_T = max(0, 1 − Var(R) / Var(T + R))``, ``F_S = max(0, 1 − Var(R) / Var(S + R))``,
    each in [0, 1] (robust STL, seasonal smoother ``STL_SEASONAL``). None when the series is
    shorter than two seasons or the period is under 2."""
    from statsmodels.tsa.seasonal import STL

    y = np.asarray(values, dtype=np.float64)
    if period < 2 or len(y) < 2 * period + 1 or np.std(y) == 0:
        return None
    fit = STL(y, period=period, seasonal=STL_SEASONAL, robust=True).fit()
    resid = np.var(fit.resid)

    def strength(part: np.ndarray) -> float:
        total = np.var(part + fit.resid)
        return float(np.clip(1.0 - resid / total, 0.0, 1.0)) if total > 0 else 0.0

    return strength(fit.trend), strength(fit.seasonal)


def _strengths(X: pd.DataFrame, y: np.ndarray, period: int) -> dict[str, Any]:
    codes = X[SERIES].to_numpy()
    found = []
    for sid in list(pd.unique(codes))[:STL_SERIES]:
        got = stl_strength(y[codes == sid], period)
        if got is not None:
            found.append(got)
    if not found:
        why = ("no season (period 1)" if period < 2 else
               f"the series are shorter than two seasons of {period}, which STL needs")
        return {"tested_series": 0, "period": period, "note": f"not computed: {why}"}
    trend, season = np.array(found).T
    return {"tested_series": len(found), "period": period,
            "trend_strength_median": float(np.median(trend)), "seasonal_strength_median": float(np.median(season)),
            "trend_strength_p10_p90": [float(q) for q in np.quantile(trend, [0.1, 0.9])],
            "seasonal_strength_p10_p90": [float(q) for q in np.quantile(season, [0.1, 0.9])],
            "strongly_seasonal_share": float(np.mean(season >= 0.64)),
            "note": "Hyndman's F_T and F_S from statsmodels STL: 0 no trend/season, 1 all of the variation; "
                    "F_S >= 0.64 counts as strongly seasonal (Wang, Smith & Hyndman 2006)"}


def _series_plots(df: pd.DataFrame, target: str, period: int, directory: Any) -> list[str]:
    """``stl-decomposition.png`` and ``acf-pacf.png`` of the first series and the largest by
    volume (statsmodels ``STL``, ``plot_acf``/``plot_pacf``), on the Agg canvas."""
    from pathlib import Path

    from matplotlib.figure import Figure
    from statsmodels.graphics.tsaplots import plot_acf, plot_pacf
    from statsmodels.tsa.seasonal import STL

    directory = Path(directory)
    volume = df.groupby(SERIES, sort=False)[target].apply(lambda v: float(np.abs(v).sum()))
    shown = list(dict.fromkeys([volume.index[0], volume.idxmax()]))[:PLOTTED_SERIES]
    series = {sid: df.loc[df[SERIES] == sid].sort_values(TIME) for sid in shown}
    plots = []
    stl_ok = [sid for sid, part in series.items() if period >= 2 and len(part) >= 2 * period + 1]
    fig = Figure(figsize=(7 * len(shown), 8))
    for col, (sid, part) in enumerate(series.items()):
        ds, values = pd.DatetimeIndex(part[TIME]), part[target].to_numpy(dtype=np.float64)
        if sid not in stl_ok:
            ax = fig.add_subplot(4, len(shown), col + 1)
            ax.plot(ds, values, color="black", lw=1)
            ax.set_title(f"{sid}: no STL (season {period} needs {2 * period + 1} points, has {len(values)})",
                         fontsize=8)
            continue
        fit = STL(values, period=period, seasonal=STL_SEASONAL, robust=True).fit()
        for row, (name, part_values) in enumerate((("observed", values), ("trend", fit.trend),
                                                   ("seasonal", fit.seasonal), ("remainder", fit.resid))):
            ax = fig.add_subplot(4, len(shown), row * len(shown) + col + 1)
            ax.plot(ds, part_values, color="black" if row == 0 else "tab:blue", lw=1)
            ax.set_ylabel(name, fontsize=8)
            if row == 0:
                ax.set_title(f"STL of {sid} (period {period})", fontsize=9)
    fig.tight_layout()
    fig.savefig(directory / "stl-decomposition.png", dpi=80)
    plots.append("stl-decomposition.png")

    fig = Figure(figsize=(7 * len(shown), 5))
    for col, (sid, part) in enumerate(series.items()):
        values = part[target].to_numpy(dtype=np.float64)
        lags = int(max(1, min(2 * max(period, 1), len(values) // 2 - 1)))
        ax = fig.add_subplot(2, len(shown), col + 1)
        plot_acf(values, ax=ax, lags=lags, title=f"ACF of {sid}")
        ax = fig.add_subplot(2, len(shown), len(shown) + col + 1)
        plot_pacf(values, ax=ax, lags=min(lags, len(values) // 2 - 1), method="ywm", title=f"PACF of {sid}")
    fig.tight_layout()
    fig.savefig(directory / "acf-pacf.png", dpi=80)
    plots.append("acf-pacf.png")
    return plots


def _times(column: pd.Series, name: str) -> pd.Series:
    if column.isna().any():
        row = int(np.flatnonzero(column.isna().to_numpy())[0])
        raise DataError(f"time column {name!r} is missing at row {row + 1}; drop those rows")
    if pd.api.types.is_datetime64_any_dtype(column):
        return column.dt.tz_localize(None) if getattr(column.dt, "tz", None) is not None else column
    parsed = pd.to_datetime(column, errors="coerce")
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise DataError(f"time column {name!r} has a value that is not a date at row {row + 1}: "
                        f"{column.iloc[row]!r}")
    return parsed


def _frequency(X: pd.DataFrame, given: str | None) -> str:
    """The given frequency (checked as a pandas alias), or the one every series agrees on."""
    if given:
        try:
            return pd.tseries.frequencies.to_offset(str(given)).freqstr
        except ValueError as err:
            raise ConfigError(f"frequency {given!r} is not a pandas frequency alias (H, D, W, MS, QS …): "
                              f"{err}") from None
    found: dict[str, str] = {}
    failed: list[str] = []
    for sid, ds in X.groupby(SERIES, sort=False)[TIME]:
        freq = pd.infer_freq(pd.DatetimeIndex(ds)) if len(ds) >= 3 else None
        if freq is None:
            failed.append(str(sid))
        else:
            found.setdefault(freq, str(sid))
    if len(found) > 1:
        (a, sa), (b, sb) = list(found.items())[:2]
        raise DataError(f"series disagree on the frequency: {sa!r} is {a}, {sb!r} is {b}; give one "
                        f"(data.frequency, --frequency)")
    if not found:
        raise DataError(f"cannot infer the frequency of series {failed[0]!r} (irregular or too few "
                        f"timestamps); set it: data.frequency (--frequency) to a pandas alias such as "
                        f"H, D, W, MS or QS")
    freq = next(iter(found))
    if failed:  # the others are regular: these have gaps, which the gap check names
        _check_gaps(X[X[SERIES].isin(failed)], freq)
    return freq


def _check_gaps(X: pd.DataFrame, freq: str) -> None:
    """Each series' timestamps must be exactly the ``freq`` grid from its first to its last."""
    for sid, ds in X.groupby(SERIES, sort=False)[TIME]:
        index = pd.DatetimeIndex(ds)
        grid = pd.date_range(index[0], index[-1], freq=freq)
        off = index.difference(grid)
        if len(off):
            raise DataError(f"series {sid!r} has timestamps off its {freq} grid: {_stamps(off)}; set data.frequency "
                            f"(--frequency) to the data's own, or regularise the times")
        missing = grid.difference(index)
        if len(missing):
            raise DataError(f"series {sid!r} has gaps at {freq}: {_stamps(missing)} missing; fill them "
                            f"(e.g. with 0 for sales) or drop the series")
