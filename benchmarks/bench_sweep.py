"""Benchmark: sweeps of short trials through ``run_experiments`` against the ideal and a tuned Tuner.

Three shapes, each measured in one run on the same data (scikit-learn's breast cancer, 3-fold
CV ROC AUC, the folds ``run_experiments`` uses with seed 0):

* ``many``: ``--configs`` (128) ``ModelExperiment`` s, each one fixed XGBoost configuration
  (``n_estimators`` 50/100, ``max_depth`` 2–6, ``learning_rate`` 0.05–0.3, ``n_jobs=1``);
* ``search``: one XGBoost candidate with a ``--configs``-sample Optuna search over the same ranges
  (the sequential reference and the Tuner run the configurations the sweep sampled);
* ``tiny``: ``--tiny`` (1,000) trials of ~5 ms each (a classifier that spins 2.5 ms per fold,
  2 folds, on the raw frame: no feature pipeline): the overhead per trial.

For each shape:

* (a) the configurations' CV one after another in this process, no Ray
  (:func:`specweave_ray.search.trial.run_cv`); the ideal is (a) / the cores;
* (b) ``run_experiments`` (no baselines, no refit, no cache, one fitting stage; the MLflow mirror on, into a temporary
  sqlite store) in a process where Ray is already running (``ensure_ray`` before the clock), and
  (b') again letting ``run_experiments`` start and stop Ray itself;
* (c) the best-tuned plain ``ray.tune.Tuner`` on the same work, in a clean subprocess whose Ray is
  started before its clock: a function trainable over ``tune.with_parameters`` (data through the
  object store once), ``reuse_actors=True``, ``max_concurrent_trials`` = the cores, no logger
  callbacks (``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1``), no checkpoints, ``verbose=0``.

Printed: a table of the wall times, (b)/ideal and (b')/ideal (target <= 1.15x), (c)/(b) (target
>= 1.5x), and for ``tiny`` the overhead per added trial of (b) and (c) (ms: (wall - ideal) / trials).
Scores of (b) and (c) are checked against (a). A miss is printed, not raised; the last stdout line
is JSON. The machine's load average is printed before and after: on 2 cores other load moves the
numbers a lot, compare runs made on a quiet machine.

Usage::

    python benchmarks/bench_sweep.py [--configs 128] [--tiny 1000] [--only many search tiny] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CLEAN_ENV = dict(os.environ)  # before anything (run_experiments) adds Ray/Tune switches
CPUS = 2
FOLDS = 3
SPIN_S = 0.0025  # one fold of a tiny trial


class SpinClassifier(ClassifierMixin, BaseEstimator):
    """Predicts the prior after spinning ``SPIN_S`` on the CPU (a ~2.5 ms fit, not a sleep).

    ``requires_raw_frame``: the sweep hands it the frame as is, no feature pipeline fitted per
    fold (the default ``ColumnTransformer`` costs ~35 ms a trial, which would hide the overhead)."""

    requires_raw_frame = True

    def __init__(self, tag: float = 0.0) -> None:
        self.tag = tag  # what the search varies (nothing depends on it)

    def fit(self, X: Any, y: Any) -> SpinClassifier:
        end = time.perf_counter() + SPIN_S
        while time.perf_counter() < end:
            pass
        self.classes_, counts = np.unique(y, return_counts=True)
        self.prior_ = counts / counts.sum()
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.tile(self.prior_, (len(X), 1))


def fixed_configs(n: int) -> list[dict[str, Any]]:
    """``n`` XGBoost configurations: a 2 x 5 x 4 grid, cycled (with a seed) beyond 40."""
    grid = [{"n_estimators": ne, "max_depth": md, "learning_rate": lr}
            for ne in (50, 100) for md in (2, 3, 4, 5, 6) for lr in (0.05, 0.1, 0.2, 0.3)]
    return [{**grid[i % len(grid)], "random_state": i // len(grid), "n_jobs": 1, "tree_method": "hist"}
            for i in range(n)]


def load(folds: int) -> tuple[Any, np.ndarray, list[tuple[np.ndarray, np.ndarray]], Any]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import StratifiedKFold

    from specweave_ray.features import build_preprocessor

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    y = np.asarray(y)
    return X, y, list(StratifiedKFold(folds, shuffle=True, random_state=0).split(X, y)), build_preprocessor(X)


def estimator_of(shape: str) -> type:
    from xgboost import XGBClassifier

    return SpinClassifier if shape == "tiny" else XGBClassifier


def sequential(shape: str, cfgs: list[dict[str, Any]], folds: int) -> tuple[float, list[float]]:
    """(a): every configuration's CV here, one after another (one warm-up first)."""
    from specweave_ray.search.trial import run_cv

    X, y, splits, pre = load(folds)
    cls = estimator_of(shape)
    pre = None if getattr(cls, "requires_raw_frame", False) else pre
    run_cv(cls, cfgs[0], X, y, splits, metric="roc_auc", preprocessor=pre)
    t0 = time.perf_counter()
    scores = [run_cv(cls, c, X, y, splits, metric="roc_auc", preprocessor=pre)["cv_mean"] for c in cfgs]
    return time.perf_counter() - t0, scores


