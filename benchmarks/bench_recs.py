"""Benchmark: recommenders — training at scale, one user's list, quality against popularity, serving.

In one run, on data the run generates (``data.generate("interactions")``):

* (a) training: ALS (implicit, 15 iterations, 64 factors) on 1M interactions of 20k users × 10k
  items; seconds and interactions per second;
* (b) ``recommend()`` for one user over the 10k-item catalogue: p50/p99 in process for every
  family (the raw ``Recommender.recommend``), and batch throughput (users/s, 256 at a time);
* (c) quality: NDCG@10 of every family on each user's latest 20% of interactions (60k
  interactions, 3k users, 1.5k items: the worked example's shape) relative to popularity;
* (d) the packaged path: ``RecommenderPredictor.recommend`` (id lookup, JSON-ready answer) p50
  against the raw model's, and ``specweave-ray serve``'s ``/recommend`` over loopback HTTP
  (req/s, p99) with 16 keep-alive clients, for the EASE model of (c).

Targets (issue 12): one user's ``recommend()`` p50 below 1 ms in process over 10k items; the best
family at least 2x popularity's NDCG@10. A miss is printed (MISS), never raised. The last line is
the numbers as JSON.

Usage::

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_recs.py [--quick]
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

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit's advice: its own threads, not BLAS's

from specweave_ray import data, problems  # noqa: E402
from specweave_ray.candidates import (  # noqa: E402
    ALSRecommender,
    BPRRecommender,
    EASERecommender,
    ItemKNNRecommender,
    RerankRecommender,
)
from specweave_ray.candidates.recommenders import PopularityRecommender, RandomRecommender  # noqa: E402

REC = problems.get("recommendation")
COLUMNS = {"user_column": "user_id", "item_column": "item_id", "time_column": "timestamp",
           "relevance_threshold": 3}


def families() -> dict[str, Any]:
    return {
        "random": lambda: RandomRecommender(random_state=0),
        "popularity": lambda: PopularityRecommender(),
        "item-knn": lambda: ItemKNNRecommender(K=200),
        "als": lambda: ALSRecommender(factors=32, regularization=5.0, alpha=10.0, iterations=15),
        "bpr": lambda: BPRRecommender(factors=64, iterations=100),
        "ease": lambda: EASERecommender(l2=300.0),
        "rerank": lambda: RerankRecommender(max_train_users=2000),
    }


def _split(n: int, users: int, items: int, seed: int = 0):
    df = data.generate("interactions", seed=seed, n_interactions=n, n_users=users, n_items=items)
    X, y = REC.frame(df, target="rating", columns=COLUMNS)
    return REC.holdout_split(X, y, test_size=0.2)


def _latency(fn, users, n: int) -> tuple[float, float]:
    for u in users[:20]:
        fn(u)
    lat = np.empty(n)
    for i in range(n):
        u = users[i % len(users)]
        t0 = time.perf_counter()
        fn(u)
        lat[i] = time.perf_counter() - t0
    return float(np.percentile(lat, 50) * 1e3), float(np.percentile(lat, 99) * 1e3)


def training(quick: bool) -> dict[str, float]:
    n, users, items = (200_000, 8_000, 10_000) if quick else (1_000_000, 20_000, 10_000)
    t0 = time.perf_counter()
    df = data.generate("interactions", seed=1, n_interactions=n, n_users=users, n_items=items)
    gen = time.perf_counter() - t0
    X, y = REC.frame(df, columns={**COLUMNS, "relevance_threshold": None})
    t0 = time.perf_counter()
    model = ALSRecommender(factors=64, iterations=15, n_jobs=os.cpu_count()).fit(X, y)
    fit = time.perf_counter() - t0
    print(f"(a) ALS on {n:,} interactions ({users:,} users x {items:,} items): fit {fit:.1f} s = "
          f"{n / fit:,.0f} interactions/s (data generated in {gen:.1f} s)")
    return {"als_interactions": n, "als_fit_s": fit, "als_interactions_per_s": n / fit, "model": model, "X": X, "y": y}


def latency(big: dict[str, Any], quick: bool) -> dict[str, float]:
    X, y = big["X"], big["y"]
    users = list(X["user"].iloc[:200_000].drop_duplicates().sample(500, random_state=0))
    out: dict[str, float] = {}
    print(f"\n(b) one user's top-10 over {big['model'].n_items:,} items, in process "
          "(target p50 < 1 ms); batch of 256 users")
    print(f"{'family':<12}{'fit s':>8}{'p50 ms':>9}{'p99 ms':>9}{'users/s (256)':>15}")
    # latency depends on the catalogue, not on how many interactions trained the model: the other
    # families train on the first 200k interactions (whole users; the same 10k items)
    X_sub, y_sub = X.iloc[:200_000], y.iloc[:200_000]
    for name, make in families().items():
        if name == "als":
            model, fit = big["model"], big["als_fit_s"]
        else:
            t0 = time.perf_counter()
            model = make().fit(X_sub, y_sub)
            fit = time.perf_counter() - t0
        p50, p99 = _latency(lambda u, m=model: m.recommend([u], k=10), users, 1000)
        batch = users[:256]
        t0, calls = time.perf_counter(), 0
        while calls < 3 or time.perf_counter() - t0 < 0.5:
            model.recommend(batch, k=10)
            calls += 1
        rate = 256 * calls / (time.perf_counter() - t0)
        flag = "" if p50 < 1.0 else "  MISS"
        print(f"{name:<12}{fit:>8.2f}{p50:>9.3f}{p99:>9.3f}{rate:>15,.0f}{flag}")
        out.update({f"{name}_fit_s": fit, f"{name}_p50_ms": p50, f"{name}_p99_ms": p99, f"{name}_users_per_s": rate})
    return out


def quality() -> tuple[dict[str, float], Any, Any]:
    X_tr, X_te, y_tr, y_te = _split(60_000, 3_000, 1_500, seed=7)
    metric = REC.metric("ndcg@10")
    scores, models = {}, {}
    for name, make in families().items():
        models[name] = make().fit(X_tr, y_tr)
        scores[name] = REC.score_model(metric, models[name], X_te, y_te)
    pop = scores["popularity"]
    print("\n(c) NDCG@10 on each user's latest 20% (60k interactions, 3k users, 1.5k items)")
    print(f"{'family':<12}{'ndcg@10':>10}{'x popularity':>14}")
    for name, s in sorted(scores.items(), key=lambda kv: -kv[1]):
        print(f"{name:<12}{s:>10.4f}{s / pop:>14.2f}")
    best = max(scores, key=scores.get)
    flag = "" if scores[best] >= 2 * pop else "  MISS"
    print(f"best {best}: {scores[best] / pop:.2f}x popularity (target >= 2x){flag}")
    return {f"{n}_ndcg_at_10": s for n, s in scores.items()}, models["ease"], (X_tr, y_tr)


def packaged(model: Any, train: Any) -> dict[str, float]:
    """The predictor over the same model, and /recommend over HTTP from a real package."""
    from specweave_ray.deploy._recs import RecommenderPredictor
    from specweave_ray.deploy.bench import bench_http, serving

    X_tr, _ = train
    users = list(X_tr["user"].drop_duplicates().sample(500, random_state=1))
    predictor = RecommenderPredictor({"version": 1, "k": 10}, Path("."), model=model)
    raw50, _ = _latency(lambda u: model.recommend([u], k=10), users, 2000)
    pred50, pred99 = _latency(lambda u: predictor.recommend(u), users, 2000)
    print(f"\n(d) packaged: RecommenderPredictor.recommend p50 {pred50:.3f} ms vs the raw model's "
          f"{raw50:.3f} ms = {pred50 / raw50:.2f}x")
    out = {"predictor_p50_ms": pred50, "predictor_p99_ms": pred99, "raw_p50_ms": raw50}
    root = Path(tempfile.mkdtemp(prefix="bench-recs-"))
    inc = _package(root, model)
    with serving(inc.path) as base:
        http = bench_http(f"{base}/recommend", [{"user": int(u)} for u in users], concurrency=16,
                          total_requests=4000, timeout_s=60)
    print(f"    HTTP /recommend (local engine, 16 clients, loopback): {http['http_throughput_rps']:,.0f} req/s, "
          f"p50 {http['http_latency_p50_ms']:.1f} ms, p99 {http['http_latency_p99_ms']:.1f} ms, "
          f"{int(http['http_errors'])} errors")
    out.update({k: v for k, v in http.items()})
    return out


def _package(root: Path, model: Any) -> Any:
    """A real package of ``model``: an increment, a model record and an evaluation record, then
    :func:`build_package` (hashes, metadata) — what T-007 builds."""
    from specweave_ray.candidates.serialization import save_native
    from specweave_ray.deploy.package import build_package
    from specweave_ray.workspace.increment import Increment
    from specweave_ray.workspace.records import track_experiment

    os.environ["SPECWEAVE_MLFLOW"] = "0"
    inc = Increment.create("Recs Bench", problem_type="recommendation", root=root)
    with track_experiment("ease-trial", increment=inc, kind="candidate", model="ease") as exp:
        exp.log_params({"l2": 300.0})
        exp.log_metrics({"cv_mean": 0.0})
        trial = exp.id
    info = save_native(model, inc.experiments_dir / trial, name="model")
    meta_path = inc.experiments_dir / trial / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta.setdefault("artifacts", {})["model"] = info
    meta_path.write_text(json.dumps(meta))
    with track_experiment("evaluation", increment=inc, kind="evaluation", model="ease",
                          meta={"trial_record": trial, "candidate": "ease", "k": 10}) as exp:
        exp.log_metrics({"ndcg_at_10": 0.0})
    build_package(inc, register=False)
    return inc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200k interactions for (a)/(b) instead of 1M")
    parser.add_argument("--no-http", action="store_true", help="skip (d)'s HTTP run")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    big = training(args.quick)
    out: dict[str, Any] = {k: v for k, v in big.items() if isinstance(v, (int, float))}
    out.update(latency(big, args.quick))
    scores, ease, train = quality()
    out.update(scores)
    if not args.no_http:
        out.update(packaged(ease, train))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
