"""Inference latency and throughput, checked against the spec's latency/throughput targets.

:func:`bench_inprocess` times the Predictor in this process: single-row latency (a dict row, as
an HTTP request brings it) and batch throughput; for a forecaster :func:`bench_forecast` times one
series' forecast per call and all series at once. :func:`bench_http` drives a served endpoint
with a bounded number of concurrent single-row requests on loopback. :func:`run_bench` does
both for an increment's model, writes a ``benchmark`` experiment record and the gate.

Example:
    >>> record_id, metrics, gate = run_bench("0001-fraud-detection")   # doctest: +SKIP
    >>> metrics["latency_p99_ms"] < 100                                  # doctest: +SKIP
    True
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from specweave_ray.data import load_table
from specweave_ray.deploy._package_read import read_background
from specweave_ray.deploy.predictor import Predictor
from specweave_ray.deploy.serve import wait_healthy
from specweave_ray.evaluate.gate import check_targets, gate_json, render_gate
from specweave_ray.exceptions import ConfigError, DataError
from specweave_ray.workspace.records import resolve_increment, track_experiment

logger = logging.getLogger(__name__)

__all__ = ["ENGINES", "bench_forecast", "bench_http", "bench_inprocess", "bench_rows", "forecast_requests",
           "free_port", "run_bench",
           "serving", "render_metrics"]

ENGINES = ("local", "ray-serve")
_QUANTILES = ("p50", "p95", "p99", "mean")
# the concurrent keep-alive clients of an HTTP benchmark (T-008's load; the ensemble's latency
# check in the sweep estimates for the same number)
HTTP_CLIENTS = 16


# -- in-process ------------------------------------------------------------------------------

def bench_inprocess(predictor: Any, rows: pd.DataFrame, *, n_single: int = 2000,
                    batch_sizes: Sequence[int] = (1, 32, 256, 2048),
                    batch_budget_s: float = 0.5) -> dict[str, float]:
    """Time ``predictor.predict`` on single dict rows and on batches.

    Args:
        predictor: A loaded Predictor.
        rows: Feature rows (no target); single rows cycle through them, batches repeat them.
        n_single: Number of timed single-row calls (after a short warm-up).
        batch_sizes: Batch sizes for the throughput runs.
        batch_budget_s: Time spent per batch size and input form (at least three calls each).

    Returns:
        ``latency_p50_ms``, ``latency_p95_ms``, ``latency_p99_ms``, ``latency_mean_ms``,
        ``single_row_throughput_rows_s``, and per batch size ``batch_throughput_rows_s_<n>``
        (a DataFrame of ``n`` rows) and ``batch_records_throughput_rows_s_<n>`` (a list of ``n``
        dicts, what a multi-row HTTP request brings).

    Raises:
        ConfigError: ``n_single`` or a batch size is not a positive integer.
        DataError: ``rows`` is empty.
    """
    _positive("n_single", n_single)
    for size in batch_sizes:
        _positive("batch size", size)
    if not isinstance(rows, pd.DataFrame) or rows.empty:
        raise DataError("benchmark rows must be a non-empty DataFrame of feature columns")
    records = json_rows(rows)
    predict = predictor.predict
    for row in records[: min(50, len(records))]:  # warm caches and lazy imports
        predict(row)
    lat = np.empty(n_single)
    clock = time.perf_counter
    n = len(records)
    for i in range(n_single):
        row = records[i % n]
        t0 = clock()
        predict(row)
        lat[i] = clock() - t0
    lat_ms = lat * 1000.0
    out = {
        "latency_p50_ms": float(np.percentile(lat_ms, 50)),
        "latency_p95_ms": float(np.percentile(lat_ms, 95)),
        "latency_p99_ms": float(np.percentile(lat_ms, 99)),
        "latency_mean_ms": float(lat_ms.mean()),
        "single_row_throughput_rows_s": float(n_single / lat.sum()),
    }
    for size in batch_sizes:
        frame = _tile(rows, size)
        batches = {"batch_throughput_rows_s": frame,
                   "batch_records_throughput_rows_s": json_rows(frame)}
        for name, batch in batches.items():
            predict(batch)
            calls, t0 = 0, clock()
            while calls < 3 or clock() - t0 < batch_budget_s:
                predict(batch)
                calls += 1
            out[f"{name}_{size}"] = float(size * calls / (clock() - t0))
    return out


# -- forecasts -------------------------------------------------------------------------------
# A forecast costs milliseconds (mlforecast's recursive steps, ~30 ms for a small GBM on 2 cores),
# not microseconds: bounded loops, and few concurrent clients (16 would only measure the queue).
FORECAST_HTTP_REQUESTS = 100
FORECAST_CONCURRENCY = 4
FORECAST_BUDGET_S = 1.0


def forecast_requests(predictor: Any) -> list[dict[str, Any]]:
    """One ``/forecast`` request per series (its fitted horizon). A model that reads exogenous
    columns gets future values too: each series' last observed values, repeated; they only time
    the call, nothing is scored on them."""
    out = []
    hist = predictor.model.history_ if predictor.exogenous else None
    for sid in predictor.series:
        request: dict[str, Any] = {"series": [str(sid)]}
        if hist is not None:
            last = hist.loc[hist["unique_id"] == sid].iloc[-1]
            steps = pd.date_range(last["ds"], periods=predictor.horizon + 1, freq=predictor.freq)[1:]
            request["future"] = [{"unique_id": str(sid), "ds": ts.isoformat(),
                                  **{c: float(last[c]) for c in predictor.exogenous}} for ts in steps]
        out.append(request)
    return out


def bench_forecast(predictor: Any, requests: Sequence[Mapping[str, Any]], *, n_single: int = 2000,
                   budget_s: float = FORECAST_BUDGET_S, all_budget_s: float = 0.5) -> dict[str, float]:
    """Time ``predictor.predict`` (``forecast``) on one series at a time and on all series.

    Args:
        predictor: A loaded forecast Predictor.
        requests: One request per series (:func:`forecast_requests`), cycled.
        n_single: At most this many single-series calls, and no more than ``budget_s`` of them
            (at least 20).
        all_budget_s: Time spent forecasting every series at once (at least three calls).

    Returns:
        ``latency_p50_ms`` … ``latency_mean_ms`` and ``single_series_forecasts_s`` (one series
        per call), ``single_calls``, ``all_series_latency_ms`` (mean), ``all_series_series_s``
        and ``forecast_points_s`` (series × steps per second, all series at once).
    """
    _positive("n_single", n_single)
    if not requests:
        raise DataError("no series to forecast")
    predict = predictor.predict
    for request in requests[: min(5, len(requests))]:  # lazy imports, caches
        predict(dict(request))
    clock = time.perf_counter
    lat: list[float] = []
    start = clock()
    for i in range(n_single):
        if i >= 20 and clock() - start > budget_s:
            break
        request = dict(requests[i % len(requests)])
        t0 = clock()
        predict(request)
        lat.append(clock() - t0)
    lat_ms = np.asarray(lat) * 1000.0
    every: dict[str, Any] = {}
    if predictor.exogenous:
        every["future"] = [row for r in requests for row in r["future"]]
    calls, t0 = 0, clock()
    while calls < 3 or clock() - t0 < all_budget_s:
        predict(dict(every))
        calls += 1
    per_call = (clock() - t0) / calls
    n_series = len(predictor.series)
    return {
        "latency_p50_ms": float(np.percentile(lat_ms, 50)), "latency_p95_ms": float(np.percentile(lat_ms, 95)),
        "latency_p99_ms": float(np.percentile(lat_ms, 99)), "latency_mean_ms": float(lat_ms.mean()),
        "single_series_forecasts_s": float(len(lat) / np.sum(lat)), "single_calls": float(len(lat)),
        "all_series_latency_ms": per_call * 1000.0, "all_series_series_s": n_series / per_call,
        "forecast_points_s": n_series * predictor.horizon / per_call,
    }


# -- over HTTP -------------------------------------------------------------------------------
def bench_http(url: str, rows: pd.DataFrame | Sequence[Mapping[str, Any]], *, concurrency: int = HTTP_CLIENTS,
               total_requests: int = 4000, timeout_s: float = 60.0,
               warmup_requests: int | None = None) -> dict[str, float]:
    """Send ``total_requests`` single-row JSON POSTs to ``url`` from ``concurrency`` clients.

    A closed loop: each of ``concurrency`` workers holds one keep-alive HTTP/1.1 connection and
    sends its next request when the previous one is answered. The run stops at
    ``total_requests`` or after ``timeout_s``, whichever comes first; a warm-up (default a tenth
    of the requests, at most 200) is not counted.

    The client is a few lines of asyncio rather than httpx: on 2 cores the load generator
    shares the CPU with the server, and httpx's ``AsyncClient`` capped this measurement at
    ~390 req/s against an endpoint that answers ~7 800 req/s to this client (aiohttp: ~4 800).

    Args:
        url: ``http://host:port/path`` (plain HTTP; meant for loopback).
        rows: Rows to send, one per request, cycling.
        concurrency: Concurrent connections.
        total_requests: Requests to count.
        timeout_s: Bound on the whole run (and on the warm-up).
        warmup_requests: Uncounted requests sent first.

    Returns:
        ``http_requests`` (sent), ``http_errors`` (answers other than 200, and requests without
        an answer), ``http_throughput_rps`` (200 answers per second), ``http_latency_p50_ms`` / ``_p95_ms`` / ``_p99_ms`` /
        ``_mean_ms``, ``http_duration_s`` and ``http_concurrency``.

    Raises:
        ConfigError: a count or the timeout is not positive, the URL is not ``http://``, or
            no request completed in time.
    """
    from urllib.parse import urlsplit

    _positive("concurrency", concurrency)
    _positive("total_requests", total_requests)
    if not (isinstance(timeout_s, (int, float)) and timeout_s > 0):
        raise ConfigError(f"timeout_s must be > 0, got {timeout_s!r}")
    parts = urlsplit(str(url))
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(f"url must be http://host:port/path, got {url!r}")
    records = json_rows(rows) if isinstance(rows, pd.DataFrame) else [dict(r) for r in rows]
    if not records:
        raise DataError("no rows to send")
    host, port = parts.hostname, parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    requests = []
    for record in records:
        body = json.dumps(record, separators=(",", ":")).encode()
        requests.append(f"POST {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                        .encode() + body)
    warmup = min(200, total_requests // 10) if warmup_requests is None else warmup_requests
    return asyncio.run(_load(host, port, requests, concurrency, total_requests, warmup, timeout_s))


async def _load(host: str, port: int, requests: list[bytes], concurrency: int, total: int,
                warmup: int, timeout_s: float) -> dict[str, float]:
    if warmup:
        await _drive(host, port, requests, concurrency, warmup, timeout_s)
    latencies, refused, unanswered, elapsed = await _drive(host, port, requests, concurrency, total,
                                                           timeout_s)
    if not latencies:
        raise ConfigError(f"no request to http://{host}:{port} was answered within {timeout_s:g} s "
                          f"({unanswered} connection errors)")
    lat_ms = np.asarray(latencies) * 1000.0
    return {
        "http_requests": len(latencies) + unanswered, "http_errors": refused + unanswered,
        "http_throughput_rps": (len(latencies) - refused) / elapsed,
        "http_latency_p50_ms": float(np.percentile(lat_ms, 50)),
        "http_latency_p95_ms": float(np.percentile(lat_ms, 95)),
        "http_latency_p99_ms": float(np.percentile(lat_ms, 99)),
        "http_latency_mean_ms": float(lat_ms.mean()),
        "http_duration_s": elapsed, "http_concurrency": concurrency,
    }


async def _drive(host: str, port: int, requests: list[bytes], concurrency: int, total: int,
                 timeout_s: float) -> tuple[list[float], int, int, float]:
    """(latencies of answered requests, answers other than 200, unanswered requests, seconds)."""
    latencies: list[float] = []
    refused = unanswered = 0
    issued = 0
    clock = time.perf_counter

    async def worker() -> None:
        nonlocal issued, refused, unanswered
        reader = writer = None
        try:
            while issued < total:
                request = requests[issued % len(requests)]
                issued += 1
                t0 = clock()
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection(host, port)
                    writer.write(request)
                    status, keep_alive = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    unanswered += 1  # an error, not timed
                    writer = _close(writer)
                    continue
                latencies.append(clock() - t0)
                refused += status != 200
                if not keep_alive:
                    writer = _close(writer)
        finally:
            _close(writer)

    t0 = clock()
    tasks = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
    done, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        task.result()
    return latencies, refused, unanswered, clock() - t0


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one HTTP/1.1 response; returns its status and whether the connection stays open."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked, keep_alive = None, False, True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            keep_alive = b"close" not in value.lower()
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length is not None:
        await reader.readexactly(length)
    else:
        await reader.read()  # body until the server closes
        keep_alive = False
    return status, keep_alive


def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        writer.close()


# -- a server in a subprocess ----------------------------------------------------------------
def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serving(increment: Any, *, root: Any = None, version: str | int = "latest",
            engine: str = "local", host: str = "127.0.0.1", port: int | None = None,
            startup_timeout_s: float = 120.0, extra_args: Sequence[str] = ()) -> Iterator[str]:
    """Run ``specweave-ray serve`` in a subprocess for the block; yields its base URL.

    The server's output goes to a temporary file (a pipe nobody reads could fill and stall it);
    its tail is shown when the server fails to start. It is stopped with SIGINT (then SIGTERM,
    then SIGKILL, each after a bounded wait), so a Ray Serve engine shuts Serve and its local
    Ray down.

    Raises:
        ConfigError: Unknown engine, or the server did not answer ``/health`` in time.
    """

    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    port = port or free_port(host)
    target = getattr(increment, "path", increment)
    cmd = [sys.executable, "-m", "specweave_ray", "serve", str(target), "--engine", engine,
           "--host", host, "--port", str(port), "--version", str(version), *extra_args]
    if root is not None:
        cmd += ["--root", str(root)]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://{host}:{port}"
        try:
            try:
                wait_healthy(f"{base}/health", timeout_s=startup_timeout_s, process=proc)
            except ConfigError as err:
                log.seek(0)
                tail = log.read().decode(errors="replace")[-2000:].strip() or "(no output)"
                raise ConfigError(f"{err}; the server's output ends with:\n{tail}") from None
            yield base
        finally:
            _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGINT, 30), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)


# -- the benchmark record --------------------------------------------------------------------
def bench_rows(predictor: Any, inc: Any, *, limit: int = 2000) -> pd.DataFrame:
    """Rows to benchmark on: the package's explainer background rows, else the increment's
    ``data/sample.parquet`` without the target, in the model's input columns."""

    columns = list(predictor.input_columns)
    df = read_background(predictor.metadata, predictor.folder)
    source = "the package's background rows"
    if df is None or df.empty:

        path = inc.data_dir / "sample.parquet"
        if not path.is_file():
            raise DataError(f"model-v{predictor.version} has no background rows and {path} is "
                            "missing; run the pipeline's data task (T-001) first")
        df, source = load_table(path), str(path)
    absent = [c for c in columns if c not in df.columns]
    if absent:
        raise DataError(f"{source} lack the model's input column(s) {', '.join(map(repr, absent))}")
    return df[columns].head(limit).reset_index(drop=True)