def experiments(shape: str, n: int) -> list[Any]:
    from specweave_ray import ModelExperiment
    from specweave_ray.spec.search_space import choice, loguniform, randint, uniform

    if shape == "many":
        return [ModelExperiment(f"xgb-{i:03d}", "xgboost", c, resources={"cpu": 1})
                for i, c in enumerate(fixed_configs(n))]
    if shape == "search":
        return [ModelExperiment("xgb", "xgboost", {"n_estimators": choice([50, 100]), "max_depth": randint(2, 7),
                                                   "learning_rate": loguniform(0.05, 0.3), "n_jobs": 1,
                                                   "tree_method": "hist"}, num_samples=n, resources={"cpu": 1})]
    # a float, not an int over 0..2**31: Optuna 5.1's TPE scores an int's far-tail masses in a
    # Python loop, 5x slower than a float's (measured: 300 suggestions 10.2 s against 4.4 s)
    return [ModelExperiment("spin", SpinClassifier, {"tag": uniform(0.0, 1.0)}, num_samples=n,
                            resources={"cpu": 1})]


def through_run_experiments(shape: str, n: int, folds: int, *, ray_running: bool, mlflow_dir: str
                            ) -> tuple[float, list[dict[str, Any]], list[float]]:
    """(b) / (b'): the sweep into a fresh increment; (wall, the trials' params, their scores) in
    the order of (a)'s configurations for ``many``, of the records otherwise."""
    from specweave_ray import Increment, run_experiments
    from specweave_ray.search import _ray
    from specweave_ray.spec import SweepConfig

    X, y, _, _ = load(folds)
    os.environ["SPECWEAVE_MLFLOW"] = "1"
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{mlflow_dir}/mlflow-{shape}-{int(ray_running)}.db"
    if ray_running:
        _ray.ensure_ray(num_cpus=CPUS)
    else:
        _ray.shutdown()
    root = tempfile.mkdtemp(prefix="bench-sweep-")
    inc = Increment.create(f"bench sweep {shape}", problem_type="classification", root=root)
    t0 = time.perf_counter()
    res = run_experiments(experiments(shape, n), X, y, increment=inc, cv=folds, metric="roc_auc", baselines=False,
                          refit=False, use_cache=False, sweep=SweepConfig(num_cpus=CPUS, stages=1), seed=0)
    wall = time.perf_counter() - t0
    if res.failed:
        print(f"WARNING: {len(res.failed)} trials failed: {res.failed[0].error}", file=sys.stderr)
    trials = sorted(res.trials, key=lambda t: t.candidate) if shape == "many" else list(res.trials)
    return wall, [dict(t.params) for t in trials], [t.score for t in trials]


def tuner_child(shape: str, cfgs_path: str, folds: int, out: str) -> None:
    """(c), in a clean subprocess: Ray started before the clock, then the tuned Tuner."""
    import ray
    from ray import tune

    from specweave_ray.search.trial import run_cv

    cfgs = json.loads(Path(cfgs_path).read_text())
    cls = estimator_of(shape)
    ray.init(num_cpus=CPUS, include_dashboard=False, log_to_driver=False)
    X, y, splits, pre = load(folds)
    pre = None if getattr(cls, "requires_raw_frame", False) else pre

    def trainable(config: dict[str, Any], data: Any) -> None:
        X, y, splits, pre = data
        run_cv(cls, config["params"], X, y, splits, metric="roc_auc", preprocessor=pre, report=tune.report)

    storage = tempfile.mkdtemp(prefix="bench-tuner-")
    t0 = time.perf_counter()
    grid = tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, data=(X, y, splits, pre)), {"cpu": 1}),
        param_space={"params": tune.grid_search(cfgs)},
        tune_config=tune.TuneConfig(reuse_actors=True, max_concurrent_trials=CPUS),
        run_config=tune.RunConfig(storage_path=storage, verbose=0, callbacks=[],
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1))).fit()
    wall = time.perf_counter() - t0
    ray.shutdown()
    by_cfg = {json.dumps(r.config["params"], sort_keys=True): r.metrics.get("cv_mean", float("nan")) for r in grid}
    Path(out).write_text(json.dumps({"wall_s": wall, "scores": [by_cfg.get(json.dumps(c, sort_keys=True), float("nan"))
                                                                 for c in cfgs]}))


