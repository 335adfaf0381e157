"""Benchmark: the ``Predictor`` against the raw model call of its own family, in process.

For each family (XGBoost, LightGBM, the torch MLP) a classifier is fitted on the fraud worked
example's generator (``make_fraud``, 20k rows: 7 numeric columns, 3 integer flags, one
categorical) with the package's own feature pipeline (``features.build_preprocessor``), and a
``Predictor`` is built over it with an input schema that records each column's kind, nullability
and min/max (what a package's ``input_schema`` holds). Then, in one run, interleaved:

* raw: the family's own call on rows already encoded and scaled (XGBoost ``inplace_predict``,
  LightGBM ``Booster.predict``, the torch network's forward on a float32 tensor);
* ``Predictor.predict_proba`` on: one dict row, a one-row DataFrame, a 64k-row DataFrame and
  64k dict rows (schema check and feature pipeline included);
* for XGBoost and LightGBM, the same after ``Predictor.compile()`` (rows ``xgboost+compiled``,
  ``lightgbm+compiled``: the trees compiled to C by TL2cgen, in a fresh cache folder, so the
  compile time printed is a first build), against the same raw booster call.

Single rows: p50 over ``--single`` calls, raw and Predictor alternating in blocks of 100.
Batches: the best of ``--repeats`` calls each, alternating. Targets (issue 16, part 5):
single-row p50 <= 1.5x raw, batch throughput >= 0.9x raw. A miss is printed (MISS), never
raised. The last stdout line is the numbers as JSON.

Usage::

    python benchmarks/bench_inference.py [--single 3000] [--rows 65536] [--repeats 5] [--json PATH]

The HTTP measurements live in ``benchmarks/bench_serve.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from typing import Any

import numpy as np
import pandas as pd

SINGLE_TARGET, BATCH_TARGET = 1.5, 0.9


def fitted_predictors(n_train: int, seed: int = 0) -> tuple[dict[str, Any], pd.DataFrame]:
    """{family: Predictor} over one fitted feature pipeline, and the held-out rows to score."""
    import lightgbm as lgb
    import xgboost as xgb

    from specweave_ray.candidates.torch_mlp import TorchMLPClassifier
    from specweave_ray.data.datasets import make_fraud
    from specweave_ray.deploy.predictor import Predictor
    from specweave_ray.features import build_preprocessor, feature_types

    data = make_fraud(n_train + 5000, seed=seed)
    y = data.pop("is_fraud").to_numpy()
    X, rows = data.iloc[:n_train], data.iloc[n_train:].reset_index(drop=True)
    features = build_preprocessor(X).fit(X)
    Xe = features.transform(X)
    models = {
        "xgboost": xgb.XGBClassifier(n_estimators=100, max_depth=6, tree_method="hist", random_state=seed),
        "lightgbm": lgb.LGBMClassifier(n_estimators=100, max_depth=6, num_leaves=63, verbose=-1,
                                       random_state=seed),
        "torch-mlp": TorchMLPClassifier(hidden_sizes=(64, 64), epochs=3, device="cpu", random_state=seed),
    }
    schema = {}
    for c, t in feature_types(X).items():
        spec: dict[str, Any] = {"dtype": str(X[c].dtype), "kind": "number" if t == "numeric" else "string",
                                "nullable": True}
        if t == "numeric":
            spec.update(min=float(X[c].min()), max=float(X[c].max()))
        schema[c] = spec
    folder = tempfile.mkdtemp(prefix="bench-inference-")
    out = {}
    for family, model in models.items():
        model.fit(Xe, y[:n_train])
        meta = {"version": 1, "increment": "bench", "classes": [0, 1], "threshold": 0.5,
                "target": "is_fraud", "input_schema": schema, "fast_path": True}
        out[family] = Predictor(meta, folder, model=model, features=features)
    return out, rows


def raw_call(predictor: Any) -> Any:
    """The family's own scoring call on an encoded matrix (what the Predictor wraps)."""
    family, raw = predictor.family, predictor.raw_model
    if family == "xgboost":
        return lambda X: raw.inplace_predict(X, validate_features=False)
    if family == "lightgbm":
        return raw.predict
    import torch

    net = raw

    def forward(x: Any) -> Any:
        with torch.no_grad():
            return net(x)
    return forward


def raw_input(predictor: Any, X: np.ndarray) -> Any:
    if predictor.family != "torch-mlp":
        return X
    import torch

    model = predictor.model
    return torch.from_numpy(((X - model.x_mean_) / model.x_scale_).astype(np.float32))


