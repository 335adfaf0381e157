"""Held-out score of the best single candidate, of the ensemble and of FLAML at the same budget.

    python benchmarks/bench_ensemble.py [--rows 4000] [--test-rows 40000] [--json out.json]

Four tables: the fraud and LTV worked examples (``data/datasets.py``; fraud with 2% positives so a
sample has enough of them), scikit-learn's breast cancer (classification) and diabetes
(regression). Training rows: 75% of ``--rows`` (3,000); held out: the other 25% of the scikit-learn
sets, and ``--test-rows`` more rows from the generators (bench_budget.py says why). Then

* ``run_experiments`` (logistic/ridge, XGBoost, LightGBM over the search spaces the tool ships; a
  few Optuna trials each, 3-fold CV, no baselines, MLflow off), timed on the wall clock: that
  time is FLAML's budget;
* the best single candidate (by CV), the ensemble (the better of the greedy ensemble and the
  stack by nested CV, whether or not the sweep chose it) and what the sweep chose, each scored on
  the held-out rows with the primary metric;
* FLAML 2.7 ``AutoML.fit`` on the same encoded features with ``time_budget`` = the sweep's time;
* single-row latency (p50/p99 over 50 calls: features + model) of each.

It prints one table row per data set and the ratios ensemble / best single and ensemble / FLAML
(in the metric's direction: > 1 means the ensemble is better). The last stdout line is JSON.
FLAML is a benchmark-only dependency (``pip install -e .[bench]``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_budget import shipped  # noqa: E402

from specweave_ray import ModelExperiment, run_experiments  # noqa: E402
from specweave_ray.candidates.serialization import load_native  # noqa: E402
from specweave_ray.data.datasets import generate  # noqa: E402
from specweave_ray.metrics import get_metric  # noqa: E402
from specweave_ray.search._ensemble import score, single_row_latency_ms  # noqa: E402
from specweave_ray.workspace.increment import Increment  # noqa: E402
from specweave_ray.workspace.records import read_record  # noqa: E402

FLAML_METRIC = {"roc_auc": "roc_auc", "pr_auc": "ap", "rmse": "rmse"}


def datasets(rows: int, seed: int, test_rows: int) -> list[tuple[str, str, str, pd.DataFrame, pd.Series, int]]:
    from sklearn.datasets import load_breast_cancer, load_diabetes

    train = int(0.75 * rows)
    fraud = generate("fraud", n_rows=train + test_rows, seed=seed, positive_rate=0.02)
    ltv = generate("ltv", n_rows=train + test_rows, seed=seed)
    bc = load_breast_cancer(as_frame=True)
    db = load_diabetes(as_frame=True)
    return [
        ("fraud", "classification", "pr_auc", fraud.drop(columns="is_fraud"), fraud["is_fraud"], train),
        ("ltv", "regression", "rmse", ltv.drop(columns="ltv"), ltv["ltv"], train),
        ("breast_cancer", "classification", "roc_auc", bc.data, bc.target, int(0.75 * len(bc.target))),
        ("diabetes", "regression", "rmse", db.data, db.target, int(0.75 * len(db.target))),
    ]


def candidates(kind: str) -> list[ModelExperiment]:
    from specweave_ray.spec.search_space import loguniform

    linear = (ModelExperiment("logistic", "logistic", {"max_iter": 1000, "C": loguniform(0.01, 10.0)}, num_samples=2)
              if kind == "classification" else
              ModelExperiment("ridge", "ridge", {"alpha": loguniform(0.01, 100.0)}, num_samples=2))
    return [linear, *shipped(3)]


def _load(inc: Increment, record: str) -> tuple[Any, Any]:
    rec = read_record(inc.experiments_dir / record)
    art = rec.meta["artifacts"]
    return load_native(rec.path, art["model"]), (load_native(rec.path, art["features"]) if "features" in art else None)


def _outputs(model: Any, features: Any, X: pd.DataFrame, kind: str) -> np.ndarray:
    Xt = features.transform(X) if features is not None else X
    return np.asarray(model.predict_proba(Xt) if kind == "classification" else model.predict(Xt), dtype=np.float64)


def one(name: str, kind: str, metric_name: str, X: pd.DataFrame, y: pd.Series, train: int, *, root: Path,
        seed: int, pool: int = 1) -> dict:
    from flaml import AutoML
    from sklearn.model_selection import train_test_split

    metric = get_metric(metric_name)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, train_size=train, random_state=seed,
                                              stratify=y if kind == "classification" else None)
    inc = Increment.create(f"bench {name}", problem_type=kind, root=root)
    t0 = time.perf_counter()
    run_experiments(candidates(kind), X_tr, y_tr, increment=inc, problem_type=kind, metric=metric_name, cv=3,
                    seed=seed, baselines=False, sweep={"stages": 1, "num_cpus": 2})
    budget = time.perf_counter() - t0
    comp = json.loads((inc.experiments_dir / "comparison.json").read_text())
    ens = comp["ensemble"]
    y_te_arr = np.asarray(y_te)
    row: dict[str, Any] = {"data": name, "metric": metric_name, "rows_train": len(X_tr), "sweep_s": budget,
                           "chosen": comp["best_candidate"], "why": ens.get("reason")}
    single = ens["best_single"]["record"]
    contender = max(ens["ensembles"], key=lambda e: e["cv_mean"] * (1 if metric.mode == "max" else -1))
    for label, record in (("single", single), ("ensemble", contender["record"])):
        model, features = _load(inc, record)
        row[f"{label}_name"] = comp_name(comp, record)
        row[label] = score(metric, y_te_arr, _outputs(model, features, X_te, kind))
        row[f"{label}_p99_ms"] = single_row_latency_ms(model, features, X_te, output=_out(kind))["latency_p99_ms"]
    features = _load(inc, single)[1]
    A_tr, A_te = features.transform(X_tr), features.transform(X_te)
    automl = AutoML()
    with open(os.devnull, "w") as quiet:  # FLAML logs every iteration to stdout
        stdout, sys.stdout = sys.stdout, quiet
        try:
            automl.fit(A_tr, np.asarray(y_tr), task=kind, metric=FLAML_METRIC[metric_name], time_budget=budget,
                       n_jobs=2, seed=seed, verbose=0)
        finally:
            sys.stdout = stdout
    out = automl.predict_proba(A_te) if kind == "classification" else automl.predict(A_te)
    row["flaml"] = score(metric, y_te_arr, np.asarray(out, dtype=np.float64))
    row["flaml_name"] = automl.best_estimator
    row["flaml_p99_ms"] = single_row_latency_ms(automl, features, X_te, output=_out(kind))["latency_p99_ms"]
    sign = 1.0 if metric.mode == "max" else -1.0
    # > 1: the ensemble is better, in the metric's direction
    row["ens_vs_single"] = (row["ensemble"] / row["single"]) ** sign
    row["ens_vs_flaml"] = (row["ensemble"] / row["flaml"]) ** sign
    if pool > 1:
        row.update(pool_trials(inc, kind, metric_name, X_tr, y_tr, X_te, y_te_arr, k=pool, seed=seed))
    return row


def pool_trials(inc: Increment, kind: str, metric_name: str, X_tr: pd.DataFrame, y_tr: pd.Series,
                X_te: pd.DataFrame, y_te: np.ndarray, *, k: int, seed: int) -> dict[str, Any]:
    """The greedy ensemble over each candidate's best trial against one over its top ``k`` trials
    (nested CV on the sweep's folds, and held-out): the measurement behind keeping more than one
    trial's out-of-fold outputs per candidate. The top trials are rerun here in process (their
    recorded params, the sweep's folds) for their out-of-fold outputs, and their members refitted."""
    from specweave_ray import problems
    from specweave_ray.candidates.registry import resolve_estimator
    from specweave_ray.search._ensemble import build_ensembles
    from specweave_ray.search._inputs import trial_inputs
    from specweave_ray.search.trial import refit, run_cv
    from specweave_ray.workspace.records import list_records

    problem = problems.get(kind)
    metric = get_metric(metric_name)
    inputs = trial_inputs(problem, X_tr, y_tr, cv=3, seed=seed)
    cls = {e.name: resolve_estimator(e.estimator, problem_type=problem) for e in candidates(kind)}
    trials: dict[str, list[Any]] = {}
    for rec in list_records(inc, kind="trial"):
        if rec.meta.get("status") == "finished" and "cv_mean" in rec.metrics:
            trials.setdefault(rec.meta["candidate"], []).append(rec)
    oof, params = {}, {}
    t0 = time.perf_counter()
    for cand, recs in trials.items():
        recs.sort(key=lambda r: r.metrics["cv_mean"], reverse=metric.mode == "max")
        for rank, rec in enumerate(recs[:k]):
            name = f"{cand}#{rank + 1}"
            res = run_cv(cls[cand], dict(rec.params), X_tr, inputs.y, inputs.folds, metric=metric_name,
                         preprocessor=inputs.preprocessor, problem_type=problem.name, keep_oof=True)
            oof[name], params[name] = np.asarray(res["_oof"], dtype=np.float64), (cand, dict(rec.params))
    rerun_s = time.perf_counter() - t0
    out: dict[str, Any] = {"pool_k": k, "pool_rerun_s": rerun_s}
    for label, names in (("pool1", [n for n in oof if n.endswith("#1")]), (f"pool{k}", list(oof))):
        ens = next(e for e in build_ensembles({n: oof[n] for n in names}, inputs.y, inputs.folds, metric,
                                              output=_out(kind), seed=seed) if e.method == "greedy")
        total = 0.0
        for name, w in zip(ens.names, ens.weights, strict=True):
            cand, p = params[name]
            model, pre, _ = refit(cls[cand], p, X_tr, inputs.y, preprocessor=inputs.preprocessor)
            total = total + w * _outputs(model, pre, X_te, kind)
        out[f"{label}_cv"] = ens.cv_mean
        out[f"{label}_heldout"] = score(metric, y_te, total)
        out[f"{label}_members"] = {n: round(w, 3) for n, w in zip(ens.names, ens.weights, strict=True)}
    return out


def _out(kind: str) -> str:
    return "probabilities" if kind == "classification" else "values"


def comp_name(comp: dict, record: str) -> str:
    return next(r["candidate"] for r in comp["rows"] if r["record"] == record)


def main() -> None:
    import ray

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--test-rows", type=int, default=40000, help="held-out rows of the generated sets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", nargs="*", help="data set names to run (default: all four)")
    parser.add_argument("--pool", type=int, default=1,
                        help="also score the greedy ensemble over each candidate's top POOL trials (rerun here)")
    args = parser.parse_args()
    os.environ["SPECWEAVE_MLFLOW"] = "0"
    t0 = time.perf_counter()
    print(f"load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, kind, metric_name, X, y, train in datasets(args.rows, args.seed, args.test_rows):
                if args.only and name not in args.only:
                    continue
                rows.append(one(name, kind, metric_name, X, y, train, root=Path(tmp), seed=args.seed, pool=args.pool))
                r = rows[-1]
                print(f"{r['data']:>13} {r['metric']:>7}  single {r['single']:.4f} ({r['single_name']}, "
                      f"p99 {r['single_p99_ms']:.1f} ms)  ensemble {r['ensemble']:.4f} ({r['ensemble_name']}, "
                      f"p99 {r['ensemble_p99_ms']:.1f} ms)  flaml {r['flaml']:.4f} ({r['flaml_name']}, "
                      f"p99 {r['flaml_p99_ms']:.1f} ms)  budget {r['sweep_s']:.1f} s  "
                      f"ensemble/single {r['ens_vs_single']:.3f}  ensemble/flaml {r['ens_vs_flaml']:.3f}  "
                      f"chosen: {r['chosen']}", flush=True)
                print(f"{'':>13} why: {r['why']}", flush=True)
                if args.pool > 1:
                    k = args.pool
                    print(f"{'':>13} greedy over best trial per candidate: nested CV {r['pool1_cv']:.4f}, held-out "
                          f"{r['pool1_heldout']:.4f}; over top {k}: nested CV {r[f'pool{k}_cv']:.4f}, held-out "
                          f"{r[f'pool{k}_heldout']:.4f} (members {r[f'pool{k}_members']}; rerun "
                          f"{r['pool_rerun_s']:.0f} s)", flush=True)
    finally:
        ray.shutdown()
    wins = sum(r["ens_vs_single"] >= 1 and r["ens_vs_flaml"] >= 1 for r in rows)
    print(f"ensemble at or above both on {wins} of {len(rows)} data sets; total {time.perf_counter() - t0:.0f} s; "
          f"load average {os.getloadavg()[0]:.2f}")
    payload = {"rows": rows}
    if args.json:
        args.json.write_text(json.dumps(payload, indent=2))
    print(json.dumps(payload))


if __name__ == "__main__":
    main()
