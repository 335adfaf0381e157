"""HTTP serving: the routes on the ASGI app (every route; bad payloads are 4xx, never 500), a real
uvicorn server in a subprocess, and a real Ray Serve deployment answering like the Predictor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from specweave_ray.deploy.serve import create_app, parse_rows, score_rows
from specweave_ray.exceptions import BadRequest, ConfigError, DataError, RecordError

# -- one small increment with a model package, built once per session ------------------------
_TINY = {
    "increment": "Fraud Tiny", "problem_type": "classification",
    "data": {"generate": "fraud", "rows": 1500, "target": "is_fraud", "params": {"positive_rate": 0.05}},
    "sweep": {"cv": 2, "stages": 1, "tuning_samples": 1, "num_cpus": 2},
    "candidates": [{"name": "xgboost", "estimator": "xgboost",
                    "params": {"n_estimators": 20, "max_depth": 3}, "num_samples": 1}],
    "seed": 1,
}
_BUILT: dict[str, Any] = {}


def build_tiny_package(base: Path) -> tuple[Path, str]:
    """(root, increment id) of a 1 500-row fraud increment run through T-001 … T-007 (which
    packages an XGBoost model as model-v1). Built once per test session and shared."""
    if "root" in _BUILT:
        return _BUILT["root"], _BUILT["id"]
    from specweave_ray.pipeline._tasks import ensure_increment, run_pipeline
    from specweave_ray.spec.config import load_config

    base.mkdir(parents=True, exist_ok=True)
    cfg_path = base / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(_TINY))
    root = base / "incs"
    cfg = load_config(cfg_path)
    with pytest.MonkeyPatch.context() as mp:
        import ray

        from specweave_ray.search._ray.tune import ensure_ray

        mp.setenv("SPECWEAVE_MLFLOW", "0")
        mp.delenv("SPECWEAVE_ROOT", raising=False)
        mp.delenv("RAY_ADDRESS", raising=False)
        inc = ensure_increment(cfg, root=root)
        for task in ("T-008", "T-009"):  # the benchmark and A/B plan are what these tests test
            inc.tick(task)
        started = ensure_ray(num_cpus=2)  # one Ray for the pipeline's three sweeps
        try:
            run_pipeline(cfg, root=root, increment=inc)
        finally:
            if started:
                ray.shutdown()
    assert (inc.models_dir / "model-v1.metadata.json").is_file()
    _BUILT.update(root=root, id=inc.id)
    return root, inc.id


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return build_tiny_package(tmp_path_factory.getbasetemp() / "tiny-package")


@pytest.fixture(scope="module")
def predictor(package: tuple[Path, str]) -> Any:
    from specweave_ray.deploy.predictor import Predictor

    root, inc_id = package
    return Predictor.load(inc_id, root=root)


@pytest.fixture(scope="module")
def rows(package: tuple[Path, str]) -> list[dict[str, Any]]:
    from specweave_ray.deploy.bench import json_rows
    from specweave_ray.workspace.increment import Increment

    root, inc_id = package
    df = pd.read_parquet(Increment.open(inc_id, root=root).data_dir / "sample.parquet")
    return json_rows(df.drop(columns=["is_fraud"]).head(50))


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def _send(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with _client(app) as client:
        return await client.request(method, path, **kwargs)


def _call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    import asyncio

    return asyncio.run(_send(app, method, path, **kwargs))


# -- parsing, without a model -------------------------------------------------------------------
@pytest.mark.parametrize(("body", "expected"), [
    (b'{"a": 1}', [{"a": 1}]),
    (b'[{"a": 1}, {"a": 2.5}]', [{"a": 1}, {"a": 2.5}]),
    (b'{"rows": [{"a": null, "b": "x"}]}', [{"a": None, "b": "x"}]),
])
def test_parse_rows_accepts_an_object_a_list_or_rows(body: bytes, expected: list[dict]) -> None:
    assert parse_rows(body, max_rows=10) == expected


@pytest.mark.parametrize(("body", "status", "match"), [
    (b"", 422, "empty body"),
    (b"{not json", 422, "not valid JSON"),
    (b"\xff\xfe", 422, "not valid JSON"),
    (b"[]", 422, "list is empty"),
    (b'{"rows": []}', 422, "list is empty"),
    (b"3", 422, "got int"),
    (b'"row"', 422, "got str"),
    (b"null", 422, "got NoneType"),
    (b"[1, 2]", 422, "row 0 must be a JSON object"),
    (b'[{"a": 1}, "x"]', 422, "row 1 must be a JSON object"),
    (b'{"rows": 5}', 422, "got int"),
    (b'{"a": [1, 2]}', 422, "field 'a' must be a number, string, boolean or null, got list"),
    (b'{"a": {"b": 1}}', 422, "field 'a' must be .* got dict"),
    # the stdlib parser reads NaN/Infinity/huge integers and they are refused after parsing;
    # orjson, when installed, refuses them as invalid JSON
    (b'{"a": NaN}', 422, "field 'a' is nan|not valid JSON"),
    (b'{"a": Infinity}', 422, "field 'a' is inf|not valid JSON"),
    (b'{"a": 1' + b"0" * 30 + b"}", 422, "out of range|not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, 422, "nested too deeply|not valid JSON"),
    (b"[" + b",".join([b'{"a": 1}'] * 11) + b"]", 413, "11 rows in one request; at most 10"),
])
def test_parse_rows_refuses_bad_bodies(body: bytes, status: int, match: str) -> None:
    with pytest.raises(BadRequest, match=match) as info:
        parse_rows(body, max_rows=10)
    assert info.value.status == status


class _Stub:
    """A Predictor stand-in: two classes, threshold 0.5, ``amount`` required."""

    version = 3
    classes = np.array([0, 1])
    threshold = 0.5
    metadata = {"increment": "0001-stub", "version": 3, "problem_type": "classification"}

    def predict_proba(self, rows: list[dict]) -> np.ndarray:
        bad = [i for i, r in enumerate(rows) if not isinstance(r.get("amount"), (int, float))]
        if bad:
            raise DataError(f"field 'amount' must be a number in row(s) {bad}")
        p = np.array([min(1.0, r["amount"] / 1000) for r in rows])
        return np.column_stack([1 - p, p])

    def labels(self, proba: np.ndarray) -> np.ndarray:  # Predictor.labels: threshold on class 1
        return self.classes[(proba[:, 1] >= self.threshold).astype(int)]

    def explain(self, rows: list[dict], *, top: int = 5) -> list[dict]:
        return [{"contributions": [{"feature": "amount", "contribution": 0.1}][:top]} for _ in rows]


def test_create_app_checks_its_limits() -> None:
    for bad in ({"max_rows": 0}, {"max_body_bytes": -1}, {"max_explain_rows": True}):
        with pytest.raises(ConfigError, match="must be a positive integer"):
            create_app(_Stub(), **bad)


class _Failing(_Stub):
    """A predictor whose scoring fails with ``error``: a fault injected on the server's side."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def predict_proba(self, rows: list[dict]) -> np.ndarray:
        raise self.error

    def explain(self, rows: list[dict], *, top: int = 5) -> list[dict]:
        raise self.error


