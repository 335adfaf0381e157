"""The coordinator at scale: 10,000 trials' records on the driver, memory and time per trial.

Feeds the driver-side :class:`~specweave_ray.search.coordinator.Coordinator` the events Ray
Tune's callback hands it for each trial (``trial_started``, one ``trial_result`` per stage,
``trial_completed``; every 20th trial ``trial_failed`` with a worker's error text), as fast as it
takes them (at most ``--max-queued`` records ahead of the writer thread, as trials that end
no faster than their records are written), then ``flush`` and the comparison, built once. No Ray and no trials run: at Ray's
~0.3 s of overhead per short trial on 2 cores a 10,000-trial sweep takes ~25 minutes, and what
grows with the trial count on the driver is this component (bench_soak runs 500 real trials with
faults through Ray and checks the same records). It prints, at 1,000 trials and at the end:

* records written against trials fed (must be equal) and failed records against failures fed;
* the driver's RSS (``/proc/self/statm``) and its growth per 1,000 trials, first 1,000 vs the rest;
* the time per trial spent in the callback's calls (Tune's event loop waits on these) and the
  writer thread's throughput, first 1,000 vs the last 1,000 (flat: no per-trial cost grows with n);
* the comparison (``comparison.json``/``.md``): written once, after the sweep, and its time.

Usage::

    python benchmarks/bench_coordinator.py [--trials 10000] [--mlflow] [--json PATH]

Exit 1 when a record is missing or doubled.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from sklearn.linear_model import LogisticRegression

os.environ.setdefault("SPECWEAVE_MLFLOW", "0")


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _result(i: int, stage: int, stages: int) -> dict:
    # what a trial reports (search/trial.py): the metric, fold scores, timings, where it ran
    score = 0.8 + (i % 997) / 10_000
    return {"roc_auc": score, "cv_mean": score, "cv_std": 0.01, "cv_fold_1": score, "cv_fold_2": score,
            "cv_fold_3": score, "n_folds": 3, "fit_time_s": 0.01, "predict_time_s": 0.001,
            "preprocess_time_s": 0.001, "stage": stage, "n_stages": stages, "training_iteration": stage,
            "time_this_iter_s": 0.01, "info_node": "node-0", "info_hostname": "bench", "info_gpu_ids": "",
            "info_cuda_visible_devices": "", "info_device_warnings": ""}


def main() -> int:
    from specweave_ray.metrics import get_metric
    from specweave_ray.search.coordinator import Coordinator, write_comparison
    from specweave_ray.spec import ModelExperiment, loguniform
    from specweave_ray.workspace.increment import Increment
    from specweave_ray.workspace.records import list_records

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--stages", type=int, default=2, help="results reported per trial")
    parser.add_argument("--max-queued", type=int, default=64,
                        help="records queued before the feed waits for the writer (Tune's trials end no faster "
                             "than their records are written; 0: never wait)")
    parser.add_argument("--mlflow", action="store_true", help="mirror every record to MLflow (slow)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.getLogger("specweave_ray.search.coordinator").setLevel(logging.ERROR)  # the fed failures' warnings
    if args.mlflow:
        os.environ["SPECWEAVE_MLFLOW"] = "1"
    n, checkpoint = args.trials, min(1000, args.trials)
    print(f"bench_coordinator: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.1f}; {n} trials, {args.stages} results each, MLflow "
          f"{'on' if args.mlflow else 'off'}", flush=True)

    with tempfile.TemporaryDirectory(prefix="specweave-bench-coord-") as tmp:
        inc = Increment.create("coordinator at scale", problem_type="classification", root=Path(tmp))
        exp = ModelExperiment("logistic", LogisticRegression, {"C": loguniform(1e-3, 10.0)}, num_samples=n)
        metric = get_metric("roc_auc")
        coord = Coordinator(inc, metric=metric, candidates={exp.name: exp},
                            meta={"sweep": "exp-000-bench", "metric": metric.name, "problem_type": "classification"},
                            parent_run_id=None, total=n)
        marks: dict[str, float] = {"rss_start": rss_mb()}
        callback_s = [0.0, 0.0]  # first `checkpoint` trials, the last `checkpoint`
        written_at: list[float] = []
        futures = []
        failures = 0
        t_start = time.perf_counter()
        for i in range(n):
            tid, config = f"trial_{i:05d}", {"candidate": exp.name, "params": {"C": 10 ** (-3 + 4 * (i % 89) / 89)}}
            if args.max_queued and i >= args.max_queued:
                futures[i - args.max_queued].result()  # not timed: the trials' own time in a sweep
            t0 = time.perf_counter()
            coord.trial_started(tid, config)
            for stage in range(1, args.stages + 1):
                coord.trial_result(tid, config, _result(i, stage, args.stages))
            if i % 20 == 19:
                failures += 1
                fut = coord.trial_failed(tid, config, "Traceback (most recent call last):\n  ...\n"
                                         f"ValueError: injected failure of trial {i}", node="node-0",
                                         cause={"kind": "exception"})
            else:
                fut = coord.trial_completed(tid, config)
            dt = time.perf_counter() - t0
            if i < checkpoint:
                callback_s[0] += dt
            if i >= n - checkpoint:
                callback_s[1] += dt
            fut.add_done_callback(lambda _f: written_at.append(time.perf_counter()))
            futures.append(fut)
            if i + 1 == checkpoint:
                futures[-1].result()  # the writer caught up with the first `checkpoint`
                marks["rss_1k"] = rss_mb()
        fed_s = time.perf_counter() - t_start
        coord.flush()
        flushed_s = time.perf_counter() - t_start
        marks["rss_end"] = rss_mb()
        comparison_files = [p for p in inc.experiments_dir.iterdir() if p.name.startswith("comparison")]
        t0 = time.perf_counter()
        results = list(coord.results.values())
        write_comparison(inc, results, metric)
        comparison_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        records = [r for r in list_records(inc) if r.kind in ("trial", "baseline")]
        list_s = time.perf_counter() - t0
        ids = [r.meta.get("trial_id") for r in records]
        failed = sum(r.status == "failed" for r in records)

    written_at.sort()
    first = written_at[checkpoint - 1] - t_start
    last = written_at[-1] - written_at[-checkpoint - 1] if n > checkpoint else float("nan")
    growth_first = marks["rss_1k"] - marks["rss_start"]
    growth_rest = (marks["rss_end"] - marks["rss_1k"]) / max((n - checkpoint) / 1000, 1e-9)
    out = {
        "trials": n, "records": len(records), "unique_trial_ids": len(set(ids)), "failed_fed": failures,
        "failed_records": failed, "rss_mb_start": round(marks["rss_start"], 1), "rss_mb_at_1k": round(marks["rss_1k"], 1),
        "rss_mb_end": round(marks["rss_end"], 1), "rss_growth_mb_first_1k": round(growth_first, 1),
        "rss_growth_mb_per_1k_after": round(growth_rest, 1), "peak_rss_mb": round(resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "callback_ms_per_trial_first_1k": round(1000 * callback_s[0] / checkpoint, 3),
        "callback_ms_per_trial_last_1k": round(1000 * callback_s[1] / checkpoint, 3),
        "writer_ms_per_record_first_1k": round(1000 * first / checkpoint, 3),
        "writer_ms_per_record_last_1k": round(1000 * last / checkpoint, 3),
        "fed_s": round(fed_s, 2), "flushed_s": round(flushed_s, 2), "comparison_files_during_sweep": len(comparison_files),
        "comparison_s": round(comparison_s, 3), "list_records_s": round(list_s, 2),
    }
    ok = out["records"] == n and out["unique_trial_ids"] == n and failed == failures
    print(f"records {out['records']} for {n} trials fed ({out['unique_trial_ids']} distinct trial ids); "
          f"failed records {failed} for {failures} failures fed")
    print(f"driver RSS {out['rss_mb_start']} MB at start, {out['rss_mb_at_1k']} MB at 1k, {out['rss_mb_end']} MB at "
          f"{n}: +{out['rss_growth_mb_first_1k']} MB over the first 1k, +{out['rss_growth_mb_per_1k_after']} MB per 1k "
          f"after; peak {out['peak_rss_mb']} MB")
    print(f"callback per trial: {out['callback_ms_per_trial_first_1k']} ms (first 1k), "
          f"{out['callback_ms_per_trial_last_1k']} ms (last 1k); ratio "
          f"{out['callback_ms_per_trial_last_1k'] / max(out['callback_ms_per_trial_first_1k'], 1e-9):.2f}x")
    print(f"writer per record: {out['writer_ms_per_record_first_1k']} ms (first 1k), "
          f"{out['writer_ms_per_record_last_1k']} ms (last 1k); ratio "
          f"{out['writer_ms_per_record_last_1k'] / max(out['writer_ms_per_record_first_1k'], 1e-9):.2f}x")
    print(f"comparison: {out['comparison_files_during_sweep']} files written during the sweep, built once after it in "
          f"{out['comparison_s']} s; list_records of {n} records {out['list_records_s']} s; all fed in "
          f"{out['fed_s']} s, written by {out['flushed_s']} s")
    print("OK" if ok else "MISMATCH: a record is missing or doubled")
    print(json.dumps(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
