"""Recommenders on the ``implicit`` library: item-kNN, ALS and BPR.

implicit fits (its similarity kernels, conjugate-gradient ALS, Hogwild BPR are compiled and
threaded); scoring a batch of users is one matrix product here (``X[rows] @ S`` or
``U[rows] @ Vᵀ``), which is what implicit's own ``recommend`` computes, kept dense because the
:class:`~specweave_ray.candidates.recommenders.Recommender` contract ranks and excludes seen items
itself.

ALS and BPR train on CUDA when ``device="cuda"`` and implicit was built with CUDA
(``implicit.gpu.HAS_CUDA``); the fitted model is moved back to the CPU (``to_cpu``) so it pickles
and serves anywhere; ``device_`` records where it was trained.
"""

from __future__ import annotations

import logging
from numbers import Integral
from typing import Any

import implicit.als
import implicit.bpr
import implicit.gpu
import implicit.nearest_neighbours
import numpy as np
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from specweave_ray.candidates._common import check_positive, num_threads
from specweave_ray.candidates.recommenders import Recommender
from specweave_ray.exceptions import CandidateError

__all__ = ["ALSRecommender", "BPRRecommender", "ItemKNNRecommender"]

logger = logging.getLogger(__name__)

_SIMILARITIES = ("cosine", "bm25", "tfidf")
_DEVICES = ("cpu", "cuda")


def _use_cuda(owner: Recommender, device: str) -> bool:
    if device not in _DEVICES:
        raise CandidateError(f"{type(owner).__name__}: device must be one of {_DEVICES}, got {device!r}")
    if device == "cuda" and not implicit.gpu.HAS_CUDA:
        logger.warning("%s: device='cuda' but this implicit build has no CUDA support; training on CPU",
                       type(owner).__name__)
        return False
    return device == "cuda"


def _top_weighted(cols: np.ndarray, weights: np.ndarray, n: int) -> list[tuple[int, float]]:
    """The ``n`` (column, weight) pairs with the largest positive weights, strongest first."""
    order = np.lexsort((cols, -weights))[:n]
    return [(int(cols[i]), float(weights[i])) for i in order if weights[i] > 0]


class ItemKNNRecommender(Recommender):
    """Item-based nearest neighbours: an item scores the sum of its similarities to the user's
    items (each weighted by the interaction), keeping each item's ``K`` nearest neighbours.

    Args:
        K: Neighbours kept per item.
        similarity: ``"cosine"``, ``"bm25"`` (implicit's BM25-weighted cosine, with ``K1``
            and ``B``) or ``"tfidf"``.
        K1, B: BM25's term-saturation and length-normalisation constants.
        n_jobs: Threads (``None``: all cores).

    Reasons: the user's items whose weighted similarity to the recommended item is largest.
    """

    def __init__(self, *, K: int = 100, similarity: str = "cosine", K1: float = 1.2, B: float = 0.75,
                 n_jobs: int | None = None) -> None:
        self.K = K
        self.similarity = similarity
        self.K1 = K1
        self.B = B
        self.n_jobs = n_jobs

    def _fit_matrix(self, matrix: sp.csr_matrix, X: pd.DataFrame) -> None:
        if isinstance(self.K, bool) or not isinstance(self.K, Integral) or self.K < 1:
            raise CandidateError(f"ItemKNNRecommender: K must be a positive integer, got {self.K!r}")
        threads = num_threads(self.n_jobs)
        if self.similarity == "cosine":
            model = implicit.nearest_neighbours.CosineRecommender(K=int(self.K), num_threads=threads)
        elif self.similarity == "bm25":
            model = implicit.nearest_neighbours.BM25Recommender(K=int(self.K), K1=self.K1, B=self.B,
                                                                num_threads=threads)
        elif self.similarity == "tfidf":
            model = implicit.nearest_neighbours.TFIDFRecommender(K=int(self.K), num_threads=threads)
        else:
            raise CandidateError(f"ItemKNNRecommender: similarity must be one of {_SIMILARITIES}, "
                                 f"got {self.similarity!r}")
        model.fit(matrix, show_progress=False)
        # S[j, i]: how much having item j adds to item i's score
        self.similarity_ = sp.csr_matrix(model.similarity, dtype=np.float32)

    def _scores(self, rows: np.ndarray) -> np.ndarray:
        return (self.matrix_[rows] @ self.similarity_).toarray()

    def _reasons(self, row: int, item_cols: np.ndarray, n: int) -> list[list[tuple[int, float]]]:
        user = self.matrix_[row]
        cols = user.indices
        block = (self.similarity_[cols][:, np.maximum(item_cols, 0)]).toarray() * user.data[:, None]
        return [_top_weighted(cols, block[:, i], n) for i in range(len(item_cols))]