def tuned_tuner(shape: str, cfgs: list[dict[str, Any]], folds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        cfgs_path, out, log = (str(Path(tmp) / n) for n in ("cfgs.json", "out.json", "child.log"))
        Path(cfgs_path).write_text(json.dumps(cfgs))
        env = {**CLEAN_ENV, "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1", "RAY_AIR_NEW_OUTPUT": "0"}
        cmd = [sys.executable, __file__, "--tuner-child", shape, cfgs_path, out, "--folds", str(folds)]
        with open(log, "w") as fh:
            rc = subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
        if rc != 0:
            print(Path(log).read_text()[-3000:], file=sys.stderr)
            raise SystemExit(f"the tuned-Tuner subprocess failed (rc={rc})")
        return json.loads(Path(out).read_text())


def max_diff(a: list[float], b: list[float]) -> float:
    return max((abs(x - y) for x, y in zip(a, b, strict=True)), default=0.0)


def one_shape(shape: str, n: int, mlflow_dir: str) -> dict[str, Any]:
    folds = 2 if shape == "tiny" else FOLDS
    b, params, b_scores = through_run_experiments(shape, n, folds, ray_running=True, mlflow_dir=mlflow_dir)
    cfgs = fixed_configs(n) if shape == "many" else params
    seq, seq_scores = sequential(shape, cfgs, folds)
    b_cold, _, _ = through_run_experiments(shape, n, folds, ray_running=False, mlflow_dir=mlflow_dir)
    c = tuned_tuner(shape, cfgs, folds)
    ideal = seq / CPUS
    out = {"shape": shape, "trials": n, "folds": folds, "a_sequential_s": seq, "ideal_s": ideal,
           "b_ray_running_s": b, "b_starts_ray_s": b_cold, "c_tuned_tuner_s": c["wall_s"],
           "b_over_ideal": b / ideal, "b_cold_over_ideal": b_cold / ideal, "c_over_b": c["wall_s"] / b,
           "b_overhead_ms_per_trial": (b - ideal) / n * 1000, "c_overhead_ms_per_trial": (c["wall_s"] - ideal) / n * 1000}
    if shape != "tiny":  # the tiny trials score the prior: 0.5 everywhere
        out["max_score_diff_b_vs_a"] = max_diff(b_scores, seq_scores)
        out["max_score_diff_c_vs_a"] = max_diff(c["scores"], seq_scores)
    return out


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", type=int, default=128)
    ap.add_argument("--tiny", type=int, default=1000)
    ap.add_argument("--folds", type=int, default=FOLDS, help=argparse.SUPPRESS)
    ap.add_argument("--only", nargs="*", choices=("many", "search", "tiny"))
    ap.add_argument("--json")
    ap.add_argument("--tuner-child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.tuner_child:
        tuner_child(args.tuner_child[0], args.tuner_child[1], args.folds, args.tuner_child[2])
        return []
    load_before = os.getloadavg()[0]
    import mlflow.tracking  # noqa: F401 - one-off import costs stay out of the timed runs
    import ray  # noqa: F401
    import xgboost  # noqa: F401

    from specweave_ray.search import _ray

    rows = []
    with tempfile.TemporaryDirectory() as mlflow_dir:
        for shape in args.only or ("many", "search", "tiny"):
            rows.append(one_shape(shape, args.tiny if shape == "tiny" else args.configs, mlflow_dir))
            print(json.dumps(rows[-1]), flush=True)  # each shape as it ends: a long run keeps what it measured
    _ray.shutdown()
    print(f"\nbench_sweep: {os.cpu_count()} cores, Ray num_cpus={CPUS}, MLflow mirror on; load average (1 min) "
          f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(f"{'shape':<7}{'trials':>7}{'(a) seq s':>10}{'ideal s':>9}{'(b) s':>8}{'(b´) s':>8}{'(c) s':>8}"
          f"{'(b)/ideal':>10}{'(b´)/ideal':>11}{'(c)/(b)':>9}{'(b) ms/trial':>13}{'(c) ms/trial':>13}")
    for r in rows:
        print(f"{r['shape']:<7}{r['trials']:>7}{r['a_sequential_s']:>10.2f}{r['ideal_s']:>9.2f}{r['b_ray_running_s']:>8.2f}"
              f"{r['b_starts_ray_s']:>8.2f}{r['c_tuned_tuner_s']:>8.2f}{r['b_over_ideal']:>10.2f}{r['b_cold_over_ideal']:>11.2f}"
              f"{r['c_over_b']:>9.2f}{r['b_overhead_ms_per_trial']:>13.1f}{r['c_overhead_ms_per_trial']:>13.1f}")
    print("(a) sequential run_cv, no Ray; ideal = (a) / 2; (b) run_experiments, Ray already running; "
          "(b´) run_experiments starting and stopping Ray; (c) tuned Tuner, Ray already running")
    for r in rows:
        verdict = [f"(b)/ideal {'PASS' if r['b_over_ideal'] <= 1.15 else 'MISS'}",
                   f"(b´)/ideal {'PASS' if r['b_cold_over_ideal'] <= 1.15 else 'MISS'}",
                   f"(c)/(b) {'PASS' if r['c_over_b'] >= 1.5 else 'MISS'}"]
        scores = (f"; max |score diff| vs (a): (b) {r['max_score_diff_b_vs_a']:.1e}, (c) {r['max_score_diff_c_vs_a']:.1e}"
                  if "max_score_diff_b_vs_a" in r else "")
        print(f"{r['shape']:<7} targets (<= 1.15x, <= 1.15x, >= 1.5x): {', '.join(verdict)}{scores}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    print(json.dumps(rows))
    return rows


if __name__ == "__main__":
    main()
