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
from specweave_ray.candidates.forecasters import ETSForecaster, WindowMeanForecaster
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


@pytest.mark.parametrize("family", ["gbm", "ets"])
def test_the_t007_record_explains_each_step_or_says_why_not(family, root, panel, monkeypatch) -> None:
    from specweave_ray.deploy._forecast_report import write_forecast_explainability
    from specweave_ray.workspace import Increment, read_record

    monkeypatch.setenv("SPECWEAVE_MLFLOW", "0")  # the record's files are what is tested here
    inc = Increment.create("Shops", problem_type="timeseries", root=root)
    if family == "gbm":
        X_tr, X_te, y_tr, y_te = _split(_panel(promo=True, seed=2))
        model = GBMForecaster(n_estimators=40, num_leaves=8).fit(X_tr, y_tr)
    else:
        X_tr, X_te, y_tr, y_te = panel
        model = ETSForecaster().fit(X_tr, y_tr)
    predictor = ForecastPredictor({"version": 1, **forecast_metadata(model=model, columns=COLUMNS)}, root, model=model)
    rec = read_record(inc.experiments_dir / write_forecast_explainability(inc, predictor, X_te, y_te))
    report = (rec.path / "explainability.md").read_text()
    if family == "gbm":
        assert rec.meta["explainer"] == "tree-contributions" and rec.metrics["additivity_max_error"] < 1e-6
        by_step = pd.read_csv(rec.path / "by_step.csv", index_col=0)
        assert list(by_step.columns) == [f"step_{s}" for s in range(1, 7)] and "promo" in by_step.index
        assert (rec.path / "contributions_by_step.png").stat().st_size > 0
        examples = json.loads((rec.path / "examples.json").read_text())
        worst = max(examples, key=lambda e: abs(e["prediction"] - e["actual"]))
        assert worst == examples[0] and len(examples[0]["contributions"]) == 5
        assert "log1p of the values" in report and "Mean |contribution| by step" in report
    else:
        assert rec.meta["explainer"] == "not-applicable" and "contributions do not apply" in report
        assert rec.params["decomposition"] == "STL" and (rec.path / "decomposition.png").exists()
        assert rec.metrics["series_decomposed"] == 3 and rec.metrics["seasonal_strength_s0"] > 0.5


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
