"""Forecast packages: ``Predictor.forecast`` (horizon, series, history, exogenous future values),
the ``/forecast`` route, the signed package, the per-step tree contributions T-007 reports and
the forecast benchmark. Forecasters are fitted directly on tiny generated panels (3 series x 60
months, horizon 6); the end-to-end run is ``tests/test_forecasting.py``'s.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from specweave_ray import problems
from specweave_ray._fs import atomic_write_json
from specweave_ray.candidates._mlforecast import GBMForecaster
from specweave_ray.candidates.forecasters import (
    ETSForecaster,
    ThetaForecaster,
    WindowMeanForecaster,
)
from specweave_ray.candidates.serialization import save_native
from specweave_ray.deploy import Predictor
from specweave_ray.deploy._forecast import ForecastPredictor, forecast_metadata
from specweave_ray.deploy._signing import sign
from specweave_ray.deploy.bench import bench_forecast, bench_http, forecast_requests, free_port
from specweave_ray.deploy.serve import create_app
from specweave_ray.exceptions import DataError, RecordError

TS = problems.get("timeseries")
COLUMNS = {"series": "shop", "time": "month", "value": "units"}
LEVEL_COLS = ["yhat-lo-95", "yhat-lo-80", "yhat", "yhat-hi-80", "yhat-hi-95"]


def _panel(promo: bool = False, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    months = pd.date_range("2019-01-01", periods=60, freq="MS")
    parts = []
    for s in range(3):
        on = rng.integers(0, 2, 60) if promo else np.zeros(60)
        value = (100 + 20 * s + 0.5 * np.arange(60) + 10 * np.sin(2 * np.pi * months.month / 12)
                 + 15 * on + rng.normal(0, 1, 60))
        part = pd.DataFrame({"shop": f"s{s}", "month": months, "units": value})
        if promo:
            part["promo"] = on
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _split(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    X, y = TS.frame(df, target="units", columns={"time_column": "month", "series_column": "shop", "horizon": 6})
    return TS.holdout_split(X, y)


def _package(folder: Path, model: Any, version: int = 1) -> Path:
    """A signed forecast package on disk, as build_package lays one out (the model file, its
    hash in the metadata, the metadata signed)."""
    folder.mkdir(parents=True, exist_ok=True)
    info = save_native(model, folder, name=f"model-v{version}")
    meta = {"version": version, "increment": "0001-shops", "problem_type": "timeseries", "status": "candidate",
            "candidate": type(model).__name__, "model": info, "files": dict(info["files"]),
            **forecast_metadata(model=model, columns=COLUMNS)}
    path = folder / f"model-v{version}.metadata.json"
    atomic_write_json(path, sign(meta))
    return path


@pytest.fixture(scope="module")
def panel() -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    return _split(_panel())


@pytest.fixture(scope="module")
def ets(panel, tmp_path_factory) -> tuple[ForecastPredictor, ETSForecaster]:
    X_tr, _, y_tr, _ = panel
    model = ETSForecaster().fit(X_tr, y_tr)
    folder = tmp_path_factory.mktemp("ets")
    _package(folder, model)
    return Predictor.from_folder(folder), model


@pytest.fixture(scope="module")
def gbm(panel, tmp_path_factory) -> tuple[ForecastPredictor, GBMForecaster]:
    X_tr, _, y_tr, _ = panel
    model = GBMForecaster(n_estimators=40, num_leaves=8, conformal_windows=2, target_transform="none").fit(X_tr, y_tr)
    folder = tmp_path_factory.mktemp("gbm")
    _package(folder, model)
    return Predictor.from_folder(folder), model


def _nested(fc: pd.DataFrame) -> bool:
    values = fc[LEVEL_COLS].to_numpy()
    return bool((np.diff(values, axis=1) >= -1e-9).all())


# -- the predictor --------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["ets", "gbm"])
def test_the_package_forecasts_what_its_model_forecasts_with_nested_intervals(which, request) -> None:
    predictor, model = request.getfixturevalue(which)
    assert isinstance(predictor, ForecastPredictor) and predictor.horizon == 6
    fc = predictor.forecast()
    own = model.forecast(level=[80, 95])
    assert list(fc.columns) == ["unique_id", "ds", "step", "yhat", "yhat-lo-95", "yhat-lo-80", "yhat-hi-80",
                                "yhat-hi-95"]
    assert len(fc) == 18 and list(fc["step"][:6]) == [1, 2, 3, 4, 5, 6]
    for col in LEVEL_COLS:
        assert fc[col].to_numpy() == pytest.approx(own[col].to_numpy(), rel=1e-12)
    assert _nested(fc) and fc.attrs["intervals"] == [80, 95]
    assert (fc.groupby("unique_id")["ds"].min() == pd.Timestamp("2023-07-01")).all()  # after the history
    one = predictor.forecast(3, series=["s2"])
    assert list(one["unique_id"]) == ["s2"] * 3
    assert one["yhat"].to_numpy() == pytest.approx(fc.loc[fc["unique_id"] == "s2", "yhat"].to_numpy()[:3])


def _seasonal(n_series: int, n: int, seed: int = 0) -> pd.DataFrame:
    """Monthly series of levels 10 … 1000: level × yearly season × 8% log-normal noise."""
    rng = np.random.default_rng(seed)
    months = pd.date_range("2015-01-01", periods=n, freq="MS")
    parts = []
    for s in range(n_series):
        level = np.exp(rng.uniform(np.log(10), np.log(1000)))
        value = level * (1 + 0.3 * np.sin(2 * np.pi * (months.month + s) / 12)) * np.exp(rng.normal(0, 0.08, n))
        parts.append(pd.DataFrame({"shop": f"s{s}", "month": months, "units": value}))
    return pd.concat(parts, ignore_index=True)


def test_a_statistical_models_intervals_are_chosen_on_backtests_and_packaged_as_measured(tmp_path) -> None:
    """Theta's own intervals or statsforecast's conformal ones: the backtest rebuilds, for each
    window, exactly the conformal bounds statsforecast computes at that origin; the choice reads
    the backtest only; the package holds the conformal copy (same points) T-006 measures."""
    from specweave_ray.deploy._forecast import with_conformal_intervals
    from specweave_ray.evaluate._forecast import choose_intervals

    X, y = TS.frame(_seasonal(12, 72), target="units",
                    columns={"time_column": "month", "series_column": "shop", "horizon": 6})
    X_tr, X_te, y_tr, _ = TS.holdout_split(X, y)
    model = ThetaForecaster().fit(X_tr, y_tr)
    bt = model.backtest_intervals(2, 4)
    assert len(bt) == 12 * 2 * 6 and bt["cutoff"].nunique() == 2
    cut = bt["cutoff"].max()
    before = (X_tr["ds"] <= cut).to_numpy()
    X_cut = X_tr[before].reset_index(drop=True)
    X_cut.attrs = X_tr.attrs
    at_cut = ThetaForecaster(conformal_windows=4).fit(X_cut, y_tr[before].to_numpy()).forecast(level=[80, 95])
    last = bt[bt["cutoff"] == cut]
    for col in ("lo-95", "lo-80", "hi-80", "hi-95"):
        assert last[f"conformal-{col}"].to_numpy() == pytest.approx(at_cut[f"yhat-{col}"].to_numpy(), rel=1e-12)
    method, metrics, note = choose_intervals(model)
    assert method == "conformal" and metrics["conformal_windows"] == 4 and metrics["interval_backtest_windows"] == 2
    gap = {m: sum(abs(metrics[f"interval_backtest_coverage_{lv}_{m}"] - lv / 100) for lv in (80, 95))
           for m in ("model", "conformal")}
    assert gap["conformal"] < gap["model"] and "chosen on 2 backtest windows" in note
    measured = ThetaForecaster(conformal_windows=4).fit(X_tr, y_tr)  # the copy T-006 measures
    assert measured.predict(X_te) == pytest.approx(model.predict(X_te), rel=1e-12)
    predictor = Predictor.from_folder(_package(tmp_path, with_conformal_intervals(model, 6, local_windows=4)).parent)
    fc = predictor.forecast()
    want = measured.forecast(level=[80, 95])
    for col in LEVEL_COLS:
        assert fc[col].to_numpy() == pytest.approx(want[col].to_numpy(), rel=1e-12)
    assert "statsforecast's conformal intervals from 4 backtest windows" in predictor.intervals_note
    assert fc.attrs["intervals"] == [80, 95] and _nested(fc)
    short = predictor.forecast(3, series=["s1"])
    assert short["yhat-hi-95"].to_numpy() == pytest.approx(fc.loc[fc["unique_id"] == "s1", "yhat-hi-95"][:3].to_numpy())
    beyond = predictor.forecast(7)
    assert "yhat-lo-80" not in beyond.columns and "beyond the 6 steps" in beyond.attrs["intervals_note"]
    # a series too short for 2 conformal windows keeps the model's own intervals, and says so
    keep = (X_tr["unique_id"] != "s0") | (X_tr["ds"] > X_tr["ds"].max() - pd.DateOffset(months=11))
    X_short = X_tr[keep.to_numpy()].reset_index(drop=True)
    X_short.attrs = X_tr.attrs
    mixed = ThetaForecaster(conformal_windows=4).fit(X_short, y_tr[keep.to_numpy()].to_numpy())
    assert "1 of 12 series are too short for conformal windows" in mixed.notes_[0] and mixed.fallbacks_ == 0
    assert mixed.forecast(level=[80]).notna().all().all()


def test_a_family_without_intervals_says_so(panel) -> None:
    X_tr, _, y_tr, _ = panel
    predictor = ForecastPredictor({"version": 1, **forecast_metadata(model=(m := WindowMeanForecaster().fit(X_tr, y_tr)),
                                                                    columns=COLUMNS)}, ".", model=m)
    fc = predictor.forecast()
    assert list(fc.columns) == ["unique_id", "ds", "step", "yhat"] and fc.attrs["intervals"] == []
    assert "gives no prediction intervals" in fc.attrs["intervals_note"]


@pytest.mark.parametrize("which", ["ets", "gbm"])
def test_history_moves_the_forecast_origin(which, request, panel) -> None:
    predictor, model = request.getfixturevalue(which)
    X_tr, X_te, y_tr, y_te = panel
    new = pd.DataFrame({"shop": X_te["unique_id"].to_numpy(), "month": X_te["ds"].dt.strftime("%Y-%m-%d"),
                        "units": y_te.to_numpy()})
    fc = predictor.forecast(history=new.to_dict("records"))
    assert (fc.groupby("unique_id")["ds"].min() == pd.Timestamp("2024-01-01")).all()
    # the same as a model fitted on the whole history (statsforecast refit) / mlforecast's new_df
    X_all, y_all = pd.concat([X_tr, X_te]), pd.concat([y_tr, y_te])
    X_all.attrs = X_tr.attrs
    if which == "ets":
        want = ETSForecaster().fit(X_all, y_all).forecast(level=[80, 95])
    else:
        full = pd.DataFrame({"unique_id": X_all["unique_id"].to_numpy(), "ds": X_all["ds"].to_numpy(),
                             "y": y_all.to_numpy()}).sort_values(["unique_id", "ds"])
        want = copy.deepcopy(model.mlf_).predict(6, new_df=full)
    assert fc["yhat"].to_numpy() == pytest.approx(want["yhat"].to_numpy(), rel=1e-9)
    assert predictor.forecast()["ds"].min() == pd.Timestamp("2023-07-01")  # the package itself is unchanged
    # one series' history: only it moves
    part = predictor.forecast(history=new[new["shop"] == "s1"].head(2), series=["s0", "s1"])
    assert part.groupby("unique_id")["ds"].min().to_dict() == {"s0": pd.Timestamp("2023-07-01"),
                                                               "s1": pd.Timestamp("2023-09-01")}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"horizon": 0}, "horizon must be a positive integer, got 0"),
    ({"horizon": 61}, "horizon 61 is longer than this model supports: at most 60 steps"),
    ({"series": ["s1", "nope"]}, "unknown series 'nope'; the model forecasts 's0', 's1', 's2'"),
    ({"history": [{"shop": "s0", "month": "2023-08-01", "units": 1.0}]},
     "history for series 's0' starts at 2023-08-01 00:00:00, which leaves a gap after the stored history"),
    ({"history": [{"shop": "s0", "month": "2023-06-01", "units": 1.0}]}, "which is not after the stored history"),
    ({"history": [{"shop": "s0", "month": "2023-07-01", "units": 1.0}, {"shop": "s0", "month": "2023-09-01",
                                                                         "units": 2.0}]},
     "history for series 's0' is not contiguous at MS: 2023-09-01 00:00:00 where 2023-08-01 00:00:00"),
    ({"history": [{"shop": "s0", "month": "2023-07-01", "units": "lots"}]}, "'units' must be a finite number, got 'lots'"),
    ({"history": [{"shop": "s0", "month": "soon", "units": 1.0}]}, "'month' is not a date: 'soon'"),
    ({"history": [{"shop": "s9", "month": "2023-07-01", "units": 1.0}]}, "history names unknown series 's9'"),
    ({"history": [{"shop": "s0", "units": 1.0}]}, "history lacks the column(s) ['month']"),
    ({"history": [{"shop": "s0", "month": "2023-07-01", "units": 1.0, "price": 3}]},
     "history has unexpected column(s) ['price']"),
])
def test_bad_requests_are_refused_naming_the_value(ets, kwargs, message) -> None:
    predictor, _ = ets
    with pytest.raises(DataError) as err:
        predictor.forecast(**kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_exogenous_future_values_are_required_for_every_step(tmp_path) -> None:
    X_tr, X_te, y_tr, y_te = _split(_panel(promo=True, seed=1))
    model = GBMForecaster(n_estimators=40, num_leaves=8).fit(X_tr, y_tr)
    predictor = ForecastPredictor({"version": 1, **forecast_metadata(model=model, columns=COLUMNS)}, tmp_path,
                                  model=model)
    assert predictor.exogenous == ["promo"]
    future = X_te.rename(columns={"unique_id": "shop", "ds": "month"})
    fc = predictor.forecast(future=future)
    assert fc["yhat"].to_numpy() == pytest.approx(model.forecast(X_future=X_te)["yhat"].to_numpy())
    assert "intervals" in fc.attrs and fc.attrs["intervals"] == []  # no conformal windows: none
    with pytest.raises(DataError, match=r"reads exogenous columns \['promo'\]: give their future values"):
        predictor.forecast()
    with pytest.raises(DataError, match="future values of \\['promo'\\] are missing for series 's0' at "
                                        "2023-12-01 00:00:00"):
        predictor.forecast(future=future[~((future["shop"] == "s0") & (future["month"] == "2023-12-01"))])
    with pytest.raises(DataError, match=r"history lacks the column\(s\) \['promo'\]"):
        predictor.forecast(history=[{"shop": "s0", "month": "2023-07-01", "units": 5.0}], future=future)


def test_a_tampered_forecast_package_is_refused(panel, tmp_path) -> None:
    X_tr, _, y_tr, _ = panel
    model = ETSForecaster().fit(X_tr, y_tr)
    path = _package(tmp_path / "a", model)
    meta = json.loads(path.read_text())
    meta["horizon"] = 60  # a changed field: the signature no longer matches
    path.write_text(json.dumps(meta))
    with pytest.raises(RecordError, match="signature mismatch"):
        Predictor.from_folder(tmp_path / "a")
    path = _package(tmp_path / "b", model)
    (tmp_path / "b" / "model-v1.pkl").write_bytes((tmp_path / "b" / "model-v1.pkl").read_bytes() + b"x")
    with pytest.raises(RecordError, match="hash mismatch for model-v1.pkl"):
        Predictor.from_folder(tmp_path / "b")


# -- T-007: contributions per step ---------------------------------------------------------------
def test_tree_contributions_add_up_to_each_steps_forecast(gbm) -> None:
    predictor, model = gbm
    c = predictor.contributions(series=["s2", "s0"])
    assert list(c.frame["unique_id"]) == ["s2"] * 6 + ["s0"] * 6 and c.target_space == "the values"
    assert {"lag1", "lag12", "month"} <= set(c.features) and c.contributions.shape == (12, len(c.features))
    # target_transform "none": base + contributions is the forecast itself, step by step
    assert c.base + c.contributions.sum(axis=1) == pytest.approx(c.frame["yhat"].to_numpy(), abs=1e-6)
    # step 2's lag1 is step 1's forecast (recursive)
    lag1 = c.features.index("lag1")
    assert c.values[1, lag1] == pytest.approx(c.frame["yhat"].iloc[0])
    ets_predictor = ForecastPredictor({"version": 1}, ".", model=ETSForecaster().fit(*_xy(model)))
    with pytest.raises(Exception, match="contributions do not apply"):
        ets_predictor.contributions()


def _xy(model: Any) -> tuple[pd.DataFrame, pd.Series]:
    h = model.history_
    X = h[["unique_id", "ds"]].copy()
    X.attrs["forecast"] = {"freq": model.freq_, "season_length": model.season_length_, "horizon": 6, "step": 6}
    return X, h["y"]


# -- serving and the benchmark ---------------------------------------------------------------------
def _calls(app: Any, calls: list[tuple[str, str, Any]]) -> list[Any]:
    import httpx

    async def run() -> list[Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            out = []
            for method, path, body in calls:
                kw = {"content": body} if isinstance(body, bytes) else {"json": body}
                out.append(await client.request(method, path, **kw))
            return out
    return asyncio.run(run())


def test_the_forecast_route_answers_and_refuses_bad_bodies_in_one_line(gbm) -> None:
    predictor, _ = gbm
    app = create_app(predictor, max_rows=5)
    ok, one, empty, bad_h, long_h, unknown, bad_hist, field, deep, no_json, too_many, no_route = _calls(app, [
        ("POST", "/forecast", {}), ("POST", "/forecast", {"horizon": 2, "series": ["s1"]}),
        ("POST", "/forecast", b""), ("POST", "/forecast", {"horizon": "6"}), ("POST", "/forecast", {"horizon": 100}),
        ("POST", "/forecast", {"series": ["zz"]}),
        ("POST", "/forecast", {"history": [{"shop": "s0", "month": "2030-01-01", "units": 1}]}),
        ("POST", "/forecast", {"horizons": 3}), ("POST", "/forecast", b"[" * 50 + b"]" * 50),
        ("POST", "/forecast", b"{"), ("POST", "/forecast", {"series": ["s0"] * 6}),
        ("POST", "/predict", {})])
    body = ok.json()
    assert ok.status_code == 200 and body["version"] == 1 and body["horizon"] == 6 and body["intervals"] == [80, 95]
    assert len(body["forecasts"]) == 18 and body["forecasts"][0]["ds"] == "2023-07-01T00:00:00"
    first = body["forecasts"][0]
    assert first["yhat-lo-95"] <= first["yhat-lo-80"] <= first["yhat"] <= first["yhat-hi-80"] <= first["yhat-hi-95"]
    assert first["yhat"] == pytest.approx(float(predictor.forecast()["yhat"].iloc[0]))
    assert [r["unique_id"] for r in one.json()["forecasts"]] == ["s1", "s1"]
    assert empty.status_code == 200 and len(empty.json()["forecasts"]) == 18
    for resp, status, text in ((bad_h, 422, "must be a positive integer, got '6'"),
                               (long_h, 422, "horizon 100 is longer than this model supports"),
                               (unknown, 422, "unknown series 'zz'"), (bad_hist, 422, "leaves a gap"),
                               (field, 422, "unknown field(s) ['horizons']"), (deep, 422, "nested too deeply"),
                               (no_json, 422, "not valid JSON"), (too_many, 413, "at most 5"),
                               (no_route, 404, "the routes are /forecast, /health, /metadata")):
        assert resp.status_code == status and text in resp.json()["error"], resp.text
        assert "\n" not in resp.json()["error"]


def test_the_server_on_loopback_and_the_forecast_benchmark(gbm) -> None:
    import uvicorn

    predictor, _ = gbm
    requests = forecast_requests(predictor)
    got = bench_forecast(predictor, requests, n_single=40, budget_s=0.5, all_budget_s=0.2)  # at least 20 calls
    assert 20 <= got["single_calls"] <= 40 and 0 < got["latency_p50_ms"] <= got["latency_p99_ms"]
    assert got["forecast_points_s"] == pytest.approx(got["all_series_series_s"] * 6)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(predictor), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        load = bench_http(f"http://127.0.0.1:{port}/forecast", requests, concurrency=2, total_requests=30,
                          timeout_s=20, warmup_requests=3)
        assert load["http_requests"] == 30 and load["http_errors"] == 0
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.parametrize("family", ["gbm", "ets", "theta"])
def test_the_t007_record_explains_each_step_and_validate_counts_it(family, root, panel, ets, monkeypatch) -> None:
    """Every family's forecast steps are explained in one shape (examples whose contributions add
    up to the forecast), which validate's explainability check counts: tree contributions for the
    GBM, ETS's own level/trend/season states, an STL of history + forecast for Theta."""
    from specweave_ray.deploy._forecast_report import write_forecast_explainability
    from specweave_ray.finish.validate import PASS, _explainability, gather
    from specweave_ray.workspace import Increment, read_record

    monkeypatch.setenv("SPECWEAVE_MLFLOW", "0")  # the record's files are what is tested here
    inc = Increment.create("Shops", problem_type="timeseries", root=root)
    X_tr, X_te, y_tr, y_te = _split(_panel(promo=True, seed=2)) if family == "gbm" else panel
    model = {"gbm": lambda: GBMForecaster(n_estimators=40, num_leaves=8).fit(X_tr, y_tr), "ets": lambda: ets[1],
             "theta": lambda: ThetaForecaster().fit(X_tr, y_tr)}[family]()
    _package(inc.models_dir, model)
    predictor = Predictor.load(inc, version=1)
    rec = read_record(inc.experiments_dir / write_forecast_explainability(inc, predictor, X_te, y_te))
    report = (rec.path / "explainability.md").read_text()
    examples = json.loads((rec.path / "examples.json").read_text())
    worst = max(examples, key=lambda e: abs(e["prediction"] - e["actual"]))
    assert worst == examples[0] and len(examples) == 5 and (rec.path / "contributions_by_step.png").stat().st_size > 0
    by_step = pd.read_csv(rec.path / "by_step.csv", index_col=0)
    assert list(by_step.columns) == [f"step_{s}" for s in range(1, 7)]
    if family == "gbm":
        assert rec.meta["explainer"] == "tree-contributions" and rec.metrics["additivity_max_error"] < 1e-6
        assert "promo" in by_step.index and len(examples[0]["contributions"]) == 5
        assert "log1p of the values" in report and "Mean |contribution| by step" in report
    else:
        kind, parts = {"ets": ("ets-states", ["level", "trend", "season"]),
                       "theta": ("stl-decomposition", ["trend", "season", "remainder"])}[family]
        assert rec.meta["explainer"] == kind == rec.params["method"] and list(by_step.index) == parts
        assert "Feature contributions (SHAP) do not apply" in report and (rec.path / "decomposition.png").exists()
        # the components of every step, read back from the record, sum to the package's forecast
        long = pd.read_csv(rec.path / "contributions.csv", parse_dates=["ds"])
        assert set(long["component"]) == set(parts) and rec.metrics["additivity_max_error"] < 1e-9
        fc = predictor.forecast().set_index(["unique_id", "ds"])["yhat"]
        total = long.groupby(["unique_id", "ds"])["contribution"].sum()
        assert total.to_numpy() == pytest.approx(fc.reindex(total.index).to_numpy(), rel=1e-5)  # csv: 6 digits
        assert examples[0]["prediction"] == pytest.approx(sum(c["contribution"] for c in examples[0]["contributions"]))
    check = _explainability(gather(inc))
    assert check.status == PASS and "5 explained predictions" in check.evidence, check
    # an example whose parts do not add up to its forecast is not evidence
    examples[0]["contributions"][0]["contribution"] += 1.0
    atomic_write_json(rec.path / "examples.json", examples)
    assert "4 explained predictions" in _explainability(gather(inc)).evidence