def single(raw: Any, raw_rows: list[Any], call: Any, rows: list[Any], n: int) -> tuple[float, float]:
    """(raw p50 s, Predictor p50 s), alternating blocks of 100 calls."""
    for i in range(200):
        raw(raw_rows[i % len(raw_rows)])
        call(rows[i % len(rows)])
    a, b = np.empty(n), np.empty(n)
    clock = time.perf_counter
    for block in range(0, n, 100):
        for i in range(block, min(n, block + 100)):
            x = raw_rows[i % len(raw_rows)]
            t0 = clock()
            raw(x)
            a[i] = clock() - t0
        for i in range(block, min(n, block + 100)):
            r = rows[i % len(rows)]
            t0 = clock()
            call(r)
            b[i] = clock() - t0
    return float(np.median(a)), float(np.median(b))


def batch(raw: Any, raw_x: Any, call: Any, x: Any, repeats: int) -> tuple[float, float]:
    """(raw best s, Predictor best s) over ``repeats`` alternating calls."""
    raw(raw_x)
    call(x)
    a, b = [], []
    clock = time.perf_counter
    for _ in range(repeats):
        t0 = clock()
        raw(raw_x)
        a.append(clock() - t0)
        t0 = clock()
        call(x)
        b.append(clock() - t0)
    return min(a), min(b)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=3000, help="timed single-row calls per form")
    parser.add_argument("--rows", type=int, default=65536, help="batch size")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per batch form")
    parser.add_argument("--train", type=int, default=20000)
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args(argv)

    from specweave_ray.deploy.bench import json_rows

    print(f"bench_inference: python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    predictors, held_out = fitted_predictors(args.train)
    from specweave_ray.deploy.predictor import Predictor

    cache = tempfile.mkdtemp(prefix="bench-inference-compiled-")
    for family in ("xgboost", "lightgbm"):
        p = predictors[family]
        compiled = Predictor(p.metadata, p.folder, model=p.model, features=p.features)
        t0 = time.perf_counter()
        compiled.compile(held_out.head(100), folder=cache)
        print(f"{family}: compiled in {time.perf_counter() - t0:.2f} s ({compiled.compiled.name})", flush=True)
        predictors[f"{family}+compiled"] = compiled
    records = json_rows(held_out)
    frames = [held_out.iloc[[i]] for i in range(200)]
    big = pd.concat([held_out] * (-(-args.rows // len(held_out))), ignore_index=True).head(args.rows)
    big_records = json_rows(big)
    results: dict[str, Any] = {"cpus": os.cpu_count(), "rows": args.rows}
    print(f"{'family':<17} {'input':<22} {'raw':>12} {'Predictor':>12} {'ratio':>7}  target")
    for family, p in predictors.items():
        raw = raw_call(p)
        encoded = [raw_input(p, p.encode(r)) for r in records[:200]]
        np.testing.assert_allclose(p.predict_proba(big), p.predict_proba(big_records), rtol=0, atol=1e-6)
        res: dict[str, Any] = {}
        for label, rows in (("one dict row", records[:200]), ("one-row DataFrame", frames)):
            r_s, p_s = single(raw, encoded, p.predict_proba, rows, args.single)
            res[label] = {"raw_p50_us": r_s * 1e6, "predictor_p50_us": p_s * 1e6, "ratio": p_s / r_s,
                          "pass": p_s / r_s <= SINGLE_TARGET}
            print(f"{family:<17} {label:<22} {r_s * 1e6:9.1f} us {p_s * 1e6:9.1f} us {p_s / r_s:6.2f}x"
                  f"  <= {SINGLE_TARGET}x {'PASS' if p_s / r_s <= SINGLE_TARGET else 'MISS'}", flush=True)
        big_x = raw_input(p, p.encode(big))
        for label, x in ((f"{args.rows // 1024}k-row DataFrame", big), (f"{args.rows // 1024}k dict rows", big_records)):
            r_s, p_s = batch(raw, big_x, p.predict_proba, x, args.repeats)
            ratio = r_s / p_s  # throughput ratio: Predictor rows/s over raw rows/s
            res[label] = {"raw_rows_s": args.rows / r_s, "predictor_rows_s": args.rows / p_s,
                          "throughput_ratio": ratio, "pass": ratio >= BATCH_TARGET}
            print(f"{family:<17} {label:<22} {args.rows / r_s / 1e6:6.2f} Mrow/s {args.rows / p_s / 1e6:6.2f} Mrow/s"
                  f" {ratio:6.2f}x  >= {BATCH_TARGET}x {'PASS' if ratio >= BATCH_TARGET else 'MISS'}", flush=True)
        results[family] = res
    print(f"load after: {os.getloadavg()[0]:.1f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