class _FactorRecommender(Recommender):
    """Shared by ALS and BPR: factors from implicit, scores ``U[rows] @ Vᵀ``."""

    supports_gpu = True

    @staticmethod
    def cuda_usable() -> bool:
        """Whether this implicit build trains on CUDA (``implicit.gpu.HAS_CUDA``)."""
        return bool(implicit.gpu.HAS_CUDA)

    def _build(self, use_gpu: bool) -> Any:
        raise NotImplementedError

    def _fit_matrix(self, matrix: sp.csr_matrix, X: pd.DataFrame) -> None:
        use_gpu = _use_cuda(self, self.device)
        model = self._build(use_gpu)
        # implicit's own advice: BLAS threads inside its threaded loops slow it down many times
        with threadpool_limits(1, "blas"):
            model.fit(matrix, show_progress=False)
        if use_gpu:
            model = model.to_cpu()
        self.device_ = "cuda" if use_gpu else "cpu"
        self.model_ = model
        self.user_factors_ = np.ascontiguousarray(model.user_factors)
        self.item_factors_ = np.ascontiguousarray(model.item_factors)

    def _scores(self, rows: np.ndarray) -> np.ndarray:
        return self.user_factors_[rows] @ self.item_factors_.T


class ALSRecommender(_FactorRecommender):
    """Implicit-feedback matrix factorisation by alternating least squares (Hu, Koren &
    Volinsky 2008), implicit's ``AlternatingLeastSquares``: confidence ``1 + alpha × weight``.

    Args:
        factors: Latent dimensions.
        regularization: L2 penalty on the factors.
        alpha: Confidence scale of the interaction weights.
        iterations: ALS sweeps.
        random_state: Seed of the initial factors (deterministic for a given seed).
        n_jobs: Threads (``None``: all cores).
        device: ``"cpu"`` or ``"cuda"`` (set by the device switch when the trial holds a GPU).

    Reasons: implicit's ``explain`` — the user's items whose contribution to the item's score
    (through the user's regularised least-squares solve) is largest.
    """

    def __init__(self, *, factors: int = 64, regularization: float = 0.05, alpha: float = 2.0,
                 iterations: int = 15, random_state: int | None = 0, n_jobs: int | None = None,
                 device: str = "cpu") -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.device = device

    def _build(self, use_gpu: bool) -> Any:
        check_positive(self, factors=self.factors, regularization=self.regularization, alpha=self.alpha,
                       iterations=self.iterations)
        return implicit.als.AlternatingLeastSquares(
            factors=int(self.factors), regularization=float(self.regularization), alpha=float(self.alpha),
            iterations=int(self.iterations), random_state=self.random_state, use_gpu=use_gpu,
            num_threads=num_threads(self.n_jobs),
        )

    def _reasons(self, row: int, item_cols: np.ndarray, n: int) -> list[list[tuple[int, float]]]:
        # a one-row matrix: explain() scales its whole argument by alpha on every call
        user = self.matrix_[row]
        weights = None
        out = []
        for col in item_cols:
            if col < 0:
                out.append([])
                continue
            _, contributions, weights = self.model_.explain(0, user, int(col), user_weights=weights, N=n)
            out.append([(int(j), float(w)) for j, w in contributions if w > 0])
        return out


class BPRRecommender(_FactorRecommender):
    """Bayesian personalised ranking (Rendle et al. 2009), implicit's
    ``BayesianPersonalizedRanking``: factors trained by SGD so that a user's items outrank
    sampled others.

    Args:
        factors: Latent dimensions (implicit adds an item-bias column).
        learning_rate: SGD step.
        regularization: L2 penalty.
        iterations: Epochs.
        random_state: Seed; the fit is deterministic for a seed with ``n_jobs=1`` (more threads
            update the factors concurrently, Hogwild-style, so the result varies a little).
        n_jobs: Threads (``None``: all cores).
        device: ``"cpu"`` or ``"cuda"``.

    Reasons: the user's items whose factors have the largest dot product with the item's.
    """

    def __init__(self, *, factors: int = 64, learning_rate: float = 0.05, regularization: float = 0.01,
                 iterations: int = 100, random_state: int | None = 0, n_jobs: int | None = None,
                 device: str = "cpu") -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.device = device

    def _build(self, use_gpu: bool) -> Any:
        check_positive(self, factors=self.factors, learning_rate=self.learning_rate,
                       regularization=self.regularization, iterations=self.iterations)
        return implicit.bpr.BayesianPersonalizedRanking(
            factors=int(self.factors), learning_rate=float(self.learning_rate),
            regularization=float(self.regularization), iterations=int(self.iterations),
            random_state=self.random_state, use_gpu=use_gpu, num_threads=num_threads(self.n_jobs),
        )

    def _reasons(self, row: int, item_cols: np.ndarray, n: int) -> list[list[tuple[int, float]]]:
        cols = self.matrix_[row].indices
        factors = self.item_factors_
        if np.allclose(self.user_factors_[:, -1], 1.0):
            factors = factors[:, :-1]  # the bias column says nothing about likeness
        sims = factors[cols] @ factors[np.maximum(item_cols, 0)].T
        return [_top_weighted(cols, sims[:, i], n) for i in range(len(item_cols))]