def run_bench(increment: Any, *, root: Any = None, version: str | int = "latest",
              http: bool = False, engine: str = "local", n_single: int = 2000,
              batch_sizes: Sequence[int] = (1, 32, 256, 2048), concurrency: int = HTTP_CLIENTS,
              total_requests: int = 4000, timeout_s: float = 120.0,
              address: str | None = None) -> tuple[str, dict[str, float], list[Any]]:
    """Benchmark an increment's model and record it against the spec's latency/throughput targets.

    Writes an experiment record ``exp-NNN-benchmark`` (kind ``benchmark``) holding the metrics,
    ``benchmark.md``, ``gate.md`` and ``gate.json``.

    The keys the spec's targets read describe what a caller of the model sees: without
    ``http``, ``latency_p50_ms`` / ``_p95_ms`` / ``_p99_ms`` / ``_mean_ms`` and
    ``throughput_rps`` are the in-process single-row numbers; with ``http`` they are the
    end-to-end HTTP numbers (equal to
    ``http_latency_*_ms`` / ``http_throughput_rps``), so a latency target is never "met" by
    the in-process time while requests wait in a server's queue. The in-process latencies are
    always also recorded as ``inprocess_latency_*_ms``.

    Args:
        increment: Increment id, number, path or :class:`~specweave_ray.workspace.increment.Increment`.
        root: Increments root.
        version: Model version ``K`` or ``"latest"``.
        http: Also serve the model in a subprocess and load it over loopback.
        engine: ``"local"`` or ``"ray-serve"`` (with ``http``).
        n_single: Timed single-row calls in process.
        batch_sizes: Batch sizes for in-process throughput.
        concurrency: Concurrent HTTP clients.
        total_requests: HTTP requests to send.
        timeout_s: Bound on the HTTP run.
        address: Ray address passed to a ``ray-serve`` server.

    A forecaster is timed by :func:`bench_forecast` (one series' forecast per call) and over
    HTTP with one series per ``/forecast`` request, at most ``FORECAST_HTTP_REQUESTS`` requests
    from ``FORECAST_CONCURRENCY`` clients.

    Returns:
        ``(record id, metrics, gate rows)``; the rows cover the spec's latency and throughput
        targets only.
    """

    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    for name, value in (("n_single", n_single), ("concurrency", concurrency),
                        ("total_requests", total_requests), *(("batch size", b) for b in batch_sizes)):
        _positive(name, value)  # before a record is opened: a bad option is not a failed run
    inc = resolve_increment(increment, root)
    targets = [t for t in inc.spec().targets
               if t.relative_to is None and (t.metric.startswith("latency_") or t.metric == "throughput")]
    predictor = Predictor.load(inc, version=version)
    forecaster = getattr(predictor, "kind", None) == "forecaster"
    if forecaster:  # one request per series; bounded loops (a forecast costs milliseconds)
        rows = forecast_requests(predictor)
        total_requests = min(total_requests, FORECAST_HTTP_REQUESTS)
        concurrency = min(concurrency, FORECAST_CONCURRENCY)
    else:
        rows = bench_rows(predictor, inc)
    params = {"model_version": predictor.version, "rows": len(rows), "n_single": n_single,
              "batch_sizes": list(batch_sizes), "http": http, "engine": engine if http else None,
              "concurrency": concurrency if http else None,
              "total_requests": total_requests if http else None, "cpu_count": os.cpu_count()}
    meta = {"package": f"model-v{predictor.version}",
            "data_fingerprint": predictor.metadata.get("data_fingerprint")}
    with track_experiment("benchmark", increment=inc, kind="benchmark",
                          model=f"model-v{predictor.version}", meta=meta) as exp:
        exp.log_params(params)
        if forecaster:
            metrics = bench_forecast(predictor, rows, n_single=n_single)
            metrics["throughput_rps"] = metrics["single_series_forecasts_s"]
            measured = f"in process, one series' {predictor.horizon}-step forecast per call"
        else:
            metrics = bench_inprocess(predictor, rows, n_single=n_single, batch_sizes=batch_sizes)
            metrics["throughput_rps"] = metrics["single_row_throughput_rows_s"]
            measured = "in process, single dict rows"
        for q in _QUANTILES:
            metrics[f"inprocess_latency_{q}_ms"] = metrics[f"latency_{q}_ms"]
        if http:
            extra = ["--address", address] if address else []
            with serving(inc.path, version=predictor.version, engine=engine,
                         extra_args=extra) as base:
                route = getattr(predictor, "route", "/predict")
                metrics.update(bench_http(f"{base}{route}", rows, concurrency=concurrency,
                                          total_requests=total_requests, timeout_s=timeout_s))
            for q in _QUANTILES:
                metrics[f"latency_{q}_ms"] = metrics[f"http_latency_{q}_ms"]
            metrics["throughput_rps"] = metrics["http_throughput_rps"]
            measured = (f"end to end over HTTP on loopback, engine {engine}, {concurrency} "
                        f"concurrent clients, " + ("one series' forecast per request" if forecaster
                                                   else "single-row requests"))
        metrics = {k: float(v) for k, v in metrics.items() if math.isfinite(v)}
        exp.log_metrics(metrics)
        gate = check_targets(targets, metrics, source=exp.id)
        exp.save_report("benchmark.md", render_metrics(metrics, params))
        exp.save_report("gate.md", f"# Gate: latency and throughput targets\n\nMeasured {measured} "
                        f"(model-v{predictor.version}, {os.cpu_count()} CPUs).\n\n"
                        + render_gate(gate) + "\n")
        exp.save_report("gate.json", json.dumps(gate_json(gate), indent=2))
        record_id = exp.id
    return record_id, metrics, gate


def render_metrics(metrics: Mapping[str, float], params: Mapping[str, Any] | None = None) -> str:
    """The benchmark metrics as a markdown table."""
    lines = ["# Inference benchmark", ""]
    if params:
        lines += [", ".join(f"{k}={v}" for k, v in params.items() if v is not None), ""]
    lines += ["| metric | value |", "| --- | ---: |"]
    for key, value in metrics.items():
        lines.append(f"| {key} | {value:,.3f} |" if abs(value) < 1000 else f"| {key} | {value:,.0f} |")
    return "\n".join(lines) + "\n"


# -- helpers ---------------------------------------------------------------------------------
def json_rows(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as an HTTP client would send them: JSON scalars, missing values as ``None``."""
    return json.loads(rows.to_json(orient="records", date_format="iso"))


def _tile(rows: pd.DataFrame, size: int) -> pd.DataFrame:
    reps = -(-size // len(rows))
    return pd.concat([rows] * reps, ignore_index=True).head(size) if reps > 1 else rows.head(size)


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
