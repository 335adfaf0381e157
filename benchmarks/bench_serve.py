"""Benchmark: ``specweave-ray serve`` over loopback HTTP against a bare app, and the Ray Serve engine.

Builds (or reuses, under ``--root``) a small fraud increment whose only candidate is XGBoost and
runs the pipeline through T-007, which packages the model as ``model-v1``. Then, in one run,
single-row JSON POSTs from ``--concurrency`` keep-alive clients (a bounded closed loop, the load
generator in this process, sharing the cores with the server):

* (a) the ``local`` engine (uvicorn, one process) in a subprocess; (a') the same with
  ``--compile`` (XGBoost's trees compiled to C by TL2cgen);
* (b) the baseline: a bare Starlette app on the same uvicorn settings returning a constant JSON
  answer of the same shape and size (no parsing, no model): the ceiling of the HTTP stack here;
* (c) the ``ray-serve`` engine (local Ray, one replica, batching), and with ``--throughput``
  again with ``RAY_SERVE_THROUGHPUT_OPTIMIZED=1`` (Ray 2.60: gRPC proxy -> replica, direct
  ingress, user code on the replica's loop, buffered access logs, frozen GC);
* (d) with ``--ray-settings``: Ray Serve's ``max_ongoing_requests`` 5 (its default) / 16 / 64.

Usage::

    python benchmarks/bench_serve.py [--root DIR] [--requests 6000] [--no-ray] [--json PATH]

Target (issue 16, part 6): the local engine >= 2,500 req/s with p99 <= 20 ms. A miss is printed
(MISS), never raised. The last line of stdout is the numbers as JSON.
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
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    ANSWER = sys.argv[2].encode()

    async def predict(request):
        await request.body()
        return Response(ANSWER, media_type="application/json")

    async def health(request):
        return Response(b'{"status":"ok"}', media_type="application/json")

    app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health)])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
                lifespan="off", server_header=False, date_header=False)
""")


def build(root: Path) -> Any:
    """The increment with model-v1, built once under ``root`` and reused afterwards."""
    from specweave_ray.pipeline._tasks import ensure_increment, run_pipeline
    from specweave_ray.spec.config import parse_config
    from specweave_ray.workspace.increment import list_increments

    for inc in list_increments(root):
        if inc.slug == "fraud-serving-bench" and (inc.models_dir / "model-v1.metadata.json").is_file():
            return inc
    cfg = parse_config(CONFIG, source="bench_serve.py")
    inc = ensure_increment(cfg, root=root)
    for task in ("T-008", "T-009"):  # this script is the benchmark
        inc.tick(task)
    t0 = time.perf_counter()
    run_pipeline(cfg, root=root, increment=inc)
    print(f"built {inc.id} model-v1 in {time.perf_counter() - t0:.0f} s under {root}", flush=True)
    return inc


def bare_server(port: int, answer: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", BARE_APP, str(port), answer], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def measure_bare(records: list[dict[str, Any]], answer: str, args: argparse.Namespace) -> dict[str, float]:
    from specweave_ray.deploy.bench import _stop, bench_http, free_port
    from specweave_ray.deploy.serve import wait_healthy

    port = free_port()
    proc = bare_server(port, answer)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", timeout_s=60, process=proc)
        return bench_http(f"http://127.0.0.1:{port}/predict", records, concurrency=args.concurrency,
                          total_requests=args.requests, timeout_s=120)
    finally:
        _stop(proc)


def measure_engine(inc: Any, engine: str, records: list[dict[str, Any]],
                   args: argparse.Namespace, env: dict[str, str] | None = None,
                   extra_args: tuple[str, ...] = ()) -> dict[str, float]:
    from specweave_ray.deploy.bench import bench_http, serving

    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})  # the server subprocess inherits it
    try:
        with serving(inc.path, engine=engine, startup_timeout_s=180, extra_args=extra_args) as base:
            return bench_http(f"{base}/predict", records, concurrency=args.concurrency,
                              total_requests=args.requests, timeout_s=120)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


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
    parser.add_argument("--requests", type=int, default=6000, help="HTTP requests per measurement")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--no-ray", action="store_true", help="skip the ray-serve engine")
    parser.add_argument("--throughput", action="store_true",
                        help="also the ray-serve engine with RAY_SERVE_THROUGHPUT_OPTIMIZED=1")
    parser.add_argument("--ray-settings", action="store_true", help="also measure Ray Serve settings (d)")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args(argv)
    os.environ.setdefault("SPECWEAVE_MLFLOW", "0")

    from specweave_ray.deploy.bench import bench_rows, json_rows
    from specweave_ray.deploy.predictor import Predictor
    from specweave_ray.deploy.serve import score_rows

    print(f"bench_serve: python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"{platform.machine()}, load {os.getloadavg()[0]:.1f}", flush=True)
    inc = build(Path(args.root))
    predictor = Predictor.load(inc)
    records = json_rows(bench_rows(predictor, inc))
    answer = json.dumps({**score_rows(predictor, records[:1]), "version": predictor.version})
    print(f"model: {predictor!r}, {len(records)} distinct rows cycled; answer like {answer}", flush=True)
    results: dict[str, Any] = {"cpus": os.cpu_count(), "model": repr(predictor)}

    print(f"\nsingle-row JSON POST /predict, {args.concurrency} concurrent keep-alive clients, "
          f"{args.requests} requests, loopback, load generator in this process")
    local = measure_engine(inc, "local", records, args)
    compiled = measure_engine(inc, "local", records, args, extra_args=("--compile",))
    bare = measure_bare(records, answer, args)
    results.update(local=local, local_compiled=compiled, bare=bare)
    rows = [("(a) specweave-ray serve (local engine)", local), ("(a') the same with --compile", compiled),
            ("(b) bare Starlette, constant JSON", bare)]
    if not args.no_ray:
        results["ray_serve"] = measure_engine(inc, "ray-serve", records, args)
        rows.append(("(c) ray-serve engine (1 replica, batching)", results["ray_serve"]))
        if args.throughput:
            results["ray_serve_throughput"] = measure_engine(inc, "ray-serve", records, args,
                                                             env={"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"})
            rows.append(("(c') ray-serve, THROUGHPUT_OPTIMIZED=1", results["ray_serve_throughput"]))
    for label, r in rows:
        print(f"    {label:<42} {r['http_throughput_rps']:8.0f} req/s   p50 {r['http_latency_p50_ms']:6.1f} ms"
              f"   p99 {r['http_latency_p99_ms']:6.1f} ms   errors {r['http_errors']}")
    rps, p99 = local["http_throughput_rps"], local["http_latency_p99_ms"]
    print(f"    local {rps:.0f} req/s (target >= 2500) {verdict(rps >= 2500)}; "
          f"p99 {p99:.1f} ms (target <= 20 ms) {verdict(p99 <= 20)}")
    print(f"    local / bare throughput: {rps / bare['http_throughput_rps']:.2f}x; "
          f"--compile / local: {compiled['http_throughput_rps'] / rps:.2f}x")
    for key in ("ray_serve", "ray_serve_throughput"):
        if key in results:
            print(f"    {key} / local throughput: {results[key]['http_throughput_rps'] / rps:.3f}x")
    if args.ray_settings:
        print("\n(d) Ray Serve settings (in this process's Ray, same load)")
        results["ray_settings"] = ray_settings(inc, records, args)
    results["targets"] = {"local_rps_ge_2500": rps >= 2500, "local_p99_le_20ms": p99 <= 20}
    print(f"load after: {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
