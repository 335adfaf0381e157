"""Benchmark: every forecaster's held-out MASE relative to seasonal naive's (issue 11, quality).

Two data sets, each split as the pipeline splits it (every series' last ``horizon`` points held
out, never at random):

* ``sales``: the worked example's data (``configs/sales-forecasting.yaml``: weekly sales of 4
  stores x 5 products over 208 weeks, seed 7, 12 weeks ahead, season 52);
* ``monthly``: 200 generated monthly series of 120 points (``bench_forecast.make_panel``: level,
  trend, yearly season, AR(1) noise), 12 months ahead, season 12.

For each: ``run_experiments`` (ETS, Theta, ARIMA, LightGBM on lags and calendar features, and the
four baselines; a few Optuna trials each; 3 backtest windows, refits on; MLflow off) on the
training part, then every candidate's and baseline's refitted model forecasts the held-out window
and is scored by MASE (scaled by each series' in-sample seasonal-naive error, as T-006 scores).
Printed per data set: each one's CV and held-out MASE, its ratio to seasonal naive's held-out
MASE, and whether the sweep's best (by CV) beats seasonal naive by at least 20% (the issue's
target: ratio <= 0.80). Published anchors (M4, not run here: no network): AutoETS 0.96 vs
seasonal naive 1.26 on M4-Monthly (0.76x), AutoARIMA 0.53 vs 1.22 on M4-Weekly (0.43x).

    python benchmarks/bench_forecast_quality.py [--only sales monthly] [--json PATH]
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_forecast import make_panel  # noqa: E402

from specweave_ray import Increment, ModelExperiment, problems, run_experiments  # noqa: E402
from specweave_ray.candidates.serialization import load_native  # noqa: E402
from specweave_ray.data.datasets import generate  # noqa: E402
from specweave_ray.metrics import forecast_scores, seasonal_scale  # noqa: E402
from specweave_ray.problems.timeseries import SERIES  # noqa: E402
from specweave_ray.spec.search_space import choice, loguniform, randint  # noqa: E402
from specweave_ray.workspace.records import read_record  # noqa: E402


def datasets() -> list[tuple[str, pd.DataFrame, dict[str, Any], str, int]]:
    sales = generate("sales", n_stores=4, n_products=5, n_weeks=208, seed=7)
    return [("sales", sales, {"time_column": "week", "series_column": "series_id", "horizon": 12}, "sales", 52),
            ("monthly", make_panel(200, 120), {"time_column": "month", "series_column": "series", "horizon": 12},
             "value", 12)]


def candidates() -> list[ModelExperiment]:
    return [ModelExperiment("ets", "ets", {"damped": choice([None, True])}, num_samples=2),
            ModelExperiment("theta", "theta", {"decomposition_type": choice(["multiplicative", "additive"])},
                            num_samples=2),
            ModelExperiment("arima", "arima", {"nmodels": 15}, num_samples=1),
            ModelExperiment("lightgbm", "lightgbm", {"family": "lightgbm", "n_estimators": randint(100, 300),
                                                     "learning_rate": loguniform(0.02, 0.2),
                                                     "num_leaves": randint(8, 48),
                                                     "target_transform": choice(["log", "log-diff1"])},
                            num_samples=3)]


def one(name: str, df: pd.DataFrame, columns: dict[str, Any], target: str, season: int, root: Path) -> dict:
    problem = problems.get("timeseries")
    X, y = problem.frame(df, target=target, columns=columns)
    X_tr, X_te, y_tr, y_te = problem.holdout_split(X, y)
    inc = Increment.create(f"quality {name}", problem_type="timeseries", root=root)
    t0 = time.perf_counter()
    res = run_experiments(candidates(), X_tr, y_tr, increment=inc, problem_type="timeseries", metric="mase",
                          cv=3, seed=7, sweep={"stages": 1})
    sweep_s = time.perf_counter() - t0
    scales = {s: seasonal_scale(g.to_numpy(), season) for s, g in y_tr.groupby(X_tr[SERIES].to_numpy())}
    rows = {}
    for cand, trial in res.best_per_candidate.items():
        rec = read_record(inc.experiments_dir / trial.record_id)
        art = rec.meta.get("artifacts") or {}
        if "model" not in art:
            continue
        model = load_native(rec.path, art["model"])
        yhat = problem.predict(model, X_te)
        held = forecast_scores(np.asarray(y_te), yhat, X_te[SERIES].to_numpy(), scales)["mase"]
        rows[cand] = {"kind": trial.kind, "cv_mase": trial.score,
                      "test_mase": float(held)}
    snaive = rows["seasonal-naive"]["test_mase"]
    for r in rows.values():
        r["vs_seasonal_naive"] = r["test_mase"] / snaive
    best = res.comparison["best_candidate"]
    return {"data": name, "series": int(X[SERIES].nunique()), "season": season, "sweep_s": sweep_s,
            "best": best, "best_vs_seasonal_naive": rows[best]["vs_seasonal_naive"], "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=("sales", "monthly"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ["SPECWEAVE_MLFLOW"] = "0"
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, df, columns, target, season in datasets():
            if args.only and name not in args.only:
                continue
            out.append(one(name, df, columns, target, season, Path(tmp)))
    for r in out:
        print(f"\n{r['data']}: {r['series']} series, season {r['season']}, sweep {r['sweep_s']:.0f} s")
        print(f"  {'forecaster':<16}{'cv MASE':>9}{'test MASE':>11}{'/ seasonal naive':>18}")
        for cand, row in sorted(r["rows"].items(), key=lambda kv: kv[1]["test_mase"]):
            mark = "  <- best by CV" if cand == r["best"] else ""
            print(f"  {cand:<16}{row['cv_mase']:>9.4f}{row['test_mase']:>11.4f}{row['vs_seasonal_naive']:>17.2f}x{mark}")
        ok = r["best_vs_seasonal_naive"] <= 0.80
        print(f"  best {r['best']}: {r['best_vs_seasonal_naive']:.2f}x seasonal naive's held-out MASE "
              f"(target <= 0.80x: {'met' if ok else 'not met'})")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
