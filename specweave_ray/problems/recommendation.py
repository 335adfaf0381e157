"""Recommendation: a ranked top-k list of items per user, learned from interactions.

The data is an interaction log (a user, an item, an optional rating or weight, an optional
timestamp). :meth:`Recommendation.frame` renames the user's columns to ``user``/``item``/
``timestamp`` and turns the rating into a relevance weight (1 where the rating reaches the
relevance threshold, or for every interaction when there is no rating), so that every stage
downstream sees one shape. Splits are per user: each user's latest interactions (or a seeded
random share when there is no timestamp) are held out, and CV folds inside trials follow the
same rule within the training part. Models are scored by ranking metrics at a cut-off ``k``
(``precision_at_10`` …), with the items a user already interacted with excluded from the lists.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from specweave_ray.exceptions import ConfigError, DataError
from specweave_ray.metrics import AT_K, MetricDef, find, per_user
from specweave_ray.problems._base import ProblemType, sample_groups

__all__ = ["ITEM", "RELEVANCE", "TIMESTAMP", "USER", "PerUserSplit", "Recommendation"]

USER, ITEM, TIMESTAMP, RELEVANCE = "user", "item", "timestamp", "relevance"
RECS = "specweave_ray.candidates.recommenders"
CANDIDATES = "specweave_ray.candidates"
DEFAULT_K = 10
# a user needs this many positives to give one to the test side and keep one for training
MIN_INTERACTIONS = 2


class PerUserSplit:
    """Cross-validation folds within each user's interactions.

    With a ``timestamp`` column, each user's interactions are cut in time order into
    ``n_splits + 1`` blocks and fold ``i`` validates block ``i + 1`` after training on blocks
    ``0 … i`` of every user (an expanding window, as a rolling-origin backtest: never the
    future). Without one, each user's interactions are dealt at random (seeded) into
    ``n_splits`` groups and fold ``i`` validates group ``i``. Users with fewer than
    ``n_splits + 1`` interactions are never validated; they train in every fold.
    """

    def __init__(self, n_splits: int = 3, *, seed: int = 0) -> None:
        if n_splits < 2:
            raise ConfigError(f"cv must be >= 2 folds, got {n_splits}")
        self.n_splits = n_splits
        self.seed = seed

    def __repr__(self) -> str:
        return f"PerUserSplit(n_splits={self.n_splits}, seed={self.seed})"

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.n_splits

    def split(self, X: pd.DataFrame, y: Any = None, groups: Any = None):
        block, timed = _blocks(X, self.n_splits + 1 if TIMESTAMP in X.columns else self.n_splits,
                               seed=self.seed)
        rows = np.arange(len(X))
        for i in range(self.n_splits):
            if timed:
                valid = rows[block == i + 1]
                train = rows[(block >= 0) & (block <= i) | (block == -1)]
            else:
                valid = rows[block == i]
                train = rows[block != i]
            yield train, valid


def _blocks(X: pd.DataFrame, n_blocks: int, *, seed: int) -> tuple[np.ndarray, bool]:
    """Each row's block within its user (-1: the user has too few rows to validate)."""
    timed = TIMESTAMP in X.columns
    users = pd.factorize(X[USER].to_numpy())[0]
    if timed:
        order = np.lexsort((np.arange(len(X)), _as_number(X[TIMESTAMP]), users))
    else:
        rng = np.random.default_rng(seed)
        order = np.lexsort((rng.random(len(X)), users))
    sorted_users = users[order]
    counts = np.bincount(users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(len(X)) - starts[sorted_users]
    n = counts[sorted_users]
    if timed:
        block_sorted = np.minimum(position * n_blocks // np.maximum(n, 1), n_blocks - 1)
    else:
        block_sorted = position % n_blocks
    block_sorted = np.where(n >= n_blocks, block_sorted, -1)
    block = np.empty(len(X), dtype=np.int64)
    block[order] = block_sorted
    return block, timed


def _as_number(ts: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(ts):
        return ts.to_numpy().astype("datetime64[ns]").astype(np.int64)
    if pd.api.types.is_numeric_dtype(ts):
        return ts.to_numpy(dtype=np.float64)
    parsed = pd.to_datetime(ts, errors="coerce")
    if parsed.isna().any():
        bad = ts[parsed.isna()].iloc[0]
        raise DataError(f"timestamp column has a value that is not a date or a number: {bad!r}")
    return parsed.to_numpy().astype("datetime64[ns]").astype(np.int64)


def relevant_sets(X: pd.DataFrame, y: Any) -> tuple[np.ndarray, list[set[Hashable]]]:
    """The users with at least one relevant (weight > 0) interaction in ``X``, and each one's
    set of relevant items."""
    weights = np.ones(len(X)) if y is None else np.asarray(y, dtype=np.float64)
    pos = X.loc[weights > 0, [USER, ITEM]]
    if pos.empty:
        return np.array([], dtype=object), []
    grouped = pos.groupby(USER, sort=False)[ITEM].agg(lambda s: set(s.tolist()))
    return grouped.index.to_numpy(), grouped.tolist()


class Recommendation(ProblemType):
    name = "recommendation"
    aliases = ("recommender", "recommendations", "recsys", "recommender system",
               "collaborative filtering", "top-n recommendation")
    summary = "a top-k list of items per user from interactions; precision/recall/NDCG/MAP@k"
    target_kind = "value"
    output = "rankings"
    metrics = tuple(f"{m}_at_{DEFAULT_K}" for m in AT_K)
    report_extras = ("catalog_coverage", "popularity_bias", "cold_users")
    default_metric = f"ndcg_at_{DEFAULT_K}"
    default_criteria = ("precision@10 > 0.25", "recall@10 > 0.15", "latency_p99 < 100 ms",
                        "throughput >= 1000 req/s", "lift over best baseline >= 20%")
    uses_features = False
    estimators = {
        "random": f"{RECS}.RandomRecommender",
        "popularity": f"{RECS}.PopularityRecommender",
        "item-knn": f"{CANDIDATES}._implicit.ItemKNNRecommender",
        "knn": f"{CANDIDATES}._implicit.ItemKNNRecommender",
        "als": f"{CANDIDATES}._implicit.ALSRecommender",
        "bpr": f"{CANDIDATES}._implicit.BPRRecommender",
        "ease": f"{CANDIDATES}._ease.EASERecommender",
        "rerank": f"{CANDIDATES}._rerank.RerankRecommender",
        "lightgbm-ranker": f"{CANDIDATES}._rerank.RerankRecommender",
    }
    default_candidates = (
        {"name": "item-knn", "estimator": "item-knn", "params": {"K": {"randint": [20, 200]}}},
        {"name": "als", "estimator": "als",
         "params": {"factors": {"choice": [16, 32, 64]}, "regularization": {"loguniform": [0.5, 20.0]},
                    "alpha": {"loguniform": [2.0, 40.0]}, "iterations": 15}},
        {"name": "bpr", "estimator": "bpr",
         "params": {"factors": {"choice": [32, 64, 128]}, "learning_rate": {"loguniform": [1e-3, 0.1]},
                    "regularization": {"loguniform": [1e-4, 0.1]}, "iterations": 100}},
        {"name": "ease", "estimator": "ease", "params": {"l2": {"loguniform": [10.0, 5000.0]}}},
        {"name": "rerank", "estimator": "rerank",
         "params": {"retriever": {"choice": ["item-knn", "als"]}, "num_leaves": {"randint": [15, 63]},
                    "learning_rate": {"loguniform": [0.02, 0.2]}, "n_estimators": 100}},
    )

    # -- metrics -----------------------------------------------------------------------------
    def metric(self, name: str) -> MetricDef:
        """Any ranking metric at any cut-off (``precision@5``, ``ndcg_at_20``); others refused."""
        metric = find(name)
        if metric is None or metric.needs != "rankings":
            shown = ", ".join(f"{m}@k" for m in AT_K)
            raise ConfigError(f"metric {name!r} does not apply to {self.name}; use one of {shown} "
                              f"(k is the list length, e.g. ndcg@10)")
        return metric

    def with_k(self, metric: str, k: int) -> str:
        """``metric`` at cut-off ``k`` (``ndcg_at_10`` → ``ndcg_at_5``)."""
        base = re.sub(r"_at_\d+$", "", self.metric(metric).name)
        return f"{base}_at_{int(k)}"

    def metrics_at(self, k: int) -> tuple[str, ...]:
        return tuple(f"{m}_at_{int(k)}" for m in AT_K)

    # -- data --------------------------------------------------------------------------------
    def frame(self, df: pd.DataFrame, *, target: str | None = None,
              columns: Mapping[str, Any] | None = None) -> tuple[pd.DataFrame, pd.Series]:
        """Interactions → ``X`` (``user``, ``item``[, ``timestamp``]) and ``y`` (relevance 0/1).

        ``columns``: ``user_column``, ``item_column`` (required), ``time_column`` and
        ``relevance_threshold``; ``target`` is the rating or weight column (optional).

        Raises:
            DataError: a named column is missing, an id is missing, a rating is not numeric,
                or the threshold leaves no positive.
        """
        cols = dict(columns or {})
        user, item = cols.get("user_column"), cols.get("item_column")
        if not user or not item:
            raise ConfigError("recommendation data needs data.user_column and data.item_column "
                              "(--user-column/--item-column)")
        time_col = cols.get("time_column")
        named = {"user column": user, "item column": item, "rating column": target, "timestamp column": time_col}
        for what, col in named.items():
            if col is not None and col not in df.columns:
                raise DataError(f"{what} {col!r} is not in the data: {', '.join(map(str, df.columns[:20]))}")
        for what, col in (("user", user), ("item", item)):
            missing = df[col].isna()
            if missing.any():
                raise DataError(f"{what} column {col!r} has {int(missing.sum())} missing id(s), first at "
                                f"row {int(np.flatnonzero(missing.to_numpy())[0]) + 1}; drop those rows")
        X = pd.DataFrame({USER: df[user].to_numpy(), ITEM: df[item].to_numpy()}, index=df.index)
        if time_col is not None:
            _as_number(df[time_col])  # a DataError naming the first unreadable value
            X[TIMESTAMP] = df[time_col].to_numpy()
        threshold = cols.get("relevance_threshold")
        if target is None:
            if threshold is not None:
                raise ConfigError("data.relevance_threshold needs a rating column (data.target, --rating-column)")
            y = pd.Series(np.ones(len(df)), index=df.index, name=RELEVANCE)
        else:
            rating = df[target]
            if not pd.api.types.is_numeric_dtype(rating) or pd.api.types.is_bool_dtype(rating):
                raise DataError(f"rating column {target!r} must be numeric, got dtype {rating.dtype}")
            if rating.isna().any():
                raise DataError(f"rating column {target!r} has {int(rating.isna().sum())} missing value(s)")
            relevant = rating >= threshold if threshold is not None else rating > 0
            if not relevant.any():
                raise DataError(f"relevance threshold {threshold} leaves no positive interaction: the "
                                f"highest {target!r} is {rating.max()!r}")
            y = pd.Series(relevant.to_numpy(dtype=np.float64), index=df.index, name=RELEVANCE)
        return X, y

    # -- target ------------------------------------------------------------------------------
    def fits(self, y: Any) -> bool:
        return False  # interactions are never inferred from a target column

    def _check_values(self, y: pd.Series) -> None:
        if not pd.api.types.is_numeric_dtype(y):
            raise DataError(f"relevance {y.name!r} must be numeric, got dtype {y.dtype}")
        if not (y > 0).any():
            raise DataError(f"relevance {y.name!r} has no positive interaction: nothing to recommend from")

    def encode_target(self, y: Any) -> tuple[None, np.ndarray]:
        return None, np.asarray(y, dtype=np.float64)

    # -- splits ------------------------------------------------------------------------------
    def holdout_split(self, X: pd.DataFrame, y: pd.Series, *, test_size: float = 0.2, seed: int = 0,
                      time_column: str | None = None
                      ) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
        """Per user: the latest ``test_size`` share of each user's interactions (at least one),
        by ``timestamp`` when ``X`` has one, else a seeded random share. Users with fewer than
        two interactions stay whole in training (counted by :meth:`split_report`).

        Raises:
            DataError: ``test_size`` is not in (0, 1), or no user has two interactions.
        """
        if not 0.0 < test_size < 1.0:
            raise DataError(f"test_size must be in (0, 1), got {test_size!r}")
        if len(X) != len(y):
            raise DataError(f"X has {len(X)} rows but y has {len(y)}")
        users = pd.factorize(X[USER].to_numpy())[0]
        if TIMESTAMP in X.columns:
            order = np.lexsort((np.arange(len(X)), _as_number(X[TIMESTAMP]), users))
        else:
            order = np.lexsort((np.random.default_rng(seed).random(len(X)), users))
        counts = np.bincount(users)
        if not (counts >= MIN_INTERACTIONS).any():
            raise DataError(f"no user has {MIN_INTERACTIONS} or more interactions: a per-user split "
                            f"needs at least one to train on and one to test")
        sorted_users = users[order]
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        position = np.arange(len(X)) - starts[sorted_users]
        n = counts[sorted_users]
        n_test = np.where(n >= MIN_INTERACTIONS, np.maximum(1, np.floor(n * test_size)).astype(np.int64), 0)
        test_sorted = position >= n - n_test
        is_test = np.empty(len(X), dtype=bool)
        is_test[order] = test_sorted
        return X[~is_test], X[is_test], y[~is_test], y[is_test]

    def split_report(self, X_train: pd.DataFrame, X_test: pd.DataFrame) -> dict[str, Any]:
        """Users and items of the test split the training part has never seen."""
        train_users, train_items = set(X_train[USER]), set(X_train[ITEM])
        test_users = pd.unique(X_test[USER])
        return {"test_users": int(len(test_users)),
                "cold_users": int(sum(u not in train_users for u in test_users)),
                "cold_items": int(sum(i not in train_items for i in pd.unique(X_test[ITEM]))),
                "users_not_split": int(X_train[USER].nunique() - len(set(test_users) & train_users))}

    def check_data(self, X: pd.DataFrame, y: Any, *, metric: str, cv: int | None = None) -> None:
        """Refuse a list length ``k`` larger than the catalogue (every trial would fail)."""
        k = int(self.metric(metric).name.rsplit("_", 1)[1])
        n_items = X[ITEM].nunique()
        if k > n_items:
            raise ConfigError(f"k={k} ({metric}) is larger than the catalogue: the data has {n_items} items")

    def time_aware(self, X: Any) -> bool:
        return TIMESTAMP in getattr(X, "columns", ())

    def splitter(self, n_splits: int, *, seed: int) -> PerUserSplit:
        return PerUserSplit(n_splits, seed=seed)

    def sample(self, df: pd.DataFrame, *, target: str, n: int, seed: int = 0) -> pd.DataFrame:
        """Whole users at random until ``n`` interactions: sampled rows would break the per-user
        histories every split and metric reads."""
        if n >= len(df):
            return df.copy()
        return sample_groups(df, USER if USER in df.columns else df.columns[0], n, seed=seed)

    # -- models ------------------------------------------------------------------------------
    def baselines(self, *, rule: str | None = None, seed: int = 0) -> dict[str, tuple[str, dict[str, Any]]]:
        if rule is not None:
            raise ConfigError(f"a rule baseline predicts labels; recommendation has none (got rule {rule!r})")
        return {"random": (f"{RECS}.RandomRecommender", {"random_state": seed}),
                "popularity": (f"{RECS}.PopularityRecommender", {}),
                "popularity-recent": (f"{RECS}.PopularityRecommender", {"recent_fraction": 0.2})}

    def predict(self, model: Any, X: Any, *, k: int = DEFAULT_K) -> np.ndarray:
        """The top-``k`` items of each user in ``X`` (one row per distinct user, in first-seen order)."""
        users = pd.unique(X[USER])
        return model.recommend(users, k=min(k, model.n_items)).items

    def score_model(self, metric: MetricDef, model: Any, X: pd.DataFrame, y: Any) -> float:
        """Mean of ``metric`` over the users with a relevant item in ``X`` (a validation part)."""
        users, truth = relevant_sets(X, y)
        if not len(users):
            return float("nan")
        k = int(metric.name.rsplit("_", 1)[1])
        lists = model.recommend(users, k=min(k, model.n_items)).items
        return float(np.mean(per_user(metric.name, truth, lists)))

    # -- reports -----------------------------------------------------------------------------
    def target_profile(self, y: pd.Series) -> dict[str, Any]:
        values = pd.Series(np.asarray(y, dtype=np.float64))
        return {"positives": int((values > 0).sum()), "positive_share": float((values > 0).mean())}

    def data_profile(self, X: pd.DataFrame, y: Any) -> dict[str, Any]:
        """Users, items, density, interactions per user and item, popularity skew (Gini)."""
        per_user_n = X.groupby(USER, sort=False).size()
        per_item = X.groupby(ITEM, sort=False).size().sort_values()
        counts = per_item.to_numpy(dtype=np.float64)
        n = len(counts)
        gini = float((2 * np.arange(1, n + 1) - n - 1).dot(counts) / (n * counts.sum())) if n else 0.0
        top = max(1, math.ceil(0.01 * n))
        return {"users": int(len(per_user_n)), "items": int(n), "interactions": int(len(X)),
                "density": float(len(X) / max(1, len(per_user_n) * n)),
                "interactions_per_user": {q: float(per_user_n.quantile(p)) for q, p in
                                          (("min", 0), ("median", 0.5), ("p95", 0.95), ("max", 1))},
                "users_below_2": int((per_user_n < MIN_INTERACTIONS).sum()),
                "item_popularity_gini": gini,
                "top_1pct_items_share": float(counts[-top:].sum() / counts.sum()) if n else 0.0}

    def leakage_score(self, values: np.ndarray, y: pd.Series) -> tuple[float, str]:
        target = np.asarray(y, dtype=np.float64)
        finite = np.isfinite(values)
        if finite.sum() > 2 and np.std(values[finite]) > 0 and np.std(target[finite]) > 0:
            return abs(float(np.corrcoef(values[finite], target[finite])[0, 1])), "abs_corr"
        return 0.0, "abs_corr"

    def ab_inputs(self, control: Mapping[str, float], *, target: str) -> tuple[dict[str, Any], str, bool]:
        """The control's hit rate at k (the share of users whose list holds an item they engage
        with), to increase; a rate of 0 or 1 on ``n`` users is replaced by its 95% bound."""
        keys = sorted((int(k.rsplit("_", 1)[1]), k) for k in control if re.fullmatch(r"hit_rate_at_\d+", k))
        if not keys:
            raise DataError("the A/B control has no measured hit rate at k (run T-006 with baselines)")
        k, key = keys[0]
        rate, n = float(control[key]), int(control.get("test_users") or 0)
        out: dict[str, Any] = {"baseline_rate": rate}
        if not 0 < rate < 1 and n:
            bound = 3 / n if rate <= 0 else 1 - 3 / n
            out.update(baseline_rate=bound, baseline_note=(
                f"the control's measured hit rate is {rate:g} on {n} users; the plan sizes for its 95% "
                f"bound {bound:.4g} (rule of three)"))
        return out, f"share of users whose top-{k} list holds an item they engage with (hit rate@{k})", False