def test_ets_components_rebuild_statsforecasts_forecast_for_each_kind_of_trend_and_season(panel) -> None:
    """Additive and multiplicative trend and season, damped or not: level + trend + season,
    from each series' fitted ETS state, is statsforecast's own forecast, step by step."""
    X_tr, _, y_tr, _ = panel
    for spec, damped in (("AAA", True), ("MAM", True), ("MMN", True), ("MMM", False)):
        model = ETSForecaster(model=spec, damped=damped).fit(X_tr, y_tr)
        predictor = ForecastPredictor({"version": 1}, ".", model=model)
        c = predictor.components(9)  # past the fitted horizon, over a season's turn
        total = c.long.groupby(["unique_id", "step"], sort=False)["contribution"].sum().to_numpy()
        assert total == pytest.approx(c.frame["yhat"].to_numpy(), rel=1e-10), spec
        assert set(c.frame["method"]) == {"ets-states"} and len(set(c.long["component"])) == 2 + (spec[2] != "N")
        assert all(name.startswith(f"ETS({spec[0]},{spec[1]}{'d' if damped else ''},") for name in c.models.values())


def test_the_forecast_command_prints_csv_and_exits_2_in_one_line_on_bad_input(ets, root, tmp_path, monkeypatch,
                                                                              capsys) -> None:
    from specweave_ray.cli import main
    from specweave_ray.workspace import Increment

    monkeypatch.setenv("SPECWEAVE_MLFLOW", "0")
    predictor, model = ets
    inc = Increment.create("Shops", problem_type="timeseries", root=root)
    _package(inc.models_dir, model)
    assert main(["forecast", inc.id, "--root", str(root), "--series", "s1", "--horizon", "2"]) == 0
    out = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert list(out["unique_id"]) == ["s1", "s1"] and out["yhat"].to_numpy() == pytest.approx(
        predictor.forecast(2, series=["s1"])["yhat"].to_numpy())
    history = tmp_path / "new.csv"
    pd.DataFrame({"shop": ["s0"], "month": ["2023-09-01"], "units": [1.0]}).to_csv(history, index=False)
    for extra, message in ((["--horizon", "0"], "--horizon must be a positive integer, got 0"),
                           (["--series", "s1,nope"], "unknown series 'nope'"),
                           (["--history", str(history)], "history for series 's0' starts at 2023-09-01")):
        assert main(["forecast", inc.id, "--root", str(root), *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
