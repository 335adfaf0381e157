"""Benchmark: serving an XGBoost fraud model — Predictor vs the raw booster, HTTP engines vs a bare app.

Builds (or reuses, under ``--root``) a small fraud increment whose only candidate is XGBoost and
runs the pipeline through T-007, which packages the model as ``model-v1``. Then, in one run:

* (a) single-row latency: the raw booster's ``inplace_predict`` on an already-encoded NumPy row,
  vs ``Predictor.predict`` on a dict row (validation + feature pipeline + the same booster call);
* (b) HTTP, the ``local`` engine (uvicorn, one process) in a subprocess, single-row JSON
  requests from 16 concurrent keep-alive clients on loopback;
* (c) the same load against a bare FastAPI/uvicorn endpoint that returns a constant;
* (d) the same load against the ``ray-serve`` engine (local Ray, one replica, batching);
* (e) with ``--ray-settings``: Ray Serve's ``max_ongoing_requests`` 5 (its default) / 16 / 64.

Usage::

    python benchmarks/bench_inference.py [--root DIR] [--requests 4000] [--json PATH]

Targets (issue 5): (a) Predictor p50 within 1.5x of the raw booster; (b) at least 1000 req/s
with p99 under 100 ms on 2 cores. A miss is reported (MISS), never raised. The last line of
stdout is the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

CONFIG = {
    "increment": "Fraud Serving Bench", "problem_type": "classification",
    "data": {"generate": "fraud", "rows": 20000, "target": "is_fraud"},
    "sweep": {"cv": 2, "stages": 1, "tuning_samples": 1},
    "candidates": [{"name": "xgboost", "estimator": "xgboost", "num_samples": 1,
                    "params": {"n_estimators": 240, "max_depth": 6, "learning_rate": 0.1,
                               "tree_method": "hist"}}],
    "seed": 7,
}
BARE_APP = textwrap.dedent("""
    import sys
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/predict")
    async def predict():
        return {"predictions": [0], "probabilities": [0.01], "version": 1}

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
""")


def build(root: Path) -> Any:
    """The increment with model-v1, built once under ``root`` and reused afterwards."""
    from specweave_ray.pipeline._tasks import ensure_increment, run_pipeline
    from specweave_ray.spec.config import parse_config
    from specweave_ray.workspace.increment import list_increments

    for inc in list_increments(root):
        if inc.slug == "fraud-serving-bench" and (inc.models_dir / "model-v1.metadata.json").is_file():
            return inc
    cfg = parse_config(CONFIG, source="bench_inference.py")
    inc = ensure_increment(cfg, root=root)
    for task in ("T-008", "T-009"):  # this script is the benchmark
        inc.tick(task)
    t0 = time.perf_counter()
    run_pipeline(cfg, root=root, increment=inc)
    print(f"built {inc.id} model-v1 in {time.perf_counter() - t0:.0f} s under {root}", flush=True)
    return inc


def raw_vs_predictor(predictor: Any, records: list[dict[str, Any]], n: int) -> dict[str, float]:
    """Single-row p50 of the booster on encoded rows vs the Predictor on dict rows, interleaved
    in blocks so both see the same machine state."""
    booster = predictor.raw_model
    encoded = [predictor.encode(r) for r in records]  # 1 x n_features float64 each
    for i in range(200):
        booster.inplace_predict(encoded[i % len(encoded)], validate_features=False)
        predictor.predict(records[i % len(records)])
    raw, full = np.empty(n), np.empty(n)
    clock = time.perf_counter
    for block in range(0, n, 100):
        for i in range(block, min(n, block + 100)):
            x = encoded[i % len(encoded)]
            t0 = clock()
            booster.inplace_predict(x, validate_features=False)
            raw[i] = clock() - t0
        for i in range(block, min(n, block + 100)):
            row = records[i % len(records)]
            t0 = clock()
            predictor.predict(row)
            full[i] = clock() - t0
    return {"raw_p50_ms": float(np.median(raw) * 1e3), "raw_p99_ms": float(np.percentile(raw, 99) * 1e3),
            "predictor_p50_ms": float(np.median(full) * 1e3),
            "predictor_p99_ms": float(np.percentile(full, 99) * 1e3)}


def bare_server(port: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", BARE_APP, str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def measure_bare(records: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, float]:
    from specweave_ray.deploy.bench import _stop, bench_http, free_port
    from specweave_ray.deploy.serve import wait_healthy

    port = free_port()
    proc = bare_server(port)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", timeout_s=60, process=proc)
        return bench_http(f"http://127.0.0.1:{port}/predict", records, concurrency=args.concurrency,
                          total_requests=args.requests, timeout_s=120)
    finally:
        _stop(proc)


def measure_engine(inc: Any, engine: str, records: list[dict[str, Any]],
                   args: argparse.Namespace) -> dict[str, float]:
    from specweave_ray.deploy.bench import bench_http, serving

    with serving(inc.path, engine=engine, startup_timeout_s=180) as base:
        return bench_http(f"{base}/predict", records, concurrency=args.concurrency,
                          total_requests=args.requests, timeout_s=120)


def ray_settings(inc: Any, records: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Ray Serve with max_ongoing_requests 5 (Serve's default, batching off) / 16 / 64."""
    import ray
    from ray import serve

    from specweave_ray.deploy.bench import bench_http, free_port
    from specweave_ray.deploy.serve import ray_serve_app

    port = free_port()
    out: dict[str, Any] = {}
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        for label, opts in (("defaults (max_ongoing 5, batch 1)", {"max_ongoing_requests": 5, "max_batch_size": 1}),
                            ("max_ongoing 16, batch 16", {"max_ongoing_requests": 16, "max_batch_size": 16}),
                            ("max_ongoing 64, batch 32", {"max_ongoing_requests": 64, "max_batch_size": 32})):
            serve.run(ray_serve_app(inc.path, **opts), name="bench", route_prefix="/")
            r = bench_http(f"http://127.0.0.1:{port}/predict", records, concurrency=args.concurrency,
                           total_requests=min(args.requests, 1500), timeout_s=120)
            out[label] = r
            print(f"    {label:<36} {r['http_throughput_rps']:8.0f} req/s   p50 {r['http_latency_p50_ms']:6.1f} ms"
                  f"   p99 {r['http_latency_p99_ms']:6.1f} ms   errors {r['http_errors']}", flush=True)
            serve.delete("bench")
    finally:
        serve.shutdown()
        ray.shutdown()
    return out


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "specweave-bench-inference"),
                        help="increments root; the package is built once and reused")
    parser.add_argument("--requests", type=int, default=4000, help="HTTP requests per measurement")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--single", type=int, default=5000, help="timed single-row calls for (a)")
    parser.add_argument("--no-ray", action="store_true", help="skip the ray-serve engine")
    parser.add_argument("--ray-settings", action="store_true", help="also measure Ray Serve settings (e)")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args(argv)
    os.environ.setdefault("SPECWEAVE_MLFLOW", "0")

    from specweave_ray.deploy.bench import bench_rows, json_rows
    from specweave_ray.deploy.predictor import Predictor

    print(f"bench_inference: python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"{platform.machine()}", flush=True)
    inc = build(Path(args.root))
    predictor = Predictor.load(inc)
    records = json_rows(bench_rows(predictor, inc))
    print(f"model: {predictor!r}, {predictor.metadata.get('n_features')} encoded features, "
          f"{len(records)} distinct rows cycled", flush=True)
    results: dict[str, Any] = {"cpus": os.cpu_count(), "model": repr(predictor)}

    a = raw_vs_predictor(predictor, records, args.single)
    ratio = a["predictor_p50_ms"] / a["raw_p50_ms"]
    results["single_row"] = {**a, "ratio": ratio}
    print("\n(a) single-row latency, in process")
    print(f"    raw booster inplace_predict (encoded row)   p50 {a['raw_p50_ms'] * 1e3:7.1f} us   "
          f"p99 {a['raw_p99_ms'] * 1e3:7.1f} us")
    print(f"    Predictor.predict (dict row)                p50 {a['predictor_p50_ms'] * 1e3:7.1f} us   "
          f"p99 {a['predictor_p99_ms'] * 1e3:7.1f} us")
    print(f"    ratio {ratio:.2f}x  (target <= 1.5x)  {verdict(ratio <= 1.5)}", flush=True)

    print(f"\nHTTP: single-row JSON POST /predict, {args.concurrency} concurrent keep-alive clients, "
          f"{args.requests} requests, loopback, load generator in this process")
    local = measure_engine(inc, "local", records, args)
    bare = measure_bare(records, args)
    results.update(local=local, bare_fastapi=bare)
    rows = [("(b) local engine (Starlette/uvicorn)", local), ("(c) bare FastAPI constant", bare)]
    if not args.no_ray:
        ray_r = measure_engine(inc, "ray-serve", records, args)
        results["ray_serve"] = ray_r
        rows.append(("(d) ray-serve engine (1 replica, batching)", ray_r))
    for label, r in rows:
        print(f"    {label:<44} {r['http_throughput_rps']:8.0f} req/s   p50 {r['http_latency_p50_ms']:6.1f} ms"
              f"   p95 {r['http_latency_p95_ms']:6.1f} ms   p99 {r['http_latency_p99_ms']:6.1f} ms"
              f"   errors {r['http_errors']}")
    rps, p99 = local["http_throughput_rps"], local["http_latency_p99_ms"]
    print(f"    local throughput {rps:.0f} req/s (target >= 1000)  {verdict(rps >= 1000)}")
    print(f"    local p99 {p99:.1f} ms (target < 100 ms)  {verdict(p99 < 100)}")
    print(f"    local / bare FastAPI throughput: {rps / bare['http_throughput_rps']:.2f}x")
    if "ray_serve" in results:
        print(f"    ray-serve / local throughput: {results['ray_serve']['http_throughput_rps'] / rps:.2f}x")
    if args.ray_settings:
        print("\n(e) Ray Serve settings (in this process's Ray, same load)")
        results["ray_settings"] = ray_settings(inc, records, args)
    results["targets"] = {"single_row_ratio_le_1_5": ratio <= 1.5, "local_rps_ge_1000": rps >= 1000,
                          "local_p99_lt_100ms": p99 < 100}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
