"""Benchmark: 64 short trials run sequentially, via ``run_experiments`` and via a default Tuner.

Each trial is a K-fold cross-validation (default 3) of a small XGBoost on scikit-learn's
breast-cancer data, over fixed configurations. Measured in one run:

* (a) sequential: :func:`specweave_ray.search.trial.run_cv` in a loop in this process, no Ray;
* (b) :func:`specweave_ray.run_experiments` with the MLflow mirror on (the default), and again
  with ``SPECWEAVE_MLFLOW=0``; each starts and stops its own embedded Ray;
* (c) a default ``ray.tune.Tuner`` with a plain function trainable (``grid_search``, no
  ``reuse_actors``, default loggers) in a clean subprocess, including its own ``ray.init``.

Usage::

    python benchmarks/bench_sweep.py [--trials 64] [--folds 3] [--json PATH]

The last line of stdout is the numbers as JSON. Targets (issue 3): (b) at least 2x faster than
(c), and (b) within 2x of the ideal ``(a) / cores + one Ray start-up``. A miss is reported, not
raised.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CLEAN_ENV = dict(os.environ)  # before anything (run_experiments) adds Ray/Tune switches
NUM_CPUS = 2


def configs(n: int) -> list[dict[str, Any]]:
    """``n`` fixed XGBoost configurations (a 4 x 4 x 4 grid, cycled when ``n`` > 64)."""
    grid = [{"n_estimators": ne, "max_depth": md, "learning_rate": lr}
            for ne in (20, 30, 40, 50) for md in (2, 3, 4, 5) for lr in (0.05, 0.1, 0.2, 0.3)]
    return [{**grid[i % len(grid)], "n_jobs": 1, "tree_method": "hist", "random_state": 0}
            for i in range(n)]


def load_data(folds: int) -> tuple[Any, Any, list[tuple[Any, Any]], Any]:
    """Breast-cancer data, the folds ``run_experiments`` uses (seed 0) and its preprocessor."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import StratifiedKFold

    from specweave_ray.features import build_preprocessor

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    y = np.asarray(y)
    splitter = StratifiedKFold(folds, shuffle=True, random_state=0)
    return X, y, list(splitter.split(X, y)), build_preprocessor(X)


def bench_sequential(cfgs: list[dict[str, Any]], folds: int) -> tuple[float, list[float]]:
    """(a): every configuration's CV in this process, one after another."""
    from xgboost import XGBClassifier

    from specweave_ray.search.trial import run_cv

    X, y, splits, pre = load_data(folds)
    run_cv(XGBClassifier, cfgs[0], X, y, splits, metric="roc_auc", preprocessor=pre)  # warm-up
    t0 = time.perf_counter()
    scores = [run_cv(XGBClassifier, c, X, y, splits, metric="roc_auc", preprocessor=pre)["cv_mean"]
              for c in cfgs]
    return time.perf_counter() - t0, scores


def bench_run_experiments(cfgs: list[dict[str, Any]], folds: int, *, mlflow: bool
                          ) -> tuple[float, list[float], str]:
    """(b): one fixed-params ``ModelExperiment`` per configuration, into a fresh increment."""
    from specweave_ray import Increment, ModelExperiment, run_experiments
    from specweave_ray.spec import SweepConfig

    X, y, _, _ = load_data(folds)
    os.environ["SPECWEAVE_MLFLOW"] = "1" if mlflow else "0"
    root = tempfile.mkdtemp(prefix="bench-sweep-")
    inc = Increment.create("bench sweep", problem_type="classification", root=root)
    exps = [ModelExperiment(f"xgb-{i:03d}", "xgboost", c, resources={"cpu": 1})
            for i, c in enumerate(cfgs)]
    t0 = time.perf_counter()
    res = run_experiments(exps, X, y, increment=inc, cv=folds, metric="roc_auc", baselines=False,
                          refit=False, sweep=SweepConfig(num_cpus=NUM_CPUS), seed=0)
    wall = time.perf_counter() - t0
    os.environ.pop("SPECWEAVE_MLFLOW", None)
    by_name = {t.candidate: t.score for t in res.trials}
    if res.failed:
        print(f"WARNING: {len(res.failed)} trials failed: {res.failed[0].error}", file=sys.stderr)
    return wall, [by_name.get(f"xgb-{i:03d}", float("nan")) for i in range(len(cfgs))], root


