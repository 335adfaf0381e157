"""Benchmark: AutoETS on 1,000 generated monthly series of 120 points, one backtest window.

Measured in one run, on the same machine and the same data (the window: the last 12 months of
the 108-month training part of every series, after holding out each series' last 12):

* (a) statsforecast alone: ``StatsForecast([AutoETS(season_length=12)], freq="MS",
  n_jobs=CPUS).forecast(h=12, df=…)`` on the window's training points, then the window's MASE;
* (b) :func:`specweave_ray.run_experiments` with the ``ets`` candidate as one Ray Tune trial of
  ``CPUS`` CPUs (``resources: {cpu: CPUS}``), ``RollingOrigin(1)`` folds, no baselines, no
  cache, no refit, the MLflow mirror off; Ray is started before the clock. On one node (the
  default) the trial's fold runs statsforecast's ``forecast`` (fit and forecast in one pass, as
  (a)) over chunks of its series in a pool of its CPUs; with
  ``--nodes N`` Ray is a ``ray.cluster_utils.Cluster`` of N nodes sharing the CPUS, and the trial
  holds CPUS one-CPU bundles and fits its series in chunks, one Ray task each, on those nodes.

(a) and (b) alternate ``--repeats`` times and the fastest of each is compared. Printed: each
one's seconds and series per second, the ratio (b)/(a) (target: at most 1.2x),
the MASE of both (they fit the same models, so they agree), and the chunks (b)'s trial ran and
on how many nodes (its record's ``chunks``; none on one node). A small warm-up fit in this
process comes first (statsforecast's first call pays its imports).

Usage::

    python benchmarks/bench_forecast.py [--series 1000] [--length 120] [--cpus 2] [--nodes 1] [--repeats 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def make_panel(n_series: int, length: int, seed: int = 0) -> pd.DataFrame:
    """Monthly series: a level, a trend, a yearly season of random phase, AR(1) noise."""
    rng = np.random.default_rng(seed)
    months = pd.date_range("2010-01-01", periods=length, freq="MS")
    t = np.arange(length)
    level = rng.lognormal(4, 0.6, size=(n_series, 1))
    trend = rng.normal(0.003, 0.003, size=(n_series, 1))
    amp = rng.uniform(0.05, 0.3, size=(n_series, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n_series, 1))
    noise = rng.normal(0, 0.05, size=(n_series, length))
    for i in range(1, length):
        noise[:, i] += 0.4 * noise[:, i - 1]
    values = level * np.exp(trend * t + amp * np.sin(2 * np.pi * t / 12 + phase) + noise)
    return pd.DataFrame({"series": np.repeat([f"m{i:04d}" for i in range(n_series)], length),
                         "month": np.tile(months, n_series), "value": values.ravel()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--length", type=int, default=120)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--nodes", type=int, default=1, help="Ray nodes sharing the CPUs (>1: the chunked fit)")
    parser.add_argument("--repeats", type=int, default=2, help="(a) and (b) alternated this many times; the fastest of each")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ["SPECWEAVE_MLFLOW"] = "0"

    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS

    from specweave_ray import Increment, ModelExperiment, problems, run_experiments
    from specweave_ray.metrics import forecast_scores
    from specweave_ray.problems.timeseries import RollingOrigin
    from specweave_ray.search import _ray

    problem = problems.get("timeseries")
    X, y = problem.frame(make_panel(args.series, args.length), target="value",
                         columns={"time_column": "month", "series_column": "series", "horizon": 12})
    X_tr, _, y_tr, _ = problem.holdout_split(X, y)
    (train, valid), = list(RollingOrigin(1).split(X_tr))
    df = pd.DataFrame({"unique_id": X_tr["unique_id"].to_numpy(), "ds": X_tr["ds"].to_numpy(),
                       "y": y_tr.to_numpy()})
    fit_df, window = df.iloc[train], df.iloc[valid]

    # warm numba's compiled ETS kernels in this process (statsforecast caches them on disk too)
    StatsForecast([AutoETS(season_length=12)], freq="MS").forecast(h=12, df=fit_df[fit_df["unique_id"] == "m0000"])

    from specweave_ray.metrics import seasonal_scale

    scales = {s: seasonal_scale(g.to_numpy(), 12) for s, g in fit_df.groupby("unique_id")["y"]}

    def statsforecast_alone() -> tuple[float, float]:
        t0 = time.perf_counter()
        fc = StatsForecast([AutoETS(season_length=12)], freq="MS", n_jobs=args.cpus).forecast(h=12, df=fit_df)
        merged = window.merge(fc, on=["unique_id", "ds"])
        mase = forecast_scores(merged["y"], merged["AutoETS"], merged["unique_id"], scales)["mase"]
        return time.perf_counter() - t0, mase

    def through_ray(tmp: str, i: int) -> tuple[float, Any, Any]:
        inc = Increment.create(f"Bench Forecast {i}", problem_type="timeseries", root=tmp)
        t0 = time.perf_counter()
        res = run_experiments([ModelExperiment("ets", "ets", {}, resources={"cpu": args.cpus})], X_tr, y_tr,
                              increment=inc, problem_type="timeseries", metric="mase",
                              cv=RollingOrigin(1), baselines=False, use_cache=False, refit=False)
        seconds = time.perf_counter() - t0
        rec, = [r for r in list_records(inc) if r.kind == "trial"]
        return seconds, res, rec

    cluster = None
    if args.nodes > 1:
        import ray
        from ray.cluster_utils import Cluster

        share = [args.cpus // args.nodes + (i < args.cpus % args.nodes) for i in range(args.nodes)]
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": share[0], "include_dashboard": False})
        for cpus in share[1:]:
            cluster.add_node(num_cpus=cpus)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
    else:
        _ray.ensure_ray(num_cpus=args.cpus)
    from specweave_ray.workspace.records import list_records

    # (a) and (b) alternate, so that both see the same drift in the machine's load; the fastest
    # of each is compared (this machine's statsforecast alone varied 40-52 s run to run, quiet)
    times_a, times_b = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            seconds, mase_a = statsforecast_alone()
            times_a.append(seconds)
            seconds, res, rec = through_ray(tmp, i)
            times_b.append(seconds)
        chunks = rec.meta.get("chunks") or {"tasks": 0, "nodes": []}
    _ray.shutdown()
    if cluster is not None:
        cluster.shutdown()
    seconds_a, seconds_b = min(times_a), min(times_b)
    mase_b = res.best.score
    out = {"series": args.series, "length": args.length, "cpus": args.cpus,
           "statsforecast_s": round(seconds_a, 2), "run_experiments_s": round(seconds_b, 2),
           "ratio": round(seconds_b / seconds_a, 3), "repeats": args.repeats,
           "statsforecast_runs_s": [round(t, 2) for t in times_a], "run_experiments_runs_s": [round(t, 2) for t in times_b],
           "statsforecast_series_per_s": round(args.series / seconds_a, 1),
           "run_experiments_series_per_s": round(args.series / seconds_b, 1),
           "mase_statsforecast": round(mase_a, 4), "mase_run_experiments": round(mase_b, 4),
           "nodes": args.nodes, "chunk_tasks": chunks["tasks"], "chunk_nodes": len(set(chunks["nodes"])),
           "series_fallbacks": rec.metrics.get("series_fallbacks"), "series_timed_out": rec.metrics.get("series_timed_out")}
    print(f"fastest of {args.repeats}, alternating; runs: statsforecast {out['statsforecast_runs_s']} s, "
          f"run_experiments {out['run_experiments_runs_s']} s")
    print(f"statsforecast AutoETS, n_jobs={args.cpus}: {seconds_a:.1f} s ({out['statsforecast_series_per_s']} series/s), "
          f"MASE {mase_a:.4f}")
    how = (f"{chunks['tasks']} chunk tasks on {out['chunk_nodes']} nodes" if chunks["tasks"]
           else f"statsforecast's forecast in a pool of {args.cpus} inside it, no chunk tasks")
    print(f"run_experiments (one Ray trial of {args.cpus} CPUs on {args.nodes} node{'s' * (args.nodes > 1)}, "
          f"{how}): {seconds_b:.1f} s ({out['run_experiments_series_per_s']} series/s), MASE {mase_b:.4f}, "
          f"series fallbacks {out['series_fallbacks']:g} (timed out {out['series_timed_out']:g})")
    print(f"ratio run_experiments / statsforecast: {out['ratio']:.2f}x (target <= 1.2x: "
          f"{'met' if out['ratio'] <= 1.2 else 'not met'})")
    print(json.dumps(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
