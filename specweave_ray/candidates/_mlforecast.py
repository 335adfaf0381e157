"""One global gradient-boosted model across all series, through mlforecast.

Features, all computed from the past only by mlforecast: lags (1 … 4 and one season back, when
the history is long enough), rolling means of the last value (over 4 steps and one season),
calendar features by frequency (hour and weekday, weekday and month, week of year and month,
month, quarter) and the exogenous columns the frame holds (known in advance: their future values
come with the rows to forecast). ``target_transform`` is what the trees model: ``"log"`` (log1p of
the values, the default: seasonal, holiday and promotion effects on sales are multiplicative),
``"log-diff1"`` (first differences of the logs) or ``"diff1"`` (first differences: a trend the
trees could not extrapolate from levels), or ``"none"``. ``strategy="recursive"`` feeds
each step's forecast back as the next step's lag; ``"direct"`` trains one model per step of the
horizon.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from specweave_ray.candidates.forecasters import Forecaster
from specweave_ray.exceptions import CandidateError
from specweave_ray.problems.timeseries import SERIES, TIME

__all__ = ["GBMForecaster", "calendar_features"]

_TRANSFORMS = ("log", "log-diff1", "diff1", "none")


def _week(dates: pd.DatetimeIndex) -> np.ndarray:
    return dates.isocalendar().week.to_numpy(dtype=np.int64)


def calendar_features(freq: str) -> list[Any]:
    """The calendar features a frequency has (mlforecast ``date_features``)."""
    base = str(freq).lstrip("0123456789").split("-")[0]
    if base in ("H", "h", "T", "min"):
        return ["hour", "dayofweek"]
    if base in ("D", "B"):
        return ["dayofweek", "month", "dayofyear"]
    if base == "W":
        return [_week, "month"]
    if base in ("M", "MS", "ME"):
        return ["month"]
    if base in ("Q", "QS", "QE"):
        return ["quarter"]
    return []


class GBMForecaster(Forecaster):
    """LightGBM or XGBoost on lags, rolling means and calendar features (mlforecast).

    Args:
        family: ``"lightgbm"`` or ``"xgboost"``.
        n_estimators, learning_rate, num_leaves, max_depth: The booster's size (``num_leaves``
            for LightGBM, ``max_depth`` for XGBoost).
        target_transform: ``"log"``, ``"log-diff1"``, ``"diff1"`` or ``"none"`` (module docstring).
        strategy: ``"recursive"`` or ``"direct"`` (one model per horizon step).
        conformal_windows: With ``n >= 2``, conformal prediction intervals from ``n`` backtest
            windows of the horizon (mlforecast ``PredictionIntervals``; ``n`` more fits); 0: none.
        n_jobs: Threads (the trial's CPUs).
    """

    def __init__(self, *, family: str = "lightgbm", n_estimators: int = 200, learning_rate: float = 0.05,
                 num_leaves: int = 31, max_depth: int = 6, target_transform: str = "log",
                 strategy: str = "recursive", conformal_windows: int = 0, random_state: int = 0,
                 n_jobs: int = 1) -> None:
        self.family = family
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.target_transform = target_transform
        self.strategy = strategy
        self.conformal_windows = conformal_windows
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _booster(self) -> Any:
        if self.family == "lightgbm":
            import lightgbm as lgb

            return lgb.LGBMRegressor(n_estimators=self.n_estimators, learning_rate=self.learning_rate,
                                     num_leaves=self.num_leaves, random_state=self.random_state,
                                     n_jobs=self.n_jobs, verbose=-1)
        if self.family == "xgboost":
            import xgboost as xgb

            return xgb.XGBRegressor(n_estimators=self.n_estimators, learning_rate=self.learning_rate,
                                    max_depth=self.max_depth, random_state=self.random_state,
                                    n_jobs=self.n_jobs, tree_method="hist")
        raise CandidateError(f"family must be 'lightgbm' or 'xgboost', got {self.family!r}")

    def _fit(self, df: pd.DataFrame) -> None:
        from mlforecast import MLForecast
        from mlforecast.lag_transforms import RollingMean
        from mlforecast.target_transforms import Differences, GlobalSklearnTransformer
        from sklearn.preprocessing import FunctionTransformer

        if self.target_transform not in _TRANSFORMS:
            raise CandidateError(f"target_transform must be one of {', '.join(_TRANSFORMS)}, got {self.target_transform!r}")
        logged = self.target_transform.startswith("log")
        if logged and (df["y"] < 0).any():
            raise CandidateError(f"target_transform {self.target_transform!r} takes log1p of the values, and "
                                 f"some are negative; use 'diff1' or 'none'")
        if self.strategy not in ("recursive", "direct"):
            raise CandidateError(f"strategy must be 'recursive' or 'direct', got {self.strategy!r}")
        m = self.season_length_
        shortest = int(df.groupby(SERIES).size().min())
        # a lag longer than the shortest history would leave that series no training rows
        lags = [lag for lag in sorted({1, 2, 3, 4, m}) if lag < shortest - 2]
        transforms = {1: [RollingMean(window_size=4)] + ([RollingMean(window_size=m)] if 4 < m < shortest - 2 else [])}
        self.lags_ = lags
        self.mlf_ = MLForecast(models={"yhat": self._booster()}, freq=self.freq_, lags=lags,
                               lag_transforms=transforms, date_features=calendar_features(self.freq_),
                               target_transforms=(
                                   [GlobalSklearnTransformer(FunctionTransformer(np.log1p, np.expm1))] if logged else [])
                               + ([Differences([1])] if self.target_transform.endswith("diff1") else []) or None,
                               num_threads=1)
        extra: dict[str, Any] = {"max_horizon": self.horizon_} if self.strategy == "direct" else {}
        if self.conformal_windows >= 2:
            from mlforecast.utils import PredictionIntervals

            extra["prediction_intervals"] = PredictionIntervals(n_windows=int(self.conformal_windows), h=self.horizon_)
        self.mlf_.fit(df, static_features=[], **extra)

    def _forecast(self, h: int, X_future: pd.DataFrame | None, level: Sequence[int] | None) -> pd.DataFrame:
        if self.strategy == "direct" and h > self.horizon_:
            raise CandidateError(f"a direct model forecasts at most its horizon ({self.horizon_} steps), asked {h}")
        X_df = None
        if self.exogenous_:
            if X_future is None:
                raise CandidateError(f"this model reads exogenous columns {self.exogenous_}: give their future "
                                     f"values (X_future with {SERIES}, {TIME} and those columns)")
            X_df = X_future.assign(**{TIME: pd.DatetimeIndex(X_future[TIME])})
            X_df = X_df[[SERIES, TIME, *self.exogenous_]]
            X_df = _extend(X_df, self.last_, h, self.freq_)
        # conformal intervals exist only when fitted for them, and only up to the horizon they were fitted for
        level = list(level) if level and self.conformal_windows >= 2 and h <= self.horizon_ else None
        return self.mlf_.predict(h, X_df=X_df, level=level)


def _extend(X_df: pd.DataFrame, last: dict[Any, Any], h: int, freq: str) -> pd.DataFrame:
    """The exogenous frame on every step 1 … ``h`` of every series (mlforecast needs each one):
    steps the caller did not name (before the first asked row) repeat the nearest given value."""
    offset = pd.tseries.frequencies.to_offset(freq)
    grid = pd.DataFrame([(sid, ts) for sid, start in last.items()
                         for ts in pd.date_range(start, periods=h + 1, freq=offset)[1:]], columns=[SERIES, TIME])
    merged = grid.merge(X_df, on=[SERIES, TIME], how="left")
    cols = [c for c in X_df.columns if c not in (SERIES, TIME)]
    merged[cols] = merged.groupby(SERIES)[cols].transform(lambda s: s.bfill().ffill())
    return merged.fillna(0.0)