def tuner_child(trials: int, folds: int, out: str) -> None:
    """(c), run in a clean subprocess: a default Tuner, its own ``ray.init`` and shutdown."""
    import ray
    from ray import tune
    from xgboost import XGBClassifier

    from specweave_ray.search.trial import run_cv

    cfgs = configs(trials)
    X, y, splits, pre = load_data(folds)

    def trainable(config: dict[str, Any]) -> None:
        run_cv(XGBClassifier, cfgs[config["i"]], X, y, splits, metric="roc_auc",
               preprocessor=pre, report=tune.report)

    storage = tempfile.mkdtemp(prefix="bench-tuner-")
    t0 = time.perf_counter()
    ray.init(num_cpus=NUM_CPUS)
    t_up = time.perf_counter() - t0
    grid = tune.Tuner(trainable, param_space={"i": tune.grid_search(list(range(trials)))},
                      run_config=tune.RunConfig(storage_path=storage)).fit()
    ray.shutdown()
    wall = time.perf_counter() - t0
    shutil.rmtree(storage, ignore_errors=True)
    scores = {r.config["i"]: r.metrics.get("cv_mean", float("nan")) for r in grid}
    Path(out).write_text(json.dumps({"wall_s": wall, "ray_init_s": t_up,
                                     "scores": [scores.get(i, float("nan")) for i in range(trials)]}))


def bench_tuner(trials: int, folds: int) -> dict[str, Any]:
    """Run :func:`tuner_child` in a subprocess with the environment this script started with."""
    fd, out = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    log = Path(out).with_suffix(".log")
    cmd = [sys.executable, __file__, "--tuner-child", out, "--trials", str(trials),
           "--folds", str(folds)]
    with open(log, "w") as fh:
        rc = subprocess.run(cmd, env=CLEAN_ENV, stdout=fh, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        print(log.read_text()[-3000:], file=sys.stderr)
        raise SystemExit(f"the default-Tuner subprocess failed (rc={rc}); log: {log}")
    res = json.loads(Path(out).read_text())
    Path(out).unlink()
    log.unlink()
    return res


def bench_ray_startup(**kwargs: Any) -> float:
    """Seconds for ``ray.init(num_cpus=2, **kwargs)`` plus ``ray.shutdown()``."""
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=NUM_CPUS, **kwargs)
    ray.shutdown()
    return time.perf_counter() - t0


def versions() -> dict[str, str]:
    """Versions of Python and the packages on the measured path."""
    import mlflow
    import ray
    import sklearn
    import xgboost

    return {"python": platform.python_version(), "ray": ray.__version__, "xgboost": xgboost.__version__,
            "scikit-learn": sklearn.__version__, "mlflow": mlflow.__version__,
            "platform": platform.platform()}


