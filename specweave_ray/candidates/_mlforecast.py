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
        conformal_windows: With ``n >= 2``, split-conformal prediction intervals from up to ``n``
            backtest windows of the horizon (fewer when the shortest history can't train before
            them; one more fit), scores pooled over series after scaling each by its level
            (:meth:`_conformal_scores`); 0: none.
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
        if self.target_transform not in _TRANSFORMS:
            raise CandidateError(f"target_transform must be one of {', '.join(_TRANSFORMS)}, got {self.target_transform!r}")
        if self.target_transform.startswith("log") and (df["y"] < 0).any():
            raise CandidateError(f"target_transform {self.target_transform!r} takes log1p of the values, and "
                                 f"some are negative; use 'diff1' or 'none'")
        if self.strategy not in ("recursive", "direct"):
            raise CandidateError(f"strategy must be 'recursive' or 'direct', got {self.strategy!r}")
        m = self.season_length_
        shortest = int(df.groupby(SERIES).size().min())
        # a lag longer than the shortest history would leave that series no training rows
        self.lags_ = [lag for lag in sorted({1, 2, 3, 4, m}) if lag < shortest - 2]
        self.rolling_ = [4] + ([m] if 4 < m < shortest - 2 else [])
        extra = self._fit_args()
        self.conformal_scores_ = None
        if self.conformal_windows >= 2:
            self.conformal_scores_ = self._conformal_scores(self._new_mlf(), df, extra, shortest,
                                                            max(self.lags_, default=1))
        self.mlf_ = self._new_mlf()
        self.mlf_.fit(df, static_features=[], **extra)

    def _fit_args(self) -> dict[str, Any]:
        return {"max_horizon": self.horizon_} if self.strategy == "direct" else {}

    def _new_mlf(self) -> Any:
        """An unfitted ``MLForecast`` with this model's booster, lags, rolling means, calendar
        features and target transform."""
        from mlforecast import MLForecast
        from mlforecast.lag_transforms import RollingMean
        from mlforecast.target_transforms import Differences, GlobalSklearnTransformer
        from sklearn.preprocessing import FunctionTransformer

        logged = self.target_transform.startswith("log")
        return MLForecast(models={"yhat": self._booster()}, freq=self.freq_, lags=self.lags_,
                          lag_transforms={1: [RollingMean(window_size=w) for w in self.rolling_]},
                          date_features=calendar_features(self.freq_),
                          target_transforms=(
                              [GlobalSklearnTransformer(FunctionTransformer(np.log1p, np.expm1))] if logged else [])
                          + ([Differences([1])] if self.target_transform.endswith("diff1") else []) or None,
                          num_threads=1)

    def _fitted(self, df: pd.DataFrame) -> pd.DataFrame | None:
        """mlforecast's in-sample one-step fitted values (``fitted=True``) of a refit on every
        series (a global model: refitting on a few series would be another model)."""
        if self.strategy == "direct":
            return None  # one model per step: no one-step in-sample fit to read
        mlf = self._new_mlf()
        mlf.fit(self.history_, static_features=[], fitted=True)
        fv = mlf.forecast_fitted_values()
        fv = fv[fv[SERIES].isin(set(df[SERIES]))]
        return fv.rename(columns={"yhat": "fitted"})[[SERIES, TIME, "y", "fitted"]]

    def _conformal_scores(self, mlf: Any, df: pd.DataFrame, extra: dict[str, Any], shortest: int,
                          longest_lag: int) -> np.ndarray | None:
        """Split-conformal scores pooled over series: ``(windows × series, horizon)`` absolute
        backtest errors, each divided by its series' scale (:meth:`_scales`).

        mlforecast's own ``PredictionIntervals`` takes, per series and per step, quantiles of
        the ``n_windows`` errors of that series alone: with 2 windows the 80% and 95% bounds
        are read off 2 errors, and on the worked example they covered 46% and 51% of the test
        window. Dividing every error by its series' scale makes the series' errors comparable,
        so one quantile per step is read off ``windows × series`` scores (the same backtests:
        mlforecast's ``cross_validation`` with ``refit=False``, one fit before the first window).
        Windows are fewer than asked when the shortest history cannot train before them.
        """
        h = self.horizon_
        windows = min(int(self.conformal_windows), (shortest - longest_lag - 2 * h) // h)
        self.conformal_windows_ = max(windows, 0)
        if windows < 2:
            self.notes_.append(f"no conformal intervals: the shortest series ({shortest} points) leaves fewer "
                               f"than 2 backtest windows of {h} after its longest lag ({longest_lag})")
            return None
        cv = mlf.cross_validation(df, n_windows=windows, h=h, step_size=h, refit=False, static_features=[], **extra)
        scale = self._scales(df)
        cv = cv.sort_values([SERIES, "cutoff", TIME], kind="stable")
        step = cv.groupby([SERIES, "cutoff"], sort=False).cumcount().to_numpy()
        err = np.abs(cv["y"].to_numpy(dtype=np.float64) - cv["yhat"].to_numpy(dtype=np.float64))
        err = err / cv[SERIES].map(scale).to_numpy(dtype=np.float64)
        rows = cv.groupby([SERIES, "cutoff"], sort=False).ngroup().to_numpy()
        scores = np.full((int(rows.max()) + 1, h), np.nan)
        scores[rows, step] = err
        return scores

    def _scales(self, df: pd.DataFrame) -> dict[Any, float]:
        """Each series' scale for the conformal scores: its mean absolute value over its history
        (the errors of a multiplicative, log-modelled series grow with its level); 1 for a series
        of zeros."""
        level = df.groupby(SERIES, sort=False)["y"].apply(lambda v: float(np.mean(np.abs(v))))
        return {sid: (v if v > 0 else 1.0) for sid, v in level.items()}

    def conformal_intervals(self, fc: pd.DataFrame, level: Sequence[int]) -> pd.DataFrame:
        """``fc`` (``unique_id``, ``ds``, ``yhat``, each series' steps in order from 1) with the
        split-conformal ``yhat-lo-<level>``/``yhat-hi-<level>`` columns of this fitted model.

        Raises:
            CandidateError: the model was fitted without conformal scores (``conformal_windows``
                below 2, or a history too short for 2 backtest windows).
        """
        if getattr(self, "conformal_scores_", None) is None:
            raise CandidateError("this model has no conformal intervals: fit it with conformal_windows >= 2 "
                                 "on series long enough for 2 backtest windows")
        return self._conformal(fc, sorted(level))

    def _conformal(self, fc: pd.DataFrame, level: Sequence[int]) -> pd.DataFrame:
        """The 80/95% … intervals from the pooled, scaled scores: per step the conformal quantile
        (the ⌈(n + 1)·level⌉-th smallest of its n scores, the largest when n is too small),
        times each series' scale, either side of the point forecast."""
        scores = self.conformal_scores_
        scale = fc[SERIES].map(self._scales(self.history_)).to_numpy(dtype=np.float64)
        steps = fc.groupby(SERIES, sort=False).cumcount().to_numpy()
        out = fc.copy()
        for lv in level:
            q = np.empty(scores.shape[1])
            for j in range(scores.shape[1]):
                s = np.sort(scores[:, j][np.isfinite(scores[:, j])])
                q[j] = s[min(len(s), int(np.ceil((len(s) + 1) * lv / 100))) - 1]
            half = q[np.minimum(steps, len(q) - 1)] * scale
            out[f"yhat-lo-{lv}"] = out["yhat"].to_numpy() - half
            out[f"yhat-hi-{lv}"] = out["yhat"].to_numpy() + half
        return out

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
        fc = self.mlf_.predict(h, X_df=X_df)
        # conformal intervals exist only when fitted for them, and only up to the horizon they were fitted for
        if level and getattr(self, "conformal_scores_", None) is not None and h <= self.horizon_:
            fc = self._conformal(fc, sorted(level))
        return fc


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
