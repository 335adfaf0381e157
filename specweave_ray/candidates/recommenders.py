"""Recommenders with one contract: fit on interactions, rank a catalogue per user, say why.

Every recommender is a scikit-learn estimator whose ``X`` is an interactions frame with a
``user`` and an ``item`` column (any hashable ids; the recommendation problem type renames the
user's columns to these) and whose ``y`` is each interaction's relevance weight (rows with a
weight of 0 or less are not positives and are not trained on). ``fit`` builds the id indexes and
the sparse user × item matrix once (:class:`Recommender`); a family only scores it
(``_fit_matrix``/``_scores``) and, where it can, names the items that drive a score
(``_reasons``).

``recommend(users, k)`` answers, for each user, the ``k`` best items they have not interacted
with; a user the model never saw gets the popularity list, flagged in ``known``.

| family | class | library |
| --- | --- | --- |
| random | :class:`RandomRecommender` | NumPy (a seeded permutation per user) |
| popularity | :class:`PopularityRecommender` | NumPy (counts, optionally over a recent window) |
| item-kNN | ``specweave_ray.candidates._implicit.ItemKNNRecommender`` | implicit (cosine / BM25 / TF-IDF neighbours) |
| ALS | ``specweave_ray.candidates._implicit.ALSRecommender`` | implicit ``AlternatingLeastSquares`` (CUDA when given a GPU) |
| BPR | ``specweave_ray.candidates._implicit.BPRRecommender`` | implicit ``BayesianPersonalizedRanking`` |
| EASE | ``specweave_ray.candidates._ease.EASERecommender`` | NumPy/LAPACK closed form (torch on CUDA when given a GPU) |
| re-ranker | ``specweave_ray.candidates._rerank.RerankRecommender`` | LightGBM ``LGBMRanker`` over a retriever's candidates |

The families live in their own modules (they import implicit and LightGBM, which this module
must not) and are importable from :mod:`specweave_ray.candidates` by name.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from specweave_ray.exceptions import CandidateError, DataError
from specweave_ray.problems.recommendation import ITEM, TIMESTAMP, USER

__all__ = ["USER", "ITEM", "TIMESTAMP", "PopularityRecommender", "RandomRecommender", "Recommendations",
           "Recommender", "top_k"]



@dataclass(frozen=True)
class Recommendations:
    """Ranked lists for a batch of users: ``items``/``scores`` are ``(n_users, k)`` arrays
    (best first); ``known`` is False where the user was unseen and got the popularity list."""

    items: np.ndarray
    scores: np.ndarray
    known: np.ndarray


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` largest scores of each row, best first (ties: lower index).

    ``argpartition`` then a sort of only ``k`` columns: O(n_items + k log k) per row instead of
    a full sort's O(n_items log n_items), which is what a 10k-item catalogue's latency is made of.
    """
    scores = np.atleast_2d(scores)
    n = scores.shape[1]
    k = min(k, n)
    if k == n:
        return np.argsort(-scores, axis=1, kind="stable")
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    picked = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -picked), axis=1)
    return np.take_along_axis(part, order, axis=1)