def max_diff(a: list[float], b: list[float]) -> float:
    """Largest absolute score difference between two runs of the same configurations."""
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run all measurements, print the table and return the numbers."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=64)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--json", help="also write the numbers to this file")
    ap.add_argument("--tuner-child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.tuner_child:
        tuner_child(args.trials, args.folds, args.tuner_child)
        return {}
    n, cfgs = args.trials, configs(args.trials)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    import mlflow.tracking  # noqa: F401 - one-off import costs stay out of the timed runs
    import ray  # noqa: F401
    import xgboost  # noqa: F401
    import_s = time.perf_counter() - t0

    startup = bench_ray_startup()
    startup_product = bench_ray_startup(include_dashboard=False, log_to_driver=False)
    seq, seq_scores = bench_sequential(cfgs, args.folds)
    b_off, off_scores, off_root = bench_run_experiments(cfgs, args.folds, mlflow=False)
    shutil.rmtree(off_root, ignore_errors=True)
    b, b_scores, b_root = bench_run_experiments(cfgs, args.folds, mlflow=True)
    c = bench_tuner(n, args.folds)

    ideal = seq / NUM_CPUS + startup
    res = {
        "trials": n, "folds": args.folds, "cores": os.cpu_count(), "ray_num_cpus": NUM_CPUS,
        "versions": versions(), "import_s": import_s,
        "ray_startup_s": startup, "ray_startup_no_dashboard_s": startup_product,
        "a_sequential_s": seq, "b_run_experiments_s": b, "b_no_mlflow_s": b_off,
        "c_default_tuner_s": c["wall_s"], "c_ray_init_s": c["ray_init_s"],
        "ratio_b_over_a": b / seq, "speedup_c_over_b": c["wall_s"] / b,
        "ideal_s": ideal, "ratio_b_over_ideal": b / ideal,
        "b_overhead_ms_per_trial": (b - startup - seq / NUM_CPUS) / n * 1000,
        "b_no_mlflow_overhead_ms_per_trial": (b_off - startup - seq / NUM_CPUS) / n * 1000,
        "mlflow_mirror_cost_s": b - b_off,
        "max_score_diff_b_vs_a": max(max_diff(b_scores, seq_scores), max_diff(off_scores, seq_scores)),
        "max_score_diff_c_vs_a": max_diff(c["scores"], seq_scores),
        "b_increments_root": b_root, "loadavg_1min": [load_before, os.getloadavg()[0]],
    }
    res["pass_b_2x_faster_than_c"] = res["speedup_c_over_b"] >= 2.0
    res["pass_b_within_2x_ideal"] = res["ratio_b_over_ideal"] <= 2.0

    v = res["versions"]
    print(f"\nbench_sweep: {n} trials x {args.folds}-fold CV, XGBoost on breast-cancer; "
          f"{res['cores']} cores, Ray num_cpus={NUM_CPUS}; load average (1 min) "
          f"{load_before:.1f} before, {res['loadavg_1min'][1]:.1f} after")
    print("versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    rows = [("ray.init(num_cpus=2) + shutdown", startup),
            ("  (same, include_dashboard=False)", startup_product),
            ("(a) sequential run_cv, no Ray", seq),
            ("(b) run_experiments, MLflow on", b),
            ("(b) run_experiments, SPECWEAVE_MLFLOW=0", b_off),
            ("(c) default Tuner (incl. ray.init)", c["wall_s"]),
            ("ideal = (a)/2 + ray start-up", ideal)]
    print(f"\n{'measurement':42} {'wall s':>8} {'ms/trial':>9}")
    for label, s in rows:
        print(f"{label:42} {s:8.2f} {s / n * 1000:9.1f}")
    print(f"\n(b)/(a)                 {res['ratio_b_over_a']:6.2f}")
    print(f"(c)/(b) speed-up        {res['speedup_c_over_b']:6.2f}   target >= 2.0  "
          f"{'PASS' if res['pass_b_2x_faster_than_c'] else 'MISS'}")
    print(f"(b)/ideal               {res['ratio_b_over_ideal']:6.2f}   target <= 2.0  "
          f"{'PASS' if res['pass_b_within_2x_ideal'] else 'MISS'}")
    print(f"(b) overhead per trial  {res['b_overhead_ms_per_trial']:6.1f} ms "
          f"(MLflow off: {res['b_no_mlflow_overhead_ms_per_trial']:.1f} ms; "
          f"mirror costs {res['mlflow_mirror_cost_s']:.2f} s)")
    print(f"max |score diff| vs (a): (b) {res['max_score_diff_b_vs_a']:.2e}, "
          f"(c) {res['max_score_diff_c_vs_a']:.2e}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
