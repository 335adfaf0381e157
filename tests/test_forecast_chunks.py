"""Local forecasters over many series: the fit in chunks through a chunk map (the sweep's Ray
layer sets it; here a plain one) forecasts like the fit in one process, and the per-series time
limit really interrupts a series' fit and gives it the naive fallback. A backtest fold's one-pass
fit of its window (``fit(..., window=)``, statsforecast's ``forecast``) scores exactly as fit then
predict, in one process, in a pool and in chunks, with the same limit and fallbacks. The two-node
sweep that spreads the chunks over Ray nodes is in ``test_sweep_cluster.py``."""

from __future__ import annotations

import pickle
import time

import numpy as np
import pandas as pd
import pytest
from statsforecast.models import Naive

from specweave_ray import problems
from specweave_ray.candidates.forecasters import (
    MIN_CHUNK,
    ARIMAForecaster,
    ETSForecaster,
    SeasonalNaiveForecaster,
    StatsForecaster,
    ThetaForecaster,
    WindowMeanForecaster,
    using_chunk_map,
)
from specweave_ray.exceptions import CandidateError, DataError
from specweave_ray.problems.timeseries import RollingOrigin
from specweave_ray.search.trial import run_cv

TS = problems.get("timeseries")


def panel(n_series: int, n: int = 36, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Monthly series: level, trend, a yearly season, noise; framed with a horizon of 6."""
    rng = np.random.default_rng(seed)
    months = pd.date_range("2020-01-01", periods=n, freq="MS")
    t = np.arange(n)
    rows = [pd.DataFrame({"shop": f"s{s:03d}", "month": months,
                          "units": 50 + s + 0.3 * t + 5 * np.sin(2 * np.pi * t / 12 + s) + rng.normal(0, 1, n)})
            for s in range(n_series)]
    return TS.frame(pd.concat(rows, ignore_index=True), target="units",
                    columns={"time_column": "month", "series_column": "shop", "horizon": 6})


def test_a_fit_in_chunks_forecasts_like_one_fit_and_pickles() -> None:
    X, y = panel(2 * MIN_CHUNK + 5)
    params = {"model": "AAN", "damped": False}
    whole = ETSForecaster(**params).fit(X, y)
    calls: list[int] = []

    def in_turn(fn, items):
        calls.append(len(items))
        return [fn(*args) for args in items]

    with using_chunk_map(in_turn, workers=4):
        chunked = ETSForecaster(**params).fit(X, y)
    assert calls == [2] and chunked.chunks_ == 2 and whole.chunks_ == 1  # at least MIN_CHUNK per chunk
    a, b = whole.forecast(level=[80]), pickle.loads(pickle.dumps(chunked)).forecast(level=[80])
    assert a[["unique_id", "ds"]].equals(b[["unique_id", "ds"]])
    assert np.allclose(a["yhat"], b["yhat"]) and np.allclose(a["yhat-lo-80"], b["yhat-lo-80"])
    assert np.allclose(whole.predict(X.iloc[:3].assign(ds=X["ds"].max() + pd.offsets.MonthBegin(1))),
                       chunked.predict(X.iloc[:3].assign(ds=X["ds"].max() + pd.offsets.MonthBegin(1))))
    with using_chunk_map(in_turn, workers=4):  # too few series for two chunks: the cheap path
        small = ETSForecaster(**params).fit(*panel(MIN_CHUNK))
    assert small.chunks_ == 1 and calls == [2]


class _Stuck(Naive):
    """A model whose fit (or one-pass forecast) of a series starting below zero never ends on its
    own (sleeps in a loop)."""

    def fit(self, y, X=None):
        while y[0] < 0:
            time.sleep(0.01)
        return super().fit(y, X)

    def forecast(self, y, h, X=None, X_future=None, level=None, fitted=False):
        while y[0] < 0:
            time.sleep(0.01)
        return super().forecast(y=y, h=h, X=X, X_future=X_future, level=level, fitted=fitted)


class StuckForecaster(StatsForecaster):
    """Test-only family: ``_Stuck`` per series."""

    def __init__(self, *, series_time_limit_s: float | None = 0.5, n_jobs: int = 1) -> None:
        self.series_time_limit_s = series_time_limit_s
        self.n_jobs = n_jobs

    def _model(self, season_length: int):
        return _Stuck(alias=self._ALIAS)


@pytest.mark.timeout(60)  # without a real interrupt the stuck series never ends
def test_a_series_over_its_time_limit_gets_the_naive_fallback_and_is_counted() -> None:
    X, y = panel(4)
    y = y.copy()
    stuck = (X["unique_id"] == "s002").to_numpy()
    y[stuck] -= 1000  # its first value is below zero
    model = StuckForecaster(series_time_limit_s=0.5).fit(X, y)
    assert (model.fallbacks_, model.timed_out_) == (1, 1)
    assert model.fit_counts_ == {"series_fallbacks": 1, "series_timed_out": 1}
    kinds = {uid: getattr(m, "specweave_fallback_", None) for uid, m in zip(model.sf_.uids, model.sf_.fitted_[:, 0], strict=True)}
    assert kinds == {"s000": None, "s001": None, "s002": "timeout", "s003": None}
    fc = model.forecast()
    last = pd.Series(np.asarray(y), index=X.index).groupby(X["unique_id"].to_numpy()).last()
    assert np.allclose(fc.groupby("unique_id")["yhat"].first(), last)  # naive and the fallback: the last value
    assert any("over the per-series time limit" in n for n in model.notes_)


def test_the_worker_answers_its_forked_child_and_a_served_fault_keeps_its_cause_and_node() -> None:
    """The trial body asks the worker for its chunks (``ask_worker``), since a forked child must
    not call Ray; a chunk's death comes back as the trial's fault with the chunk's own cause and
    node, and a deadline the worker sees is the trial's timeout."""
    from specweave_ray.exceptions import TrialFault
    from specweave_ray.search._isolate import ask_worker, parse_tag, run_isolated

    got: list[dict] = []
    run_isolated(lambda send: send({"answer": ask_worker(21)}), got.append, node="n1",
                 serve=lambda request, deadline: request * 2)
    assert got == [{"answer": 42}]

    def dead_chunk(request, deadline):
        raise TrialFault("chunk killed", cause={"kind": "signal", "signal": "SIGKILL"}, node="n2")

    with pytest.raises(TrialFault) as err:
        run_isolated(lambda send: ask_worker("map"), None, node="n1", serve=dead_chunk)
    assert parse_tag("\n".join(err.value.__notes__)) == {"node": "n2", "cause": {"kind": "signal", "signal": "SIGKILL"}}

    def late(request, deadline):
        raise TimeoutError

    with pytest.raises(TrialFault) as err:
        run_isolated(lambda send: ask_worker("map"), None, node="n1", timeout_s=30, serve=late)
    assert err.value.cause["kind"] == "timeout"


FAMILIES = [(ETSForecaster, {}), (ETSForecaster, {"conformal_windows": 2}), (ARIMAForecaster, {"nmodels": 5}),
            (ThetaForecaster, {}), (SeasonalNaiveForecaster, {}), (WindowMeanForecaster, {})]


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize(("cls", "params"), FAMILIES, ids=lambda v: getattr(v, "__name__", None) or str(v))
def test_a_fold_fitted_in_one_pass_scores_as_fit_then_predict(cls, params, n_jobs) -> None:
    """run_cv's folds (the problem type's fit_fold: statsforecast's forecast, nothing kept)
    against each fold fitted (statsforecast's fit, every model kept) then predicted: the same
    MASE per fold, in one process and in a pool of two."""
    X, y = panel(6)
    mase = TS.metric("mase")
    folds = list(RollingOrigin(2).split(X))
    before = []
    for train, valid in folds:
        model = cls(**params, n_jobs=n_jobs).fit(X.iloc[train], y.iloc[train])
        assert model.sf_ is not None
        before.append(TS.score_model(mase, model, X.iloc[valid], y.iloc[valid]))
    result = run_cv(cls, {**params, "n_jobs": n_jobs}, X, np.asarray(y), folds, metric="mase", problem_type="timeseries")
    assert [result["cv_fold_1"], result["cv_fold_2"]] == pytest.approx(before, abs=1e-9, rel=0)
    train, valid = folds[-1]
    one_pass = TS.fit_fold(cls(**params, n_jobs=n_jobs), X.iloc[train], y.iloc[train], X.iloc[valid])
    assert one_pass.sf_ is None and one_pass.window_h_ == 6 and one_pass.fit_counts_ == {
        "series_fallbacks": 0, "series_timed_out": 0}


def test_a_window_fit_keeps_only_the_window_and_chunks_like_the_fit() -> None:
    X, y = panel(2 * MIN_CHUNK + 5)
    train, valid = next(RollingOrigin(1).split(X))
    X_tr, y_tr, X_va = X.iloc[train], y.iloc[train], X.iloc[valid]
    params = {"model": "AAN", "damped": False}
    whole = ETSForecaster(**params).fit(X_tr, y_tr)
    window = ETSForecaster(**params).fit(X_tr, y_tr, window=X_va)
    assert np.array_equal(whole.predict(X_va), window.predict(X_va))
    a, b = whole.forecast(3), window.forecast(3)  # fewer steps than the window: its first ones
    assert a[["unique_id", "ds"]].equals(b[["unique_id", "ds"]]) and np.array_equal(a["yhat"], b["yhat"])
    with pytest.raises(CandidateError, match="backtest window of 6 steps"):
        window.forecast(7)
    with pytest.raises(CandidateError, match="with intervals"):
        window.forecast(level=[80])
    with pytest.raises(DataError, match="not after the series' history"):
        ETSForecaster(**params).fit(X_tr, y_tr, window=X_tr.iloc[:2])
    calls: list[int] = []

    def in_turn(fn, items):
        calls.append(len(items))
        return [fn(*args) for args in items]

    with using_chunk_map(in_turn, workers=4):  # two chunks of at least MIN_CHUNK, as the fit's
        chunked = ETSForecaster(**params).fit(X_tr, y_tr, window=X_va)
    assert calls == [2] and chunked.chunks_ == 2
    assert np.array_equal(whole.predict(X_va), chunked.predict(X_va))
    pooled = ETSForecaster(**params, n_jobs=2).fit(X_tr, y_tr, window=X_va)  # a pool over chunks of ~MIN_CHUNK
    assert pooled.chunks_ == 2 and np.array_equal(whole.predict(X_va), pooled.predict(X_va))


@pytest.mark.timeout(60)  # without a real interrupt the stuck series never ends
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_window_fit_limits_each_series_and_counts_its_fallbacks(n_jobs) -> None:
    X, y = panel(4)
    y = y.copy()
    y[(X["unique_id"] == "s002").to_numpy()] -= 1000  # its first value is below zero: stuck
    train, valid = next(RollingOrigin(1).split(X))
    model = StuckForecaster(series_time_limit_s=0.5, n_jobs=n_jobs).fit(X.iloc[train], y.iloc[train],
                                                                        window=X.iloc[valid])
    assert model.sf_ is None and (model.fallbacks_, model.timed_out_) == (1, 1)
    assert model.fit_counts_ == {"series_fallbacks": 1, "series_timed_out": 1}
    assert any("over the per-series time limit" in n for n in model.notes_)
    last = pd.Series(np.asarray(y.iloc[train]), index=X.index[train]).groupby(X["unique_id"].to_numpy()[train]).last()
    fc = model.forecast()
    assert np.allclose(fc.groupby("unique_id")["yhat"].first(), last)  # naive and the fallback: the last value
