"""Benchmark: tree SHAP from the booster itself against SHAP's ``TreeExplainer``.

T-007 and ``/explain`` compute XGBoost and LightGBM contributions with
``explain.tree_contributions`` (the booster's ``pred_contribs`` / ``pred_contrib``). The baseline,
measured in the same run on the same rows and model, is ``shap.TreeExplainer(booster)`` followed
by ``shap_values(X)``: building the explainer (SHAP reads every tree into its own arrays) counts,
since a fresh ``Predictor`` pays it on its first explanation. Both must agree to 1e-6.

A binary classifier of ``--trees`` trees (depth 6) on ``--rows`` rows of 20 features; each timing
is the best of ``--repeats``, the two interleaved. ``TreeExplainer`` calls the same booster
method underneath, after reading the trees and before a second pass for its additivity check,
so the ratio is what T-007 saves by calling the booster directly. The last line is the numbers
as JSON.

Usage::

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_explain.py [--rows 10000] [--trees 300]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from specweave_ray.deploy.explain import tree_contributions


def _best(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, tuple[float, Any]]:
    """Best time of each function, the runs interleaved and the order flipped each round (a, b,
    b, a, a, b, …) so that a busy spell of a shared machine, or going first, favours neither."""
    best: dict[str, tuple[float, Any]] = {name: (float("inf"), None) for name in fns}
    for r in range(repeats):
        for name, fn in (list(fns.items()) if r % 2 == 0 else list(fns.items())[::-1]):
            t0 = time.perf_counter()
            out = fn()
            elapsed = time.perf_counter() - t0
            if elapsed < best[name][0]:
                best[name] = (elapsed, out)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import lightgbm
    import shap
    import xgboost

    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.rows, 20))
    y = (X[:, 0] + X[:, 1] ** 2 - X[:, 2] * X[:, 3] + rng.normal(size=args.rows) > 1).astype(int)
    boosters = {
        "xgboost": xgboost.XGBClassifier(n_estimators=args.trees, max_depth=6, n_jobs=args.threads,
                                         tree_method="hist").fit(X, y).get_booster(),
        "lightgbm": lightgbm.LGBMClassifier(n_estimators=args.trees, max_depth=6, num_leaves=63, verbose=-1,
                                            n_jobs=args.threads).fit(X, y).booster_,
    }
    print(f"tree SHAP of {args.rows} rows × 20 features, {args.trees} trees (depth 6), best of "
          f"{args.repeats}, {args.threads} threads; load average {os.getloadavg()[0]:.2f}")
    print(f"{'family':<10} {'TreeExplainer s':>16} {'native s':>10} {'ratio':>7}")
    results: dict[str, dict[str, float]] = {}
    for family, booster in boosters.items():
        def baseline(booster: Any = booster) -> np.ndarray:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # LightGBM's "output has changed to a list" notice
                values = shap.TreeExplainer(booster).shap_values(X)
            return np.asarray(values[1] if isinstance(values, list) else values)

        def native(booster: Any = booster, family: str = family) -> np.ndarray:
            return tree_contributions(booster, X, family=family)[0]

        timed = _best({"shap": baseline, "native": native}, args.repeats)
        (t_shap, phi_shap), (t_native, phi_native) = timed["shap"], timed["native"]
        diff = float(np.abs(phi_shap - phi_native).max())
        if diff > 1e-6:
            print(f"MISS {family}: the two disagree by {diff:.3g}")
        results[family] = {"tree_explainer_s": t_shap, "native_s": t_native, "ratio": t_shap / t_native,
                           "max_abs_diff": diff}
        print(f"{family:<10} {t_shap:>16.3f} {t_native:>10.3f} {t_shap / t_native:>6.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
