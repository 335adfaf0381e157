"""A learning-to-rank re-ranker over a retriever's candidates (LightGBM ``LGBMRanker``).

Two stages, as production recommenders are built: a retriever (item-kNN or ALS) proposes each
user's top ``n_candidates`` unseen items, the ``n_popular`` most popular unseen items join them,
and a LambdaMART ranker orders that short list from a few features:

| feature | what |
| --- | --- |
| ``retriever_score``, ``retriever_rank`` | the retriever's score and its rank (``n_candidates`` for a popular pick it did not retrieve) |
| ``item_popularity`` | log(1 + positives of the item) |
| ``user_activity`` | log(1 + positives of the user) |
| ``knn_similarity_sum``, ``knn_similarity_max`` | the item's item-kNN cosine similarity to the user's items, summed and at most |

The ranker's labels come from inside the training interactions: each user's last
``holdout_fraction`` (by ``timestamp``; a seeded random share without one) is hidden, the
retriever is fitted on the rest, and a candidate is relevant when it is one of the hidden
items. So the evaluation's held-out interactions are never a label. The retriever and the
similarities are then refitted on all the training interactions for scoring.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import clone

from specweave_ray.candidates._common import check_positive, num_threads
from specweave_ray.candidates._implicit import ALSRecommender, ItemKNNRecommender
from specweave_ray.candidates.recommenders import ITEM, TIMESTAMP, USER, Recommender, top_k
from specweave_ray.exceptions import CandidateError

__all__ = ["FEATURES", "RerankRecommender"]

FEATURES = ("retriever_score", "retriever_rank", "item_popularity", "user_activity",
            "knn_similarity_sum", "knn_similarity_max")
_RETRIEVERS = ("item-knn", "als")
# below every candidate's ranker score, keeping the retriever's order among the rest
_NOT_A_CANDIDATE = -1e6


class RerankRecommender(Recommender):
    """LambdaMART (LightGBM ``LGBMRanker``, ``objective="lambdarank"``) over a retriever's
    top-``n_candidates`` plus the ``n_popular`` most popular items.

    Args:
        retriever: ``"item-knn"``, ``"als"``, or an unfitted :class:`Recommender` (cloned).
        n_candidates: Items the retriever proposes per user.
        n_popular: Popular items added to each user's candidates.
        holdout_fraction: Share of each user's training interactions hidden to label the
            ranker's training lists.
        max_train_users: At most this many users (a seeded sample) train the ranker.
        n_estimators, learning_rate, num_leaves, min_child_samples: LightGBM's.
        random_state: Seed of the split, the user sample and LightGBM.
        n_jobs: Threads for the retriever and LightGBM (``None``: all cores).

    Reasons: the retriever's (:meth:`feature_contributions` gives the ranker's own, per
    feature).
    """

    def __init__(self, *, retriever: str | Recommender = "item-knn", n_candidates: int = 100,
                 n_popular: int = 20, holdout_fraction: float = 0.2, max_train_users: int = 5_000,
                 n_estimators: int = 100, learning_rate: float = 0.05, num_leaves: int = 31,
                 min_child_samples: int = 20, random_state: int = 0, n_jobs: int | None = None) -> None:
        self.retriever = retriever
        self.n_candidates = n_candidates
        self.n_popular = n_popular
        self.holdout_fraction = holdout_fraction
        self.max_train_users = max_train_users
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.random_state = random_state
        self.n_jobs = n_jobs

    # -- fitting ----------------------------------------------------------------------------
    def _check(self) -> None:
        for name in ("n_candidates", "max_train_users", "n_estimators", "num_leaves", "min_child_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
                raise CandidateError(f"RerankRecommender: {name} must be a positive integer, got {value!r}")
        if isinstance(self.n_popular, bool) or not isinstance(self.n_popular, Integral) or self.n_popular < 0:
            raise CandidateError(f"RerankRecommender: n_popular must be an integer >= 0, got {self.n_popular!r}")
        if not isinstance(self.holdout_fraction, (int, float)) or not 0 < self.holdout_fraction < 1:
            raise CandidateError(f"RerankRecommender: holdout_fraction must be in (0, 1), "
                                 f"got {self.holdout_fraction!r}")
        check_positive(self, learning_rate=self.learning_rate)
        num_threads(self.n_jobs)

    def _new_retriever(self) -> Recommender:
        if isinstance(self.retriever, Recommender):
            return clone(self.retriever)
        if self.retriever == "item-knn":
            return ItemKNNRecommender(K=100, n_jobs=self.n_jobs)
        if self.retriever == "als":
            return ALSRecommender(random_state=self.random_state, n_jobs=self.n_jobs)
        raise CandidateError(f"RerankRecommender: retriever must be one of {_RETRIEVERS} or a Recommender, "
                             f"got {self.retriever!r}")

    def _fit_matrix(self, matrix: sp.csr_matrix, X: pd.DataFrame) -> None:
        self._check()
        rows = pd.Index(self.user_ids_).get_indexer(X[USER].to_numpy())
        cols = pd.Index(self.item_ids_).get_indexer(X[ITEM].to_numpy())
        hidden = self._hidden(rows, X)
        train = _part(rows[~hidden], cols[~hidden], matrix)
        labels = _part(rows[hidden], cols[hidden], matrix)
        labels = sp.csr_matrix(labels - labels.multiply(train > 0))  # an item seen before is no label
        labels.eliminate_zeros()
        users = np.flatnonzero(np.diff(labels.indptr) > 0)
        if users.size == 0:
            raise CandidateError("RerankRecommender: no user has two or more interactions to split into "
                                 "ranker training lists; use a retriever alone")
        rng = np.random.default_rng(self.random_state)
        if users.size > self.max_train_users:
            users = np.sort(rng.choice(users, self.max_train_users, replace=False))

        stage = _Stage.fit(self, train, X.loc[~hidden])
        cand, feats = stage.candidates(users)
        valid = np.isfinite(feats[:, :, 0])
        target = np.asarray(labels[users][np.repeat(np.arange(len(users)), cand.shape[1]),
                                          cand.ravel()]).reshape(cand.shape) > 0
        keep = (target & valid).any(axis=1)
        if not keep.any():
            raise CandidateError("RerankRecommender: the retriever's candidates hold none of the hidden "
                                 "interactions; raise n_candidates")
        valid &= keep[:, None]
        group = valid.sum(axis=1)[keep]
        self.ranker_ = lightgbm.LGBMRanker(
            objective="lambdarank", n_estimators=int(self.n_estimators), learning_rate=float(self.learning_rate),
            num_leaves=int(self.num_leaves), min_child_samples=int(self.min_child_samples),
            random_state=self.random_state, n_jobs=num_threads(self.n_jobs) or None, deterministic=True,
            force_row_wise=True, verbose=-1,
        )
        self.ranker_.fit(pd.DataFrame(feats[valid], columns=list(FEATURES)), target[valid].astype(np.int64),
                         group=group)
        self.booster_ = self.ranker_.booster_
        self.n_train_users_ = int(keep.sum())
        self.stage_ = _Stage.fit(self, matrix, X)

    def _hidden(self, rows: np.ndarray, X: pd.DataFrame) -> np.ndarray:
        """Each user's last ``holdout_fraction`` of rows (at least one, for users with two or
        more), by timestamp or a seeded random order."""
        if TIMESTAMP in X.columns:
            ts = X[TIMESTAMP].to_numpy()
            key = ts.astype("datetime64[ns]").astype(np.int64) if ts.dtype.kind == "M" else np.asarray(ts, float)
        else:
            key = np.random.default_rng(self.random_state).random(len(rows))
        order = np.lexsort((key, rows))
        sorted_rows = rows[order]
        counts = np.bincount(rows, minlength=len(self.user_ids_))
        start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        position = np.arange(len(rows)) - start[sorted_rows]
        n = counts[sorted_rows]
        n_hidden = np.maximum(1, np.round(n * self.holdout_fraction)).astype(np.int64)
        hidden_sorted = (n >= 2) & (position >= n - n_hidden)
        hidden = np.empty(len(rows), dtype=bool)
        hidden[order] = hidden_sorted
        return hidden

    # -- scoring ----------------------------------------------------------------------------
    def _scores(self, rows: np.ndarray) -> np.ndarray:
        raw = self.stage_.retriever._scores(rows).astype(np.float64)
        cand, feats = self.stage_.candidates(rows, raw=raw)
        out = raw + _NOT_A_CANDIDATE
        flat = feats.reshape(-1, len(FEATURES))
        ranked = self.booster_.predict(flat, num_threads=1).reshape(cand.shape)
        ranked[~np.isfinite(feats[:, :, 0])] = -np.inf
        np.put_along_axis(out, cand, ranked, axis=1)
        return out

    def _reasons(self, row: int, item_cols: np.ndarray, n: int) -> list[list[tuple[int, float]]]:
        return self.stage_.retriever._reasons(row, item_cols, n)

    def feature_contributions(self, user: Any, items: list[Any]) -> list[dict[str, float]]:
        """The ranker's score of each of ``items`` for ``user``, split into per-feature
        contributions (LightGBM ``pred_contrib``; they and ``"bias"`` sum to the score).

        Raises:
            CandidateError: ``user`` or an item was not seen in training.
        """
        row = self.user_rows([user])[0]
        cols = pd.Index(self.item_ids_).get_indexer(list(items))
        if row < 0:
            raise CandidateError(f"user {user!r} was not seen in training: the re-ranker has no features for it")
        if (cols < 0).any():
            raise CandidateError(f"items not seen in training: {[i for i, c in zip(items, cols, strict=True) if c < 0]}")
        feats = self.stage_.features(np.array([row]), cols[None, :])[0]
        contrib = self.booster_.predict(feats, pred_contrib=True, num_threads=1)
        return [dict(zip((*FEATURES, "bias"), map(float, line), strict=True)) for line in contrib]


def _part(rows: np.ndarray, cols: np.ndarray, matrix: sp.csr_matrix) -> sp.csr_matrix:
    """The training matrix restricted to these (row, column) pairs, with its weights."""
    mask = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=matrix.shape)
    out = sp.csr_matrix(matrix.multiply(mask > 0), dtype=np.float32)
    out.eliminate_zeros()
    return out


class _Stage:
    """A fitted retriever plus the item-kNN similarities and counts the features read."""

    def __init__(self, owner: RerankRecommender, retriever: Recommender, similarity: sp.csr_matrix) -> None:
        self.n_candidates = int(owner.n_candidates)
        self.n_popular = int(owner.n_popular)
        self.retriever = retriever
        self.similarity = similarity
        self.matrix = retriever.matrix_
        self.log_popularity = np.log1p(retriever.popularity_)
        self.log_activity = np.log1p(np.diff(self.matrix.indptr)).astype(np.float64)

    @classmethod
    def fit(cls, owner: RerankRecommender, matrix: sp.csr_matrix, X: pd.DataFrame) -> _Stage:
        retriever = owner._new_retriever()._fit_like(owner, matrix, X)
        if isinstance(retriever, ItemKNNRecommender) and retriever.similarity == "cosine":
            similarity = retriever.similarity_
        else:
            knn = ItemKNNRecommender(K=100, n_jobs=owner.n_jobs)._fit_like(owner, matrix, X)
            similarity = knn.similarity_
        return cls(owner, retriever, similarity)

    def candidates(self, rows: np.ndarray, *, raw: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Each user's candidate columns ``(n_users, C)`` and their features ``(n_users, C, F)``;
        a slot whose features are ``-inf`` is no candidate (a catalogue too small to fill it)."""
        if raw is None:
            raw = self.retriever._scores(rows).astype(np.float64)
        seen = self.matrix[rows]
        masked = raw.copy()
        r_idx = np.repeat(np.arange(len(rows)), np.diff(seen.indptr))
        masked[r_idx, seen.indices] = -np.inf
        n_items = raw.shape[1]
        retrieved = top_k(masked, min(self.n_candidates, n_items))
        parts = [retrieved]
        if self.n_popular:
            pop = np.broadcast_to(self.log_popularity, masked.shape).copy()
            pop[~np.isfinite(masked)] = -np.inf
            np.put_along_axis(pop, retrieved, -np.inf, axis=1)
            parts.append(top_k(pop, min(self.n_popular, n_items)))
        cand = np.concatenate(parts, axis=1)
        feats = self.features(rows, cand, raw=raw, masked=masked, n_retrieved=retrieved.shape[1])
        return cand, feats

    def features(self, rows: np.ndarray, cand: np.ndarray, *, raw: np.ndarray | None = None,
                 masked: np.ndarray | None = None, n_retrieved: int = 0) -> np.ndarray:
        if raw is None:
            raw = self.retriever._scores(rows).astype(np.float64)
        n_users, n_cand = cand.shape
        feats = np.empty((n_users, n_cand, len(FEATURES)))
        score = np.take_along_axis(raw, cand, axis=1)
        feats[:, :, 0] = score
        rank = np.full(cand.shape, float(self.n_candidates))
        rank[:, :n_retrieved] = np.arange(n_retrieved)
        feats[:, :, 1] = rank
        feats[:, :, 2] = self.log_popularity[cand]
        feats[:, :, 3] = self.log_activity[rows][:, None]
        user_items = self.matrix[rows]
        for i in range(n_users):
            mine = user_items.indices[user_items.indptr[i]:user_items.indptr[i + 1]]
            sims = self.similarity[mine][:, cand[i]].toarray() if mine.size else np.zeros((1, n_cand))
            feats[i, :, 4] = sims.sum(axis=0)
            feats[i, :, 5] = sims.max(axis=0)
        if masked is not None:
            feats[~np.isfinite(np.take_along_axis(masked, cand, axis=1))] = -np.inf
        return feats