class Recommender(BaseEstimator):
    """Base class: interactions → id indexes and a CSR matrix; ranking, exclusion and fallback.

    Subclasses implement ``_fit_matrix(matrix, X)`` (``matrix`` is the users × items CSR of
    positive weights) and ``_scores(rows)`` (a dense ``(len(rows), n_items)`` float array for
    user row indices); ``_reasons(row, item_cols, n)`` is optional.

    Attributes (after ``fit``):
        user_ids_, item_ids_: The ids, in index order.
        matrix_: users × items CSR of the positive weights seen in training.
        popularity_: positive interactions per item (the fallback list's order).
    """

    # The sweep hands it the raw interactions frame, never the encoded feature matrix.
    requires_raw_frame = True
    # A GPU-capable family sets this; the device switch passes the trial's GPU.
    supports_gpu = False

    def fit(self, X: pd.DataFrame, y: Any = None) -> Recommender:
        """Index the ids, build the positive-weight matrix, then fit the family on it.

        Raises:
            DataError: ``X`` lacks the ``user``/``item`` columns, or no row is a positive.
        """
        missing = [c for c in (USER, ITEM) if c not in getattr(X, "columns", ())]
        if missing:
            raise DataError(f"a recommender is fitted on an interactions frame with {USER!r} and "
                            f"{ITEM!r} columns; missing {missing}")
        weights = np.ones(len(X)) if y is None else np.asarray(y, dtype=np.float64)
        positive = weights > 0
        if not positive.any():
            raise DataError("no interaction is a positive (every relevance weight is 0): nothing to learn")
        users = pd.Index(pd.unique(X[USER].to_numpy()))
        items = pd.Index(pd.unique(X[ITEM].to_numpy()))
        self.user_ids_ = users.to_numpy()
        self.item_ids_ = items.to_numpy()
        self._user_index = {u: i for i, u in enumerate(self.user_ids_)}
        rows = users.get_indexer(X[USER].to_numpy()[positive])
        cols = items.get_indexer(X[ITEM].to_numpy()[positive])
        matrix = sp.csr_matrix((weights[positive].astype(np.float32), (rows, cols)),
                               shape=(len(users), len(items)))
        matrix.sum_duplicates()
        self._set_matrix(matrix)
        self._fit_matrix(matrix, X.loc[positive] if hasattr(X, "loc") else X)
        return self

    def _set_matrix(self, matrix: sp.csr_matrix) -> None:
        self.matrix_ = matrix
        self.popularity_ = np.asarray((matrix > 0).sum(axis=0)).ravel().astype(np.float64)
        self._fallback = top_k(self.popularity_[None, :], len(self.item_ids_))[0]

    def _fit_like(self, other: Recommender, matrix: sp.csr_matrix, X: pd.DataFrame) -> Recommender:
        """Fit on ``matrix`` (users × items in ``other``'s id order, e.g. a part of its
        training matrix) with ``other``'s id indexes, so that rows and columns mean the same
        users and items in both: how a re-ranker fits its retriever."""
        self.user_ids_ = other.user_ids_
        self.item_ids_ = other.item_ids_
        self._user_index = other._user_index
        self._set_matrix(matrix)
        self._fit_matrix(matrix, X)
        return self

    # -- what a family implements -------------------------------------------------------------
    def _fit_matrix(self, matrix: sp.csr_matrix, X: pd.DataFrame) -> None:
        raise NotImplementedError

    def _scores(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _reasons(self, row: int, item_cols: np.ndarray, n: int) -> list[list[tuple[int, float]]]:
        """For each of ``item_cols``: up to ``n`` (item column the user interacted with, weight)
        pairs that drive its score. Default: none (a family that cannot say)."""
        return [[] for _ in item_cols]

    # -- the contract ---------------------------------------------------------------------------
    @property
    def n_items(self) -> int:
        check_is_fitted(self, "item_ids_")
        return len(self.item_ids_)

    def user_rows(self, users: Sequence[Hashable]) -> np.ndarray:
        """Row index of each user, -1 for a user not seen in training."""
        check_is_fitted(self, "user_ids_")
        return np.fromiter((self._user_index.get(u, -1) for u in users), dtype=np.int64, count=len(users))

    def recommend(self, users: Sequence[Hashable], k: int = 10, *, exclude_seen: bool = True) -> Recommendations:
        """The ``k`` best items for each user (seen items excluded); unseen users get the
        most popular items.

        Raises:
            CandidateError: ``k`` is not a positive integer or exceeds the catalogue.
        """
        check_is_fitted(self, "item_ids_")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise CandidateError(f"k must be a positive integer, got {k!r}")
        if k > self.n_items:
            raise CandidateError(f"k={k} is larger than the catalogue ({self.n_items} items)")
        users = list(users)
        rows = self.user_rows(users)
        known = rows >= 0
        items = np.empty((len(users), k), dtype=np.int64)
        scores = np.zeros((len(users), k), dtype=np.float64)
        if known.any():
            raw = np.asarray(self._scores(rows[known]), dtype=np.float64)
            if exclude_seen:
                seen = self.matrix_[rows[known]]
                raw[np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr)), seen.indices] = -np.inf
            cols = top_k(raw, k)
            items[known] = cols
            scores[known] = np.take_along_axis(raw, cols, axis=1)
        if (~known).any():
            items[~known] = self._fallback[:k]
            scores[~known] = self.popularity_[self._fallback[:k]]
        return Recommendations(self.item_ids_[items], scores, known)

    def reasons(self, user: Hashable, items: Sequence[Hashable], n: int = 3) -> list[list[dict[str, Any]]]:
        """For each of ``items``: the (up to ``n``) items ``user`` interacted with that drive its
        score, strongest first, as ``{"item", "weight"}``. Empty for an unseen user."""
        row = self.user_rows([user])[0]
        if row < 0:
            return [[] for _ in items]
        index = pd.Index(self.item_ids_)
        cols = index.get_indexer(list(items))
        out: list[list[dict[str, Any]]] = []
        for col, found in zip(cols, self._reasons(int(row), cols, n), strict=True):
            out.append([] if col < 0 else [{"item": _plain(self.item_ids_[c]), "weight": float(w)} for c, w in found])
        return out


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value


class RandomRecommender(Recommender):
    """Uniformly random items per user, seeded by ``random_state`` and the user's row: the
    chance baseline that "better than random by 3x" is measured against."""

    def __init__(self, *, random_state: int = 0) -> None:
        self.random_state = random_state

    def _fit_matrix(self, matrix: sp.csr_matrix, X: pd.DataFrame) -> None:
        self.n_items_ = matrix.shape[1]

    def _scores(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), self.n_items_))
        for i, row in enumerate(rows):
            out[i] = np.random.default_rng((self.random_state, int(row))).random(self.n_items_)
        return out


class PopularityRecommender(Recommender):
    """The most interacted-with items, the same list for everyone (minus what each has seen).

    Args:
        recent_fraction: Count only the latest fraction of interactions by ``timestamp``
            (``0.2``: the most recent 20%); ``None`` counts all of them. Ignored when the
            interactions have no timestamp.
    """

    def __init__(self, *, recent_fraction: float | None = None) -> None:
        self.recent_fraction = recent_fraction

    def _fit_matrix(self, matrix: sp.csr_matrix, X: pd.DataFrame) -> None:
        counts = self.popularity_
        if self.recent_fraction is not None:
            if not 0 < self.recent_fraction <= 1:
                raise CandidateError(f"recent_fraction must be in (0, 1], got {self.recent_fraction!r}")
            if TIMESTAMP in X.columns:
                ts = X[TIMESTAMP].to_numpy()
                cut = np.quantile(ts.astype("datetime64[ns]").astype(np.int64) if ts.dtype.kind == "M" else ts,
                                  1 - self.recent_fraction, method="lower")
                keep = (ts.astype("datetime64[ns]").astype(np.int64) if ts.dtype.kind == "M" else ts) >= cut
                cols = pd.Index(self.item_ids_).get_indexer(X[ITEM].to_numpy()[keep])
                counts = np.bincount(cols, minlength=len(self.item_ids_)).astype(np.float64)
                # ties among recent counts fall back to all-time popularity
                counts = counts + self.popularity_ / (self.popularity_.max() + 1.0)
        self.scores_ = counts

    def _scores(self, rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.scores_, (len(rows), len(self.scores_))).copy()