@pytest.mark.parametrize(("error", "status"), [
    (KeyError("feature_17"), 500), (ValueError("shapes (1,18) and (17,) not aligned"), 500),
    (TypeError("unsupported operand"), 500), (RecordError("hash mismatch for model-v1.ubj"), 500),
    (DataError("row 0 field 'amount' must be a number"), 422),
])
def test_errors_while_scoring_are_answered_from_the_status_table(error: Exception, status: int,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(_Failing(error))
    for route in ("/predict", "/explain"):
        resp = _call(app, "POST", route, json={"amount": 5})
        assert resp.status_code == status, (route, resp.text)
        body = resp.json()
        assert body["status"] == status and "Traceback" not in resp.text
        if status == 500:  # the server's fault: nothing of its internals reaches the client
            assert str(error).strip("'") not in body["error"] and "log" in body["error"]
        else:
            assert body["error"] == str(error)
    if status == 500:
        assert any(r.exc_info and r.exc_info[1] is error for r in caplog.records)


def test_stub_routes_and_the_body_limit() -> None:
    app = create_app(_Stub(), max_body_bytes=200)
    ok = _call(app, "POST", "/predict", json=[{"amount": 900}, {"amount": 100}])
    assert ok.status_code == 200
    assert ok.json() == {"predictions": [1, 0], "probabilities": [0.9, 0.1], "version": 3}
    big = _call(app, "POST", "/predict", content=b'{"amount": ' + b" " * 300 + b"1}")
    assert big.status_code == 413 and "exceeds the limit of 200 bytes" in big.json()["error"]

    async def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(10):
            yield b" " * 50

    chunked = _call(app, "POST", "/predict", content=chunks())
    assert chunked.status_code == 413
    assert _call(app, "POST", "/predict", json={"amount": "x"}).status_code == 422
    assert _call(app, "GET", "/predict").status_code == 405
    assert _call(app, "GET", "/nope").status_code == 404
    assert _call(app, "POST", "/explain?top=1", json={"amount": 5}).json()["explanations"][0][
        "contributions"][0]["feature"] == "amount"
    for top in ("0", "x", "101"):
        assert _call(app, "POST", f"/explain?top={top}", json={"amount": 5}).status_code == 422


# -- the routes over a real package -----------------------------------------------------------
@pytest.mark.slow
def test_every_route_over_the_real_predictor(predictor: Any, rows: list[dict]) -> None:
    app = create_app(predictor)
    health = _call(app, "GET", "/health").json()
    assert health == {"status": "ok", "increment": predictor.metadata["increment"], "version": 1}
    meta = _call(app, "GET", "/metadata").json()
    assert meta["problem_type"] == "classification" and meta["version"] == 1
    assert set(meta["input_schema"]) == set(predictor.input_columns)

    one = _call(app, "POST", "/predict", json=rows[0]).json()
    assert one["version"] == 1 and len(one["predictions"]) == len(one["probabilities"]) == 1
    many = _call(app, "POST", "/predict", json={"rows": rows}).json()
    np.testing.assert_allclose(many["probabilities"], predictor.predict_proba(rows)[:, 1], rtol=1e-12)
    assert many["predictions"] == predictor.predict(rows).tolist()
    assert _call(app, "POST", "/predict", json=rows).json() == many

    expl = _call(app, "POST", "/explain?top=3", json=rows[:2])
    assert expl.status_code == 200
    body = expl.json()
    assert body["version"] == 1 and len(body["explanations"]) == 2
    assert len(body["explanations"][0]["contributions"]) == 3


@pytest.mark.slow
def test_score_rows_labels_match_predict(predictor: Any, rows: list[dict]) -> None:
    # the labels are derived from one predict_proba call; they must equal the Predictor's own
    out = score_rows(predictor, rows)
    assert out["predictions"] == predictor.predict(rows).tolist()


def _bad_payloads(row: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """(description, body, a phrase the error must contain)."""
    first = next(iter(row))
    numeric = next(k for k, v in row.items() if isinstance(v, (int, float)))
    text = next(k for k, v in row.items() if isinstance(v, str))
    missing = {k: v for k, v in row.items() if k != first}
    return [
        ("missing field", missing, first),
        ("extra field", {**row, "surprise": 1}, "surprise"),
        ("text in a number", {**row, numeric: "ten"}, numeric),
        ("list in a field", {**row, numeric: [1, 2]}, numeric),
        ("object in a field", {**row, text: {"a": 1}}, text),
        ("bool in a number", {**row, numeric: True}, numeric),
        ("number in a category", {**row, text: 12}, ""),
        ("empty row", {}, first),
        ("rows of numbers", [1, 2, 3], "row 0"),
        ("rows not a list", {"rows": "x"}, ""),
        ("one bad row among good", [row, {**row, numeric: "x"}], numeric),
        ("null everywhere", dict.fromkeys(row), ""),
        ("huge integer", {**row, numeric: 10**30}, numeric),
        ("huge float", {**row, numeric: 1e308}, ""),  # finite, but overflows once scaled
        ("unicode keys", {**row, "ünï\u0000": 1}, ""),
    ]


@pytest.mark.slow
def test_bad_payloads_are_4xx_never_500(predictor: Any, rows: list[dict]) -> None:
    app = create_app(predictor, max_rows=20)
    for name, payload, phrase in _bad_payloads(rows[0]):
        resp = _call(app, "POST", "/predict", content=json.dumps(payload).encode())
        assert resp.status_code in (200, 400, 413, 422), (name, resp.status_code, resp.text)
        if resp.status_code != 200:
            assert phrase in resp.json()["error"], (name, resp.json())
        explained = _call(app, "POST", "/explain", content=json.dumps(payload).encode())
        assert explained.status_code in (200, 400, 413, 422), (name, explained.text)
    for raw in (b"", b"{", b"[]", b"null", b'"x"', b"\x00\x01", b"[" * 5000):
        resp = _call(app, "POST", "/predict", content=raw)
        assert resp.status_code == 422, (raw[:20], resp.text)
    too_many = _call(app, "POST", "/predict", json=[rows[0]] * 21)
    assert too_many.status_code == 413 and "at most 20" in too_many.json()["error"]
    huge = _call(app, "POST", "/predict", content=b"[" + b" " * 2_000_000 + b"]")
    assert huge.status_code == 413


# -- a real uvicorn server --------------------------------------------------------------------
@pytest.mark.slow
def test_local_engine_in_a_subprocess(package: tuple[Path, str], predictor: Any,
                                      rows: list[dict]) -> None:
    from specweave_ray.deploy.bench import bench_http, free_port
    from specweave_ray.deploy.serve import wait_healthy

    root, inc_id = package
    port = free_port()
    env = {**os.environ, "SPECWEAVE_MLFLOW": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "specweave_ray", "serve", inc_id, "--root", str(root),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", timeout_s=60, process=proc)
        for row in rows[:20]:  # a bounded loop of real requests
            req = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=json.dumps(row).encode(),
                                         headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as resp:
                body = json.loads(resp.read())
            assert body["probabilities"][0] == pytest.approx(predictor.predict_proba(row)[0, 1], rel=1e-12)
        bad = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=b"{oops")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(bad, timeout=10)
        assert info.value.code == 422
        load = bench_http(f"http://127.0.0.1:{port}/predict", rows, concurrency=4, total_requests=200,
                          timeout_s=30)
        assert load["http_requests"] == 200 and load["http_errors"] == 0
        assert 0 < load["http_latency_p50_ms"] <= load["http_latency_p99_ms"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]


def test_bench_http_counts_errors_and_bounds_time() -> None:
    from specweave_ray.deploy.bench import bench_http, free_port

    with pytest.raises(ConfigError, match="http://host:port/path"):
        bench_http("ftp://x/predict", [{"a": 1}])
    with pytest.raises(ConfigError, match="concurrency must be a positive integer"):
        bench_http("http://127.0.0.1:1/predict", [{"a": 1}], concurrency=0)
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match="no request .* was answered"):  # nothing listens there
        bench_http(f"http://127.0.0.1:{free_port()}/predict", [{"a": 1}], concurrency=2,
                   total_requests=20, timeout_s=5)
    assert time.monotonic() - t0 < 10


# -- a real Ray Serve deployment --------------------------------------------------------------
@pytest.mark.slow
def test_ray_serve_deployment_answers_like_the_predictor(package: tuple[Path, str], predictor: Any,
                                                         rows: list[dict]) -> None:
    import ray
    from ray import serve

    from specweave_ray.deploy.bench import bench_http, free_port
    from specweave_ray.deploy.serve import ray_serve_app
    from specweave_ray.workspace.increment import Increment

    root, inc_id = package
    port = free_port()
    assert not ray.is_initialized()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        app = ray_serve_app(Increment.open(inc_id, root=root).path, max_batch_size=8,
                            batch_wait_timeout_s=0.005)
        serve.run(app, name="specweave-test", route_prefix="/")
        base = f"http://127.0.0.1:{port}"
        health = httpx.get(f"{base}/health", timeout=30).json()
        assert health["version"] == 1
        single = [httpx.post(f"{base}/predict", json=row, timeout=30).json() for row in rows[:5]]
        expected = predictor.predict_proba(rows[:5])[:, 1]
        np.testing.assert_allclose([s["probabilities"][0] for s in single], expected, rtol=1e-12)
        many = httpx.post(f"{base}/predict", json={"rows": rows}, timeout=30).json()
        assert many["predictions"] == predictor.predict(rows).tolist()
        bad = httpx.post(f"{base}/predict", json={**rows[0], "amount": "x"}, timeout=30)
        assert bad.status_code == 422 and "amount" in bad.json()["error"]
        # concurrent single rows are batched together; a bad row among them fails alone
        load = bench_http(f"{base}/predict", rows, concurrency=8, total_requests=200, timeout_s=60)
        assert load["http_errors"] == 0 and load["http_requests"] == 200
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.mark.slow
def test_a_bad_row_in_a_batch_fails_alone(predictor: Any, rows: list[dict]) -> None:
    from specweave_ray.deploy.serve import _score_each

    out = _score_each(predictor, [rows[0], {**rows[1], "amount": "x"}, rows[2]])
    assert isinstance(out[1], DataError) and "amount" in str(out[1])
    for i, j in ((0, 0), (2, 2)):
        assert out[i]["probabilities"] == [pytest.approx(predictor.predict_proba(rows[j])[0, 1])]


# -- the schema's recorded limits, the depth limit, unknown routes (in-process predictor) -----
def test_schema_limits_depth_and_routes() -> None:
    from predictor_helpers import tiny_predictors

    from specweave_ray.deploy.serve import MAX_JSON_DEPTH, json_depth

    predictors, rows = tiny_predictors(families=("xgboost",), nullable=False)
    app = create_app(predictors["xgboost"])
    row = json.loads(rows.head(1).to_json(orient="records"))[0]
    assert _call(app, "POST", "/predict", json=row).status_code == 200
    top = predictors["xgboost"].metadata["input_schema"]["amount"]["max"]
    for payload, phrase in (({**row, "amount": True}, "field 'amount' must be a number, got True"),
                            (dict.fromkeys(row), "every field is null"),
                            ({**row, "hour": None}, "field 'hour' is null"),
                            ({**row, "amount": 1e308}, f"above the largest value the model was trained on ({top:g})"),
                            ({**row, "amount": -5.0}, "below the smallest value"),
                            ([row, {**row, "amount": 1e308}], "row 1: field 'amount'")):
        resp = _call(app, "POST", "/predict", json=payload)
        assert resp.status_code == 422 and phrase in resp.json()["error"], (payload, resp.text)
        assert _call(app, "POST", "/explain", json=payload).status_code == 422
    deep = b'{"rows": [' * 3 + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"]}" * 3
    resp = _call(app, "POST", "/predict", content=deep)
    assert resp.status_code == 422 and "nested" in resp.json()["error"]
    assert json_depth(b'{"rows": [{"a": "[[[[[[[[[[[[[["}]}') == 3  # brackets in strings do not count
    missing = _call(app, "GET", "/nope")
    assert missing.status_code == 404 and missing.json()["status"] == 404 and "/predict" in missing.json()["error"]
    wrong = _call(app, "GET", "/predict")
    assert wrong.status_code == 405 and wrong.json()["status"] == 405


def test_a_fault_outside_the_handlers_is_a_bare_500() -> None:
    from starlette.routing import Route

    app = create_app(_Stub())

    async def boom(request: Any) -> Any:
        raise RuntimeError("secret internals at /srv/model.ubj")

    app.router.routes.append(Route("/boom", boom))
    import asyncio

    async def send() -> httpx.Response:  # Starlette re-raises after answering: the server logs it
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/boom")

    resp = asyncio.run(send())
    assert resp.status_code == 500 and resp.json()["status"] == 500
    assert "secret" not in resp.text and "Traceback" not in resp.text
