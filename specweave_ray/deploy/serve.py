"""HTTP serving of a :class:`~specweave_ray.deploy.predictor.Predictor`: one route set, two engines.

Routes (JSON over HTTP):

* ``POST /predict`` — one row object, a list of row objects, or ``{"rows": [...]}``; answers
  ``{"predictions": [...], "probabilities": [...], "version": K}`` (probabilities for
  classifiers only: for a binary model the probability of its second class, ``classes[1]`` in
  ``/metadata``; for more classes one list per row, in the order of ``classes``).
* ``POST /explain`` — same body, ``?top=N`` (default 5); answers ``{"explanations": [...]}``.
* A recommender answers ``POST /recommend`` (and ``/explain`` for a user's list) instead; a
  forecaster ``POST /forecast``: ``{"horizon", "series", "history", "future"}``, all optional,
  answered per series and step with the 80/95% intervals where the model has them
  (:meth:`~specweave_ray.deploy._forecast.ForecastPredictor.answer`).
* ``GET /health`` and ``GET /metadata``.

Bad input is the client's fault, never the server's: an oversized body is 413, malformed JSON,
a wrong shape or a row that does not match the model's schema is 422 with a message naming the
fields. The engines:

* ``local`` — :func:`create_app` on uvicorn in this process (:func:`serve_local`);
* ``ray-serve`` — :func:`deploy_ray_serve`, a Ray Serve deployment whose replicas load the
  Predictor and merge concurrent single-row requests into one ``predict`` call
  (``@serve.batch``), behind the same routes.

Both bind to loopback unless told otherwise.

Example:
    >>> from specweave_ray.deploy.predictor import Predictor          # doctest: +SKIP
    >>> app = create_app(Predictor.load("0001-fraud-detection"))  # doctest: +SKIP
    >>> serve_local(Predictor.load("0001"), port=8000)           # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from specweave_ray.deploy._package_read import load_package
from specweave_ray.deploy.predictor import Predictor
from specweave_ray.exceptions import BadRequest, ConfigError, http_status, require
from specweave_ray.workspace.increment import Increment
from specweave_ray.workspace.records import resolve_increment

logger = logging.getLogger(__name__)

__all__ = ["create_app", "deploy_ray_serve", "parse_forecast", "parse_rows", "ray_serve_app",
           "check_port", "run_ray_serve", "score_rows", "serve_local", "wait_healthy"]

try:  # orjson parses and encodes several times faster; the stdlib is the fallback
    import orjson

    _loads = orjson.loads

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)
except ImportError:  # pragma: no cover - depends on the environment
    _loads = json.loads

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=_json_default).encode()

_SCALARS = (str, int, float, bool, type(None))
MAX_JSON_DEPTH = 8  # {"rows": [{...}]} is 3 deep; deeper bodies are refused before parsing
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = re.compile(rb"[^\[\]{}]+")
_INT_LIMIT = 2**63 - 1  # bigger integers overflow NumPy's int64 and float conversions
_JSON = "application/json"


# -- request parsing and scoring (engine-independent) ----------------------------------------
def _json_body(body: bytes, *, expected: str, nested: str) -> Any:
    """The decoded JSON of a request body, or a 422 saying what to send."""
    if not body:
        raise BadRequest(422, f"empty body; send {expected}")
    depth = json_depth(body)
    if depth > MAX_JSON_DEPTH:
        raise BadRequest(422, f"body is nested too deeply ({depth} levels); at most {MAX_JSON_DEPTH} are "
                              f"accepted (send {expected})")
    try:
        return _loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadRequest(422, f"body is not valid JSON: {err}") from None
    except RecursionError:
        raise BadRequest(422, f"body is nested too deeply to be {nested}") from None


def json_depth(body: bytes) -> int:
    """How deeply a JSON text's arrays and objects nest (brackets inside strings ignored),
    counted with two regular expressions and a loop over the brackets only: bounded work for
    any body, before the parser recurses."""
    brackets = _NOT_BRACKETS.sub(b"", _STRINGS.sub(b'""', body) if b'"' in body else body)
    if len(brackets) <= 2 * MAX_JSON_DEPTH:
        return (len(brackets) + 1) // 2
    depth = deepest = 0
    for c in brackets:
        if c in b"[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    return deepest
        else:
            depth -= 1
    return deepest


def parse_rows(body: bytes, *, max_rows: int) -> list[dict[str, Any]]:
    """The rows of a ``/predict`` or ``/explain`` body, or :class:`BadRequest` (422/413).

    Accepts one row object, a list of row objects, or ``{"rows": [...]}``. Values must be JSON
    scalars; a nested object or list is refused naming the field.
    """
    data = _json_body(body, expected='a JSON row object, a list of rows or {"rows": [...]}',
                      nested="rows of field → value")
    if isinstance(data, dict) and "rows" in data and len(data) == 1:
        data = data["rows"]
    if isinstance(data, dict):
        rows = [data]
    elif isinstance(data, list):
        rows = data
    else:
        raise BadRequest(422, f"body must be a JSON object, a list of objects or "
                              f'{{"rows": [...]}}, got {type(data).__name__}')
    if not rows:
        raise BadRequest(422, "no rows to score: the list is empty")
    if len(rows) > max_rows:
        raise BadRequest(413, f"{len(rows)} rows in one request; at most {max_rows} are accepted, "
                              "split the request")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise BadRequest(422, f"row {i} must be a JSON object of field → value, "
                                  f"got {type(row).__name__}")
        for key, value in row.items():
            _check_scalar(value, f"row {i} field {key!r}")
            if type(value) is float and not math.isfinite(value):
                raise BadRequest(422, f"row {i} field {key!r} is {value}; JSON numbers are finite "
                                      "(send null for a missing value)")
            if type(value) is int and not -_INT_LIMIT <= value <= _INT_LIMIT:
                raise BadRequest(422, f"row {i} field {key!r}: the integer {value:.3e} is out of "
                                      "range for a model input")
    return rows


def parse_recommend(body: bytes, *, max_rows: int) -> dict[str, Any]:
    """A ``/recommend`` or ``/explain`` body of a recommender: ``{"user": id}`` or ``{"users":
    [ids]}``, with optional ``k`` (a positive integer) and ``exclude_seen`` (default true).

    Raises:
        BadRequest: 422 naming the field, 413 for too many users.
    """
    data = _json_body(body, expected='{"user": ID} or {"users": [ID, ...]}, optionally "k"',
                      nested="a recommendation request")
    if not isinstance(data, dict):
        raise BadRequest(422, f'body must be a JSON object such as {{"user": ID}}, got {type(data).__name__}')
    unknown = sorted(set(data) - {"user", "users", "k", "exclude_seen"})
    if unknown:
        raise BadRequest(422, f"unknown field(s) {unknown}; accepted: user, users, k, exclude_seen")
    if ("user" in data) == ("users" in data):
        raise BadRequest(422, 'give exactly one of "user" (an id) or "users" (a list of ids)')
    ids = data["users"] if "users" in data else [data["user"]]
    if not isinstance(ids, list) or not ids:
        raise BadRequest(422, '"users" must be a non-empty list of ids')
    if len(ids) > max_rows:
        raise BadRequest(413, f"{len(ids)} users in one request; at most {max_rows} are accepted")
    for i, u in enumerate(ids):
        if isinstance(u, bool) or not isinstance(u, (str, int)):
            raise BadRequest(422, f"user {i} must be a string or an integer id, got {u!r}")
    k = data.get("k")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise BadRequest(422, f'"k" must be a positive integer, got {k!r}')
    exclude = data.get("exclude_seen", True)
    if not isinstance(exclude, bool):
        raise BadRequest(422, f'"exclude_seen" must be true or false, got {exclude!r}')
    return {**data, "exclude_seen": exclude}


def parse_forecast(body: bytes, *, max_rows: int) -> dict[str, Any]:
    """A ``/forecast`` body: a JSON object with optional ``horizon`` (a positive integer),
    ``series`` (a list of ids), ``history`` and ``future`` (lists of row objects of JSON
    scalars: new observations; the exogenous columns' future values). ``{}`` (or an empty body)
    forecasts every series over the fitted horizon.

    Raises:
        BadRequest: 422 naming the field, 413 for more than ``max_rows`` series or rows.
    """
    if not body.strip():
        return {}
    data = _json_body(body, expected='a JSON object such as {"horizon": 6, "series": ["a"]}',
                      nested="a forecast request")
    if not isinstance(data, dict):
        raise BadRequest(422, f'body must be a JSON object such as {{"horizon": 6}}, got {type(data).__name__}')
    unknown = sorted(set(data) - {"horizon", "series", "history", "future"})
    if unknown:
        raise BadRequest(422, f"unknown field(s) {unknown}; accepted: horizon, series, history, future")
    h = data.get("horizon")
    if h is not None and (isinstance(h, bool) or not isinstance(h, int) or h < 1):
        raise BadRequest(422, f'"horizon" must be a positive integer, got {h!r}')
    series = data.get("series")
    if series is not None:
        if isinstance(series, (str, int)) and not isinstance(series, bool):
            series = data["series"] = [series]
        if not isinstance(series, list) or not series:
            raise BadRequest(422, '"series" must be a non-empty list of series ids')
        if len(series) > max_rows:
            raise BadRequest(413, f"{len(series)} series in one request; at most {max_rows} are accepted")
        for i, sid in enumerate(series):
            if isinstance(sid, bool) or not isinstance(sid, (str, int)):
                raise BadRequest(422, f"series {i} must be a string or an integer id, got {sid!r}")
    for field in ("history", "future"):
        rows = data.get(field)
        if rows is None:
            continue
        if not isinstance(rows, list) or not rows:
            raise BadRequest(422, f'"{field}" must be a non-empty list of row objects')
        if len(rows) > max_rows:
            raise BadRequest(413, f"{len(rows)} {field} rows in one request; at most {max_rows} are accepted")
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise BadRequest(422, f"{field} row {i} must be a JSON object of column → value, "
                                      f"got {type(row).__name__}")
            for key, value in row.items():
                _check_scalar(value, f"{field} row {i} field {key!r}")
    return data


def _check_scalar(value: Any, where: str) -> None:
    """A JSON row's value is a scalar (a nested object or list is a 422 naming ``where``)."""
    if not isinstance(value, _SCALARS):
        raise BadRequest(422, f"{where} must be a number, string, boolean or null, got {type(value).__name__}")


def score_rows(predictor: Any, rows: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """``{"predictions": [...], "probabilities": [...]}`` for ``rows`` as plain lists for JSON.

    Classifiers are scored once: the labels come from the probabilities by the Predictor's own
    rule (the binary threshold on the second class's probability, else the argmax), so a request
    costs one pass through the model, not two. ``probabilities`` is the second class's
    probability per row for a binary model, the full row of class probabilities otherwise;
    regressors have no ``probabilities``.

    Raises:
        DataError: a row does not match the model's input schema.
    """
    classes = getattr(predictor, "classes", None)
    if classes is None:
        return {"predictions": _plain(predictor.predict(rows))}
    proba = predictor.predict_proba(rows)
    return {"predictions": _plain(predictor.labels(proba)),
            "probabilities": _plain(proba[:, 1] if len(classes) == 2 else proba)}


# -- the ASGI app ----------------------------------------------------------------------------
def create_app(predictor: Any, *, max_body_bytes: int = 1_000_000, max_rows: int = 1000,
               max_explain_rows: int = 100,
               batch: Callable[[dict[str, Any]], Awaitable[dict[str, list[Any]]]] | None = None) -> Any:
    """The routes over ``predictor`` as a Starlette ASGI app.

    Args:
        predictor: A loaded :class:`~specweave_ray.deploy.predictor.Predictor`.
        max_body_bytes: Larger bodies are refused with 413 before they are read in full.
        max_rows: Requests with more rows are refused with 413.
        max_explain_rows: The same for ``/explain`` (SHAP costs far more per row).
        batch: Scores a single row, possibly together with other requests' rows (the Ray Serve
            engine's ``@serve.batch`` method); ``None`` scores each request by itself.

    Returns:
        A :class:`starlette.applications.Starlette` app.

    Raises:
        ConfigError: a limit is not a positive integer.
    """
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import Response
    from starlette.routing import Route

    for name, value in (("max_body_bytes", max_body_bytes), ("max_rows", max_rows),
                        ("max_explain_rows", max_explain_rows)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    version = predictor.version
    health = _dumps({"status": "ok", "increment": predictor.metadata.get("increment"),
                     "version": version})
    metadata = _dumps(_jsonable(predictor.metadata))

    def answer(obj: Any, status: int = 200) -> Response:
        return Response(_dumps(obj), status_code=status, media_type=_JSON)

    def refuse(status: int, message: str) -> Response:
        return answer({"error": message, "status": status}, status)

    async def read_body(request: Any) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                too_big = int(declared) > max_body_bytes
            except ValueError:
                raise BadRequest(400, f"bad Content-Length header {declared!r}") from None
            if too_big:
                raise BadRequest(413, f"body of {declared} bytes exceeds the limit of "
                                      f"{max_body_bytes} bytes; split the request")
        chunks, size = [], 0
        async for chunk in request.stream():  # a chunked body has no Content-Length
            size += len(chunk)
            if size > max_body_bytes:
                raise BadRequest(413, f"body exceeds the limit of {max_body_bytes} bytes; "
                                      "split the request")
            chunks.append(chunk)
        return b"".join(chunks)

    async def client_errors_refused(verb: str, work: Callable[[], Awaitable[Response]]) -> Response:
        """``work``'s answer, or the status :func:`http_status` gives the error: a 4xx with the
        message for what the client sent, a 500 with no detail for anything else."""
        try:
            return await work()
        except Exception as err:  # noqa: BLE001 - every error gets an answer; the table decides
            status = http_status(err)
            if status < 500:
                return refuse(status, str(err))
            logger.exception("%s failed on the server's side", verb)
            return refuse(status, f"the server failed to {verb} these rows; its log has the details")

    async def predict(request: Any) -> Response:
        async def work() -> Response:
            rows = parse_rows(await read_body(request), max_rows=max_rows)
            if check_limits is not None:
                check_limits(rows)
            out = await batch(rows[0]) if batch is not None and len(rows) == 1 else (
                score_rows(predictor, rows))
            out["version"] = version
            return answer(out)
        return await client_errors_refused("score", work)

    async def explain(request: Any) -> Response:
        async def work() -> Response:
            top = _top(request.query_params.get("top", "5"))
            rows = parse_rows(await read_body(request), max_rows=max_explain_rows)
            if check_limits is not None:
                check_limits(rows)
            # SHAP takes milliseconds to seconds: off the event loop, so /predict keeps flowing
            explanations = await run_in_threadpool(predictor.explain, rows, top=top)
            return answer({"explanations": _jsonable(explanations), "version": version})
        return await client_errors_refused("explain", work)

    async def recommend(request: Any) -> Response:
        async def work() -> Response:
            req = parse_recommend(await read_body(request), max_rows=max_rows)
            if "users" in req:
                out = {"recommendations": predictor.recommend_many(req["users"], req.get("k"),
                                                                   exclude_seen=req["exclude_seen"])}
            else:
                out = predictor.recommend(req["user"], req.get("k"), exclude_seen=req["exclude_seen"])
            out["version"] = version
            return answer(out)
        return await client_errors_refused("recommend", work)

    async def explain_list(request: Any) -> Response:
        async def work() -> Response:
            req = parse_recommend(await read_body(request), max_rows=1)
            out = await run_in_threadpool(predictor.explain, req["user"], req.get("k"))
            out["version"] = version
            return answer(_jsonable(out))
        return await client_errors_refused("explain", work)

    async def forecast(request: Any) -> Response:
        async def work() -> Response:
            req = parse_forecast(await read_body(request), max_rows=max_rows)
            # a forecast (a statsforecast refit with new history) takes milliseconds or more:
            # off the event loop, so /health keeps answering
            out = await run_in_threadpool(predictor.predict, req)
            out["version"] = version
            return answer(out)
        return await client_errors_refused("forecast", work)

    async def get_health(request: Any) -> Response:
        return Response(health, media_type=_JSON)

    async def get_metadata(request: Any) -> Response:
        return Response(metadata, media_type=_JSON)

    check_limits = getattr(predictor, "check_limits", None)

    async def not_found(request: Any, exc: Any) -> Response:
        status = getattr(exc, "status_code", 404)
        if status == 405:
            return refuse(405, f"{request.method} is not allowed on {request.url.path}")
        return refuse(404, f"no route {request.url.path}; the routes are {', '.join(paths)}")

    async def server_fault(request: Any, exc: Exception) -> Response:
        # no traceback, no exception text in the body: the log has them
        logger.error("request to %s failed", request.url.path, exc_info=exc)
        return refuse(500, "the server failed; its log has the details")

    kind = getattr(predictor, "kind", None)
    own = {"recommender": [Route("/recommend", recommend, methods=["POST"]),
                           Route("/explain", explain_list, methods=["POST"])],
           "forecaster": [Route("/forecast", forecast, methods=["POST"])]}.get(kind) or [
        Route("/predict", predict, methods=["POST"]), Route("/explain", explain, methods=["POST"])]
    paths = [r.path for r in own] + ["/health", "/metadata"]
    app = Starlette(exception_handlers={404: not_found, 405: not_found, 500: server_fault}, routes=[
        *own,
        Route("/health", get_health, methods=["GET"]),
        Route("/metadata", get_metadata, methods=["GET"]),
    ])
    app.state.predictor = predictor
    if kind in ("recommender", "forecaster"):
        return app

    async def predict_bytes(body: bytes) -> tuple[int, bytes]:
        # the /predict work of predict() above on the raw body, for _FastPredict
        try:
            rows = parse_rows(body, max_rows=max_rows)
            if check_limits is not None:
                check_limits(rows)
            out = await batch(rows[0]) if batch is not None and len(rows) == 1 else (
                score_rows(predictor, rows))
            out["version"] = version
            return 200, _dumps(out)
        except Exception as err:  # noqa: BLE001 - every error gets an answer; the table decides
            status = http_status(err)
            if status < 500:
                return status, _dumps({"error": str(err), "status": status})
            logger.exception("score failed on the server's side")
            return status, _dumps({"error": "the server failed to score these rows; its log has "
                                            "the details", "status": status})

    return _FastPredict(app, predict_bytes, max_body_bytes)


class _FastPredict:
    """``POST /predict`` answered straight from the ASGI messages; every other request goes to
    the Starlette app. Hand-written because Starlette's router, Request and Response objects cost
    more per single-row request than parsing, validating and scoring the row (bench_serve.py
    measures both); the body limit, status table and answers are the same as the routes'."""

    def __init__(self, app: Any, predict: Callable[[bytes], Awaitable[tuple[int, bytes]]],
                 max_body_bytes: int) -> None:
        self.app, self._predict, self._limit = app, predict, max_body_bytes

    def __getattr__(self, name: str) -> Any:  # state, router, routes: the Starlette app's
        return getattr(self.app, name)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/predict" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        status, body = await self._answer(scope, receive)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Any, receive: Any) -> tuple[int, bytes]:
        limit = self._limit
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    return 400, _dumps({"error": f"bad Content-Length header {value.decode(errors='replace')!r}",
                                        "status": 400})
                if declared > limit:
                    return 413, _dumps({"error": f"body of {declared} bytes exceeds the limit of {limit} "
                                                 "bytes; split the request", "status": 413})
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return 400, b'{"error":"the client disconnected","status":400}'
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return 413, _dumps({"error": f"body exceeds the limit of {limit} bytes; split the request",
                                    "status": 413})
            chunks.append(chunk)
            more = message.get("more_body", False)
        return await self._predict(chunks[0] if len(chunks) == 1 else b"".join(chunks))


def _top(raw: str) -> int:
    try:
        top = int(raw)
    except ValueError:
        raise BadRequest(422, f"query parameter top must be an integer, got {raw!r}") from None
    if not 1 <= top <= 100:
        raise BadRequest(422, f"query parameter top must be between 1 and 100, got {top}")
    return top


# -- engine: local ---------------------------------------------------------------------------
def serve_local(predictor: Any, *, host: str = "127.0.0.1", port: int = 8000,
                log_level: str = "warning", **app_options: Any) -> None:
    """Serve :func:`create_app` with uvicorn in this process until interrupted.

    One process, one event loop, no thread pool: a row is scored in well under a millisecond,
    so handing it to a thread would cost more than it saves on a 2-core machine.
    """
    import uvicorn

    app = create_app(predictor, **app_options)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                            lifespan="off", server_header=False, date_header=False)
    uvicorn.Server(config).run()


# -- engine: Ray Serve -----------------------------------------------------------------------
def ray_serve_app(increment_path: str | os.PathLike[str] | None, *, version: str | int = "latest",
                  replicas: int = 1, max_ongoing_requests: int = 64, max_batch_size: int = 32,
                  batch_wait_timeout_s: float = 0.002, max_body_bytes: int = 1_000_000,
                  max_rows: int = 1000, num_cpus: float = 1.0,
                  loader: Callable[[], Any] | None = None) -> Any:
    """The bound Ray Serve application (``Deployment.bind(...)``) for an increment's model.

    Each replica loads the Predictor itself — from ``increment_path`` (which must then be
    readable on the replica's node: a shared filesystem on a cluster), or by calling ``loader``
    (shipped to the replica by pickling: a way to serve without a shared filesystem) — and
    serves :func:`create_app`'s routes. Single-row ``/predict`` requests that arrive together
    are merged into one ``predict`` call of up to ``max_batch_size`` rows, waiting at most
    ``batch_wait_timeout_s`` for a batch to fill.

    Raises:
        ConfigError: a count is not a positive integer, or neither a path nor a loader is given.
    """
    import functools

    from ray import serve

    _check_positive(replicas=replicas, max_ongoing_requests=max_ongoing_requests,
                    max_batch_size=max_batch_size)
    if not (isinstance(batch_wait_timeout_s, (int, float)) and batch_wait_timeout_s >= 0):
        raise ConfigError(f"batch_wait_timeout_s must be a number >= 0, got {batch_wait_timeout_s!r}")
    if loader is None:
        if increment_path is None:
            raise ConfigError("give the increment's path or a loader")
        loader = functools.partial(_load_predictor, str(Path(increment_path).resolve()), version)

    kind = _package_kind(Path(increment_path), version) if increment_path is not None else None
    if kind in ("recommender", "forecaster"):
        raise ConfigError(f"the Ray Serve engine serves row-scoring models; serve a {kind} with "
                          "--engine local")

    @serve.ingress()
    class SpecweavePredictor:
        def __init__(self, load: Callable[[], Any]) -> None:
            self.predictor = load()

        @serve.batch(max_batch_size=max_batch_size, batch_wait_timeout_s=batch_wait_timeout_s)
        async def score_batch(self, rows: list[dict[str, Any]]) -> list[Any]:
            return _score_each(self.predictor, rows)

        async def score_one(self, row: dict[str, Any]) -> dict[str, list[Any]]:
            result = await self.score_batch(row)
            if isinstance(result, Exception):
                raise result
            return result

        def __serve_build_asgi_app__(self) -> Any:
            # Built on the replica, after __init__: the same routes as the local engine, over
            # the replica's own Predictor, with single rows going through the batcher.
            return create_app(self.predictor, batch=self.score_one,
                              max_body_bytes=max_body_bytes, max_rows=max_rows)

    # max_ongoing_requests is how many requests a replica holds at once; past it the proxy
    # queues them. Serve's default (5) also caps a batch at 5 rows. Measured on 2 cores, one
    # replica, the fraud XGBoost package, single-row JSON from 16 clients
    # (then benchmarks/bench_inference.py --ray-settings, now bench_serve.py; two runs): 5 and no batching -> 39-48
    # req/s, p50 290-350 ms, p99 ~1 s; 16 with batches of 16 -> 148-156 req/s, p50 ~100 ms;
    # 64 with batches of 32 -> 140-152 req/s, p50 ~100 ms, p99 ~230 ms. 16 and 64 are equal
    # within noise at 16 clients; 64 is kept so more clients than 16 do not queue in the proxy
    # again, and because it must be at least max_batch_size for a batch to fill. It still
    # bounds the work one replica accepts. The remaining gap to the local engine (~2 000
    # req/s here) is Serve's proxy -> replica hop on 2 shared cores, not the model.
    deployment = serve.deployment(
        SpecweavePredictor, name="specweave-predictor", num_replicas=replicas,
        max_ongoing_requests=max_ongoing_requests, ray_actor_options={"num_cpus": num_cpus},
    )
    return deployment.bind(loader)


def _package_kind(path: Path, version: str | int) -> str | None:
    try:
        meta, _ = load_package(resolve_increment(path, None), version)
    except Exception:  # noqa: BLE001 - the loader itself reports an unreadable package
        return None
    return meta.get("kind")


def _load_predictor(path: str, version: str | int) -> Any:
    return Predictor.load(path, version=version)


def deploy_ray_serve(increment_path_or_id: str | int | os.PathLike[str], *,
                     root: str | os.PathLike[str] | None = None, version: str | int = "latest",
                     host: str = "127.0.0.1", port: int = 8000, replicas: int = 1,
                     max_ongoing_requests: int = 64, max_batch_size: int = 32,
                     batch_wait_timeout_s: float = 0.002, address: str | None = None,
                     app_name: str = "specweave") -> Any:
    """Deploy the increment's model on Ray Serve, listening on ``host:port``.

    Connects to ``address`` (or ``$RAY_ADDRESS``) or starts a local Ray, starts Serve's HTTP
    proxy on ``host:port`` (loopback by default) and runs :func:`ray_serve_app` under
    ``app_name`` at route prefix ``/``. Stop it with ``serve.shutdown()``.

    Returns:
        The ingress deployment's handle.

    Raises:
        IncrementNotFoundError: no such increment.
        RecordError: no such package version, or a file of it fails its hash check.
        MissingDependencyError: ``ray[serve]`` is not installed.
    """

    require("ray.serve", extra="serve", feature="the ray-serve engine")
    import ray
    from ray import serve

    inc = Increment.open(increment_path_or_id, root=root)
    # Check the package here, before Ray starts, and pin "latest" to its number: every replica,
    # including one started later, then serves the same verified version.
    meta, _ = load_package(inc, version)
    version = int(meta["version"])
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False,  # a new one
                     log_to_driver=False)
    serve.start(http_options={"host": host, "port": int(port)})
    app = ray_serve_app(inc.path, version=version, replicas=replicas,
                        max_ongoing_requests=max_ongoing_requests, max_batch_size=max_batch_size,
                        batch_wait_timeout_s=batch_wait_timeout_s,
                        num_cpus=_replica_cpus(replicas))
    return serve.run(app, name=app_name, route_prefix="/")


def run_ray_serve(increment_path_or_id: str | int | os.PathLike[str], *,
                  on_ready: Callable[[str], None] | None = None, **options: Any) -> None:
    """:func:`deploy_ray_serve`, then block until SIGINT/SIGTERM; then shut Serve down, and
    the Ray this call started.

    Args:
        increment_path_or_id: The increment.
        on_ready: Called with the base URL once the deployment answers.
        **options: Passed to :func:`deploy_ray_serve`.
    """
    import signal
    import threading

    import ray
    from ray import serve

    started_ray = not ray.is_initialized()
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        deploy_ray_serve(increment_path_or_id, **options)
        host, port = options.get("host", "127.0.0.1"), options.get("port", 8000)
        if on_ready is not None:
            on_ready(f"http://{host}:{port}")
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if ray.is_initialized():
            serve.shutdown()
            if started_ray:
                ray.shutdown()


def _replica_cpus(replicas: int) -> float:
    # A replica scores on one core; on a small local Ray, replicas share the cores rather than
    # wait forever for CPUs that do not exist.
    import ray

    total = ray.cluster_resources().get("CPU", 1.0)
    return min(1.0, max(0.1, total / replicas)) if replicas > total else 1.0


def _score_each(predictor: Any, rows: list[dict[str, Any]]) -> list[Any]:
    """Score a batch in one call; if it fails, score row by row so one bad row fails alone."""
    try:
        out = score_rows(predictor, rows)
    except Exception as err:  # noqa: BLE001 - handed back to the request that sent the row
        if len(rows) == 1:
            return [err]
        return [r for row in rows for r in _score_each(predictor, [row])]
    keys = list(out)
    return [{k: [out[k][i]] for k in keys} for i in range(len(rows))]


def check_port(host: str, port: int) -> None:
    """Fail early, with a message, when ``host:port`` cannot be bound (in use, or not local).

    Raises:
        ConfigError: The address cannot be bound; the message names it and the OS reason.
    """
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, int(port)))
    except OSError as err:
        raise ConfigError(f"cannot listen on {host}:{port}: {err.strerror or err}; pick another "
                          "--port (or stop what is using it)") from None


def wait_healthy(url: str, *, timeout_s: float = 60.0, process: Any = None) -> None:
    """Poll ``url`` (``…/health``) until it answers 200, a bounded number of times.

    Raises:
        ConfigError: no answer within ``timeout_s``, or ``process`` exited first.
    """
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ConfigError(f"the server exited with status {process.returncode} before "
                              f"{url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2.0) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError) as err:
            last = err
        time.sleep(0.2)
    raise ConfigError(f"{url} did not answer 200 within {timeout_s:g} s (last error: {last})")


# -- helpers ---------------------------------------------------------------------------------
def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _plain(values: Any) -> list[Any]:
    tolist = getattr(values, "tolist", None)
    return tolist() if tolist is not None else list(values)


def _json_default(obj: Any) -> Any:
    tolist = getattr(obj, "tolist", None)
    if tolist is not None:
        return tolist()
    item = getattr(obj, "item", None)
    if item is not None:
        return item()
    return str(obj)


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=_json_default))
