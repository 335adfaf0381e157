"""The tool with a time budget against FLAML 2.7 with the same budget, on the same split.

    python benchmarks/bench_budget.py [--budget 60] [--rows 4000] [--test-rows 40000] [--only fraud breast_cancer]
                                      [--json out.json]

Three tables: the fraud and LTV worked examples (``data/datasets.py``; fraud at 2% positives) and
scikit-learn's breast cancer. Both tools train on the same 75% of ``--rows`` rows (3,000 by
default); breast cancer is held out 75/25, the generated sets on ``--test-rows`` more rows from
the same generator (at 4,000 rows a 25% hold-out of fraud had 20 positives: its average
precision moved by ±0.1 with the split alone). For each:

* ``run_experiments(..., time_budget_s=budget)`` with more trials than the budget allows
  (logistic or ridge, and XGBoost and LightGBM over the search spaces the tool ships; the problem
  type's baselines; 3-fold CV; MLflow off); the held-out primary metric of what the sweep chose
  (its refitted best model, or the ensemble);
* FLAML 2.7 ``AutoML.fit(time_budget=budget)`` on the same encoded features;
* each one's wall clock against the budget (the tool's includes Ray's start and stop, its
  refits and ensemble, which run after the budget's stop), and the score ratio tool / FLAML in
  the metric's direction (> 1: the tool is better). The last stdout line is JSON.
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

from specweave_ray import ModelExperiment, run_experiments  # noqa: E402
from specweave_ray.candidates.serialization import load_native  # noqa: E402
from specweave_ray.data.datasets import generate  # noqa: E402
from specweave_ray.metrics import get_metric  # noqa: E402
from specweave_ray.problems._candidates import SHARED_CANDIDATES  # noqa: E402
from specweave_ray.search._ensemble import score  # noqa: E402
from specweave_ray.spec.search_space import loguniform  # noqa: E402
from specweave_ray.workspace.increment import Increment  # noqa: E402
from specweave_ray.workspace.records import read_record  # noqa: E402

FLAML_METRIC = {"roc_auc": "roc_auc", "pr_auc": "ap", "rmse": "rmse"}


def datasets(rows: int, seed: int, test_rows: int) -> list[tuple[str, str, str, pd.DataFrame, pd.Series, int]]:
    """(name, kind, metric, X, y, training rows): the first ``training rows`` of a split are trained on."""
    from sklearn.datasets import load_breast_cancer

    train = int(0.75 * rows)
    fraud = generate("fraud", n_rows=train + test_rows, seed=seed, positive_rate=0.02)
    ltv = generate("ltv", n_rows=train + test_rows, seed=seed)
    bc = load_breast_cancer(as_frame=True)
    return [("fraud", "classification", "pr_auc", fraud.drop(columns="is_fraud"), fraud["is_fraud"], train),
            ("ltv", "regression", "rmse", ltv.drop(columns="ltv"), ltv["ltv"], train),
            ("breast_cancer", "classification", "roc_auc", bc.data, bc.target, int(0.75 * len(bc.target)))]


def shipped(num_samples: int) -> list[ModelExperiment]:
    """XGBoost and LightGBM over the search spaces a run without candidates gets, one thread each."""
    return [ModelExperiment.from_config({**c, "params": {**c["params"], "n_jobs": 1}, "num_samples": num_samples})
            for c in SHARED_CANDIDATES if c["name"] in ("xgboost", "lightgbm")]


def candidates(kind: str, samples: int = 300) -> list[ModelExperiment]:
    # cheap first: the searcher hands out trials round-robin in this order. `samples` is more than
    # 60 s allows on 2 cores (91 trials of 8 + 40 + 40 ended in 46 s), so the budget, as in FLAML,
    # is what ends the search
    linear = (ModelExperiment("logistic", "logistic", {"max_iter": 1000, "C": loguniform(0.01, 10.0)}, num_samples=8)
              if kind == "classification" else
              ModelExperiment("ridge", "ridge", {"alpha": loguniform(0.01, 100.0)}, num_samples=8))
    return [linear, *shipped(samples)]


def _load(inc: Increment, record: str) -> tuple[Any, Any]:
    rec = read_record(inc.experiments_dir / record)
    art = rec.meta["artifacts"]
    return load_native(rec.path, art["model"]), (load_native(rec.path, art["features"]) if "features" in art else None)


def one(name: str, kind: str, metric_name: str, X: pd.DataFrame, y: pd.Series, train: int, *, budget: float,
        root: Path, seed: int) -> dict:
    from flaml import AutoML
    from sklearn.model_selection import train_test_split

    metric = get_metric(metric_name)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, train_size=train, random_state=seed,
                                              stratify=y if kind == "classification" else None)
    inc = Increment.create(f"budget {name}", problem_type=kind, root=root)
    t0 = time.perf_counter()
    res = run_experiments(candidates(kind), X_tr, y_tr, increment=inc, problem_type=kind, metric=metric_name,
                          cv=3, seed=seed, sweep={"stages": 1, "num_cpus": 2}, time_budget_s=budget)
    tool_s = time.perf_counter() - t0
    y_te_arr = np.asarray(y_te)
    best = res.comparison["best"]
    model, features = _load(inc, best)
    Xt = features.transform(X_te) if features is not None else X_te
    predict = (lambda m, A: m.predict_proba(A)) if kind == "classification" else (lambda m, A: m.predict(A))
    tool = score(metric, y_te_arr, np.asarray(predict(model, Xt), dtype=np.float64))
    statuses = [t.status for t in res.trials]
    # FLAML on the same encoded features as the tool's candidates
    linear = candidates(kind)[0].name
    feat = _load(inc, res.best_per_candidate[linear].record_id)[1] if linear in res.best_per_candidate else features
    A_tr, A_te = (feat.transform(X_tr), feat.transform(X_te)) if feat is not None else (X_tr, X_te)
    automl = AutoML()
    t1 = time.perf_counter()
    with open(os.devnull, "w") as quiet:  # FLAML logs every iteration to stdout
        stdout, sys.stdout = sys.stdout, quiet
        try:
            automl.fit(A_tr, np.asarray(y_tr), task=kind, metric=FLAML_METRIC[metric_name],
                       time_budget=budget, n_jobs=2, seed=seed, verbose=0)
        finally:
            sys.stdout = stdout
    flaml_s = time.perf_counter() - t1
    flaml = score(metric, y_te_arr, np.asarray(predict(automl, A_te), dtype=np.float64))
    sign = 1.0 if metric.mode == "max" else -1.0
    return {"data": name, "metric": metric_name, "budget_s": budget, "tool": tool, "tool_chose": res.comparison["best_candidate"],
            "tool_s": tool_s, "tool_trials": len(statuses), "tool_interrupted": statuses.count("interrupted"),
            "flaml": flaml, "flaml_chose": automl.best_estimator, "flaml_s": flaml_s,
            "tool_vs_flaml": (tool / flaml) ** sign}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--test-rows", type=int, default=40000, help="held-out rows of the generated sets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", nargs="*", help="data set names to run (default: all three)")
    args = parser.parse_args()
    os.environ["SPECWEAVE_MLFLOW"] = "0"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, kind, metric, X, y, train in datasets(args.rows, args.seed, args.test_rows):
            if args.only and name not in args.only:
                continue
            rows.append(one(name, kind, metric, X, y, train, budget=args.budget, root=Path(tmp) / "incs", seed=args.seed))
    print(f"budget {args.budget:g} s per tool and data set; {int(0.75 * args.rows)} training rows, "
          f"{args.test_rows} held out (breast cancer: 75/25)")
    print(f"{'data':<14}{'metric':<8}{'tool':>10}{'FLAML':>10}{'tool/FLAML':>11}{'tool s':>8}{'FLAML s':>8}"
          f"{'trials':>7}{'stopped':>8}  chose (tool / FLAML)")
    for r in rows:
        print(f"{r['data']:<14}{r['metric']:<8}{r['tool']:>10.4f}{r['flaml']:>10.4f}{r['tool_vs_flaml']:>11.3f}"
              f"{r['tool_s']:>8.1f}{r['flaml_s']:>8.1f}{r['tool_trials']:>7}{r['tool_interrupted']:>8}"
              f"  {r['tool_chose']} / {r['flaml_chose']}")
    out = json.dumps(rows)
    if args.json:
        args.json.write_text(out)
    print(out)


if __name__ == "__main__":
    main()
