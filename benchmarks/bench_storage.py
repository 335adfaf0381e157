"""Benchmark: the cost of an object-store root (``--root s3://…``) for a sweep.

The same ``run_experiments`` sweep (N fixed XGBoost trials, K-fold CV, breast-cancer data, MLflow
mirror on) runs into a local root and into an S3 root served by moto (its own process) on
loopback, alternately,
each ``--repeats`` times inside one embedded Ray (started once, so Ray's start-up is not in
either number). The S3 run counts until every record, the comparison, the MLflow store and Tune's
state are in the bucket (``run_experiments`` returns only then). Moto on loopback has no network
latency: the number is the work the mirror adds (listings, uploads, the upload thread), not a
cloud round trip; against real S3 each upload costs a round trip on the upload thread, off the
trial path.

Usage::

    python benchmarks/bench_storage.py [--trials 32] [--folds 3] [--repeats 2] [--json PATH]

Target: the S3 root within 1.25x of the local root (median over repeats), judged on the raw
ratio. The script also prints the CPU seconds moto itself used (on this machine's cores, unlike
a real S3) and the ratio with that share taken out, as an estimate. A miss is printed, not raised. The last stdout line is JSON. Needs the test extra (moto).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET = 1.25


def _server() -> tuple[Any, str]:
    """moto's S3 in a process of its own (as a real server would be: not sharing this
    process's interpreter lock), on a free loopback port, with one bucket."""
    import socket
    import subprocess
    import urllib.request

    import boto3

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                      AWS_EC2_METADATA_DISABLED="true")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto_server did not start (exit {server.poll()})") from None
            time.sleep(0.2)
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
    return server, endpoint


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    import ray
    from sklearn.datasets import load_breast_cancer

    from specweave_ray import Increment, ModelExperiment, run_experiments
    from specweave_ray.search._ray.tune import ensure_ray
    from specweave_ray.workspace import storage
    from specweave_ray.workspace.records import list_records

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    grid = [{"n_estimators": ne, "max_depth": md, "learning_rate": 0.1, "n_jobs": 1, "tree_method": "hist"}
            for ne in (20, 30, 40, 50) for md in (2, 3, 4, 5, 6, 7, 8, 9)]
    exps = [ModelExperiment(f"xgb-{i}", "xgboost", grid[i % len(grid)]) for i in range(args.trials)]
    server, endpoint = _server()
    tmp = Path(tempfile.mkdtemp(prefix="bench-storage-"))
    os.environ["SPECWEAVE_STAGING"] = str(tmp / "mirror")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    print(f"load average before: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    ensure_ray(num_cpus=2)
    times: dict[str, list[float]] = {"local": [], "s3": []}
    server_cpu: list[float] = []  # CPU seconds the S3 server took from this machine's cores
    try:
        for r in range(args.repeats):
            for kind in ("local", "s3"):
                root: Any = (tmp / f"local-{r}") if kind == "local" else \
                    f"s3://bench/run-{r}?endpoint_override={endpoint}&scheme=http"
                inc = Increment.create("Bench", problem_type="classification", root=root)
                t0, cpu0 = time.perf_counter(), _cpu_s(server.pid)
                run_experiments(exps, X, y, increment=inc, cv=args.folds, baselines=False, refit=False)
                times[kind].append(time.perf_counter() - t0)
                if kind == "s3":
                    server_cpu.append(_cpu_s(server.pid) - cpu0)
                n = sum(r.kind == "trial" for r in list_records(inc))
                assert n == args.trials, f"{kind}: {n} trial records, expected {args.trials}"
                print(f"  {kind:5s} repeat {r}: {times[kind][-1]:6.2f} s", file=sys.stderr)
        storage.unmount()
    finally:
        ray.shutdown()
        server.terminate()
        server.wait(timeout=30)
    local, s3 = statistics.median(times["local"]), statistics.median(times["s3"])
    ratio = s3 / local
    print(f"load average after: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    print(f"{args.trials} trials x {args.folds}-fold, median of {args.repeats}:")
    print(f"  local root          {local:7.2f} s")
    print(f"  s3 root (moto)      {s3:7.2f} s   ({(s3 - local) / args.trials * 1000:+.1f} ms per trial)")
    print(f"  S3 server's own CPU {statistics.median(server_cpu):7.2f} s   (taken from the {os.cpu_count()} cores "
          "the trials run on; a real S3 costs this machine none of it)")
    adjusted = (s3 - statistics.median(server_cpu) / (os.cpu_count() or 1)) / local
    print(f"  s3/local without the server's share of the cores (estimate) {adjusted:5.2f}")
    print(f"  s3/local            {ratio:7.2f}   target <= {TARGET}  {'PASS' if ratio <= TARGET else 'MISS'}")
    out = {"trials": args.trials, "folds": args.folds, "local_s": times["local"], "s3_s": times["s3"],
           "server_cpu_s": server_cpu, "ratio_without_server_estimate": adjusted,
           "ratio": ratio, "target": TARGET, "pass": ratio <= TARGET}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
